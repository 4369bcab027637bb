// 400s with the documented JSON error, and frame-injection attempts over a raw socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  subscribe, openSse, publish, publishOk, uniqueTopic, uniqueId, adminGet, assertJsonError,
  rawSend, rawAuth, config, closeStreamsAfterFile,
} from './lib/index.mjs';

closeStreamsAfterFile();
const T = { timeout: 30_000 };
const NAME_RE = /^[A-Za-z0-9_.:-]{1,128}$/;

async function sseError(opts, status, code, context) {
  const r = await openSse(opts);
  if (!r.isError) {
    r.close();
    assert.fail(`${context}: expected ${status} ${code}, the stream opened with 200 (topics ${JSON.stringify(r.connected?.topics)})`);
  }
  assertJsonError(r, status, code, context);
}

// ---- topics ----------------------------------------------------------------------------

test('400 missing_topic: GET /sse without topic', T, async () => {
  await sseError({}, 400, 'missing_topic', 'GET /sse');
  await sseError({ query: { envelope: 'json' } }, 400, 'missing_topic', 'GET /sse?envelope=json');
});

test('400 missing_topic: POST /publish without x-sse-topic', T, async () => {
  assertJsonError(await publish({ id: uniqueId(), body: 'x' }), 400, 'missing_topic');
});

test('400 invalid_topic: a space inside the topic', T, async () => {
  await sseError({ headers: { 'x-sse-topic': 'a b' } }, 400, 'invalid_topic', 'header');
  await sseError({ query: { topic: 'a b' } }, 400, 'invalid_topic', 'query');
  assertJsonError(await publish({ topics: 'a b', id: uniqueId(), body: 'x' }), 400, 'invalid_topic', 'publish');
});

test('400 invalid_topic: a slash in the topic', T, async () => {
  await sseError({ headers: { 'x-sse-topic': 'orders/eu' } }, 400, 'invalid_topic', 'header');
  await sseError({ path: '/sse?topic=orders%2Feu' }, 400, 'invalid_topic', 'query %2F');
  await sseError({ path: '/sse?topic=orders/eu' }, 400, 'invalid_topic', 'query /');
  assertJsonError(await publish({ topics: 'orders/eu', id: uniqueId(), body: 'x' }), 400, 'invalid_topic', 'publish');
});

test('400 invalid_topic: a non-ASCII character (é)', T, async () => {
  await sseError({ path: '/sse?topic=caf%C3%A9' }, 400, 'invalid_topic', 'query %C3%A9');
  // the UTF-8 bytes of é sent verbatim in the header
  const r = await rawSend('GET', '/sse', [['x-sse-topic', Buffer.from('café', 'utf8')]], undefined, { timeoutMs: 5000 });
  assertJsonError(r, 400, 'invalid_topic', 'raw header with UTF-8 bytes');
  const p = await rawSend('POST', '/publish', [...rawAuth(), ['x-sse-topic', Buffer.from('café', 'utf8')], ['x-sse-id', 'e1'], ['content-length', '1']], 'x', { timeoutMs: 5000 });
  assertJsonError(p, 400, 'invalid_topic', 'publish with UTF-8 bytes in x-sse-topic');
});

test('400 invalid_topic: 129 bytes (128 accepted)', T, async () => {
  const base = uniqueTopic('len');
  const t128 = base + 'x'.repeat(128 - base.length);
  const t129 = t128 + 'y';
  assert.equal(t128.length, 128);
  await sseError({ headers: { 'x-sse-topic': t129 } }, 400, 'invalid_topic', '129-byte topic');
  assertJsonError(await publish({ topics: t129, id: uniqueId(), body: 'x' }), 400, 'invalid_topic', 'publish 129-byte topic');
  const c = await subscribe({ headers: { 'x-sse-topic': t128 } });
  try {
    assert.deepEqual(c.connected.topics, [t128]);
    const id = uniqueId();
    await publishOk({ topics: t128, id, body: 'x' });
    await c.waitForEvent((e) => e.id === id);
  } finally { c.close(); }
});

test('400 invalid_topic: empty list items (a,,b and a,)', T, async () => {
  const a = uniqueTopic('ea');
  const b = uniqueTopic('eb');
  for (const v of [`${a},,${b}`, `${a},`, `,${a}`, `${a}, ,${b}`]) {
    await sseError({ headers: { 'x-sse-topic': v } }, 400, 'invalid_topic', `header ${JSON.stringify(v)}`);
    await sseError({ query: { topic: v } }, 400, 'invalid_topic', `query ${JSON.stringify(v)}`);
    assertJsonError(await publish({ topics: v, id: uniqueId(), body: 'x' }), 400, 'invalid_topic', `publish ${JSON.stringify(v)}`);
  }
  await sseError({ path: '/sse?topic=' }, 400, ['invalid_topic', 'missing_topic'], 'empty ?topic=');
});

test('400 too_many_topics: MAX_TOPICS_PER_REQUEST + 1 distinct topics', T, async () => {
  const prefix = uniqueTopic('many');
  const list = Array.from({ length: config.maxTopics + 1 }, (_, i) => `${prefix}-${i}`);
  await sseError({ headers: { 'x-sse-topic': list.join(',') } }, 400, 'too_many_topics', 'subscribe');
  await sseError({ query: { topic: list } }, 400, 'too_many_topics', 'subscribe, repeated ?topic=');
  assertJsonError(await publish({ topics: list, id: uniqueId(), body: 'x' }), 400, 'too_many_topics', 'publish');
});

test('too_many_topics counts distinct topics: the maximum plus a duplicate is accepted', T, async () => {
  const prefix = uniqueTopic('max');
  const list = Array.from({ length: config.maxTopics }, (_, i) => `${prefix}-${i}`);
  const c = await subscribe({ headers: { 'x-sse-topic': [...list, list[0]].join(',') } });
  try {
    assert.deepEqual(c.connected.topics, list);
    const id = uniqueId();
    const r = await publishOk({ topics: [...list, list[3]], id, body: 'all' });
    assert.equal(r.delivered, config.maxTopics, JSON.stringify(r).slice(0, 300));
    assert.equal(Object.keys(r.topics).length, config.maxTopics);
  } finally { c.close(); }
});

// ---- id / event / envelope ------------------------------------------------------------

test('400 missing_id: publish without x-sse-id', T, async () => {
  assertJsonError(await publish({ topics: uniqueTopic('noid'), body: 'x' }), 400, 'missing_id');
});

test('400 invalid_id: x-sse-id breaks the name rule', T, async () => {
  const t = uniqueTopic('badid');
  for (const id of ['a b', 'a/b', 'x'.repeat(129), 'a,b', 'a"b', 'id;x']) {
    assertJsonError(await publish({ topics: t, id, body: 'x' }), 400, 'invalid_id', `id ${JSON.stringify(id.slice(0, 20))}`);
  }
  const r = await rawSend('POST', '/publish', [...rawAuth(), ['x-sse-topic', t], ['x-sse-id', Buffer.from('évt', 'utf8')], ['content-length', '1']], 'x', { timeoutMs: 5000 });
  assertJsonError(r, 400, 'invalid_id', 'UTF-8 bytes in x-sse-id');
  // empty id is a missing or invalid id, never accepted
  const e = await rawSend('POST', '/publish', [...rawAuth(), ['x-sse-topic', t], ['x-sse-id', ''], ['content-length', '1']], 'x', { timeoutMs: 5000 });
  assertJsonError(e, 400, ['invalid_id', 'missing_id'], 'empty x-sse-id');
});

test('400 invalid_event: x-sse-event breaks the name rule', T, async () => {
  const t = uniqueTopic('badevent');
  for (const ev of ['order created', 'a/b', 'e'.repeat(129), 'a,b']) {
    assertJsonError(await publish({ topics: t, id: uniqueId(), event: ev, body: 'x' }), 400, 'invalid_event', `event ${JSON.stringify(ev.slice(0, 20))}`);
  }
});

test('400 invalid_envelope: ?envelope= other than json', T, async () => {
  const t = uniqueTopic('badenv');
  for (const env of ['xml', 'JSON ', 'jsonx', '']) {
    await sseError({ query: { topic: t, envelope: env } }, 400, 'invalid_envelope', `envelope=${JSON.stringify(env)}`);
  }
});

test('400 JSON for CR/LF smuggled into query parameters of /sse', T, async () => {
  await sseError({ path: '/sse?topic=abc%0D%0Aevent:%20evil' }, 400, 'invalid_topic', 'topic with %0D%0A');
  await sseError({ path: '/sse?topic=abc%0Adata:evil' }, 400, 'invalid_topic', 'topic with %0A');
  await sseError({ path: '/sse?topic=abc%00' }, 400, 'invalid_topic', 'topic with %00');
  await sseError({ path: `/sse?topic=${uniqueTopic('q')}&envelope=json%0D%0A` }, 400, 'invalid_envelope', 'envelope with %0D%0A');
});

// ---- admin limit / cursor -------------------------------------------------------------

test('400 invalid_limit: limit 0, 501, abc (and other non-integers)', T, async () => {
  for (const path of ['/admin/api/connections', '/admin/api/topics']) {
    for (const limit of ['0', '501', 'abc', '-1', '1.5', '10abc', '600']) {
      assertJsonError(await adminGet(path, { limit }), 400, 'invalid_limit', `${path}?limit=${limit}`);
    }
    for (const limit of ['1', '500']) {
      const r = await adminGet(path, { limit });
      assert.equal(r.status, 200, `${path}?limit=${limit}: ${r.status} ${r.text.slice(0, 200)}`);
    }
  }
});

test('400 invalid_cursor: forged cursors', T, async () => {
  for (const path of ['/admin/api/connections', '/admin/api/topics']) {
    for (const cursor of ['abc', 'v1.', 'v1.AAAAAAAAAAAAAAAA', 'v2.deadbeef', '%%%', 'v1.' + 'z'.repeat(300)]) {
      assertJsonError(await adminGet(path, { cursor }), 400, 'invalid_cursor', `${path}?cursor=${cursor.slice(0, 30)}`);
    }
  }
});

function tamper(cursor) {
  const i = Math.floor(cursor.length / 2);
  const ch = cursor[i];
  const alt = ch === 'A' ? 'B' : ch === '0' ? '1' : /[0-9]/.test(ch) ? '0' : 'A';
  return cursor.slice(0, i) + alt + cursor.slice(i + 1);
}

/**
 * Get a real next_cursor from `path` (three connections on a fresh topic guarantee one for
 * /connections), then require 400 invalid_cursor for each variant made by `variants(cursor)`.
 */
async function cursorVariantsRejected(variants) {
  const t = uniqueTopic('cursor');
  const cs = await Promise.all([0, 1, 2].map(() => subscribe({ headers: { 'x-sse-topic': t } })));
  try {
    for (const path of ['/admin/api/connections', '/admin/api/topics']) {
      const page = await adminGet(path, { limit: 1 });
      assert.equal(page.status, 200, page.text);
      const cursor = page.json.next_cursor;
      if (cursor === null || cursor === undefined) {
        // only possible for /topics when a single topic is live at all
        assert.equal(path, '/admin/api/topics', `${path}?limit=1 returned no next_cursor with ≥ 3 connections live`);
        continue;
      }
      assert.equal(typeof cursor, 'string');
      const ok = await adminGet(path, { limit: 1, cursor });
      assert.equal(ok.status, 200, `the issued cursor was refused: ${ok.text.slice(0, 200)}`);
      for (const bad of variants(cursor)) {
        assertJsonError(await adminGet(path, { limit: 1, cursor: bad }), 400, 'invalid_cursor', `${path} cursor ${JSON.stringify(bad)} (issued ${JSON.stringify(cursor)})`);
      }
    }
  } finally { cs.forEach((c) => c.close()); }
}

test('400 invalid_cursor: a real cursor with garbage added', T, async () => {
  await cursorVariantsRejected((c) => [`${c}!`, `!${c}`, `${c}~~`, `${c}\u00e9`]);
});

// Strict reading of docs/api.md ("a cursor the gateway did not issue"): an issued cursor with one
// character changed, or cut short, was not issued. An unsigned cursor (e.g. hex of the last id)
// may decode to another plausible position and be accepted.
test('400 invalid_cursor: a real cursor altered or truncated (not issued by the gateway)', T, async () => {
  await cursorVariantsRejected((c) => [tamper(c), c.slice(0, -1), c.slice(0, -2)]);
});

// ---- frame injection over a raw socket --------------------------------------------------
//
// Each case: subscribe to a fresh topic, send the crafted publish, then publish a good event
// and require that the subscriber got exactly the good one (plus, for cases where RFC 9112
// lets a server treat a bare LF as a line end, the event that interpretation yields, well-formed).
//   expect 'json400'  well-formed HTTP with a bad header value: JSON 400 with one of `codes`
//   expect 'any4xx'   not valid HTTP (bare CR, NUL, obs-fold, CTL): any 4xx (the HTTP layer may answer)
//   expect 'lineEnd'  the bytes are a valid header-line break under RFC 9112 §2.2 (bare LF) or
//                     are a CRLF: 4xx, or 202 delivering exactly `lenient` (id/event/data)

const BODY = 'lenient-body';

const INJECTIONS = [
  { name: 'CRLF splitting x-sse-id (x-sse-id: a\\r\\nid: evil)', headers: (id) => [`x-sse-id: ${id}\r\nid: evil`], expect: 'lineEnd', lenient: (id) => ({ id, event: null }) },
  { name: 'CRLF splitting x-sse-event (x-sse-event: ok\\r\\nevent: evil)', headers: (id) => [`x-sse-id: ${id}`, 'x-sse-event: ok\r\nevent: evil'], expect: 'lineEnd', lenient: (id) => ({ id, event: 'ok' }) },
  { name: 'bare LF in x-sse-id', headers: (id) => [`x-sse-id: ${id}\nevent: evil`], expect: 'lineEnd', lenient: (id) => ({ id, event: null }) },
  { name: 'bare LF in x-sse-event', headers: (id) => [`x-sse-id: ${id}`, 'x-sse-event: ok\ndata: evil'], expect: 'lineEnd', lenient: (id) => ({ id, event: 'ok' }) },
  { name: 'bare CR in x-sse-id', headers: (id) => [`x-sse-id: ${id}\rid: evil`], expect: 'any4xx' },
  { name: 'bare CR in x-sse-event', headers: (id) => [`x-sse-id: ${id}`, 'x-sse-event: ok\revent: evil'], expect: 'any4xx' },
  { name: 'bare CR in x-sse-topic', headers: (id, t) => [`x-sse-id: ${id}`], topicValue: (t) => `${t}\rdata: evil`, expect: 'any4xx' },
  // RFC 9112 lets a server replace the bare CR with SP, which OWS-trimming then removes
  { name: 'CR CR LF in x-sse-id', headers: (id) => [`x-sse-id: ${id}\r\r\ndata: evil`], expect: 'lineEnd', lenient: (id) => ({ id, event: null }) },
  { name: 'obs-fold continuation of x-sse-id', headers: (id) => [`x-sse-id: ${id}`, ' id: evil'], expect: 'any4xx' },
  { name: 'obs-fold continuation of x-sse-event', headers: (id) => [`x-sse-id: ${id}`, 'x-sse-event: ok', '\tevent: evil'], expect: 'any4xx' },
  { name: 'NUL in x-sse-id', headers: (id) => [`x-sse-id: ${id}\0evil`], expect: 'any4xx' },
  { name: 'control character (0x01) in x-sse-event', headers: (id) => [`x-sse-id: ${id}`, 'x-sse-event: ok\x01evil'], expect: 'any4xx' },
  { name: 'tab inside x-sse-id', headers: (id) => [`x-sse-id: ${id}\tevil`], expect: 'json400', codes: ['invalid_id'] },
  { name: 'tab inside x-sse-event', headers: (id) => [`x-sse-id: ${id}`, 'x-sse-event: ok\tevil'], expect: 'json400', codes: ['invalid_event'] },
  { name: 'UTF-8 line separator (U+2028) in x-sse-id', headers: (id) => [Buffer.concat([Buffer.from(`x-sse-id: ${id}`), Buffer.from('\u2028evil', 'utf8')])], expect: 'json400', codes: ['invalid_id'] },
  { name: 'NEL (0x85 / U+0085) in x-sse-event', headers: (id) => [`x-sse-id: ${id}`, Buffer.concat([Buffer.from('x-sse-event: ok'), Buffer.from([0xc2, 0x85]), Buffer.from('evil')])], expect: 'json400', codes: ['invalid_event'] },
];

for (const inj of INJECTIONS) {
  test(`injection: ${inj.name} never reaches a subscriber`, T, async () => {
    const t = uniqueTopic('inj');
    const c = await subscribe({ headers: { 'x-sse-topic': t } });
    try {
      const id = uniqueId('inj');
      const topicValue = inj.topicValue ? inj.topicValue(t) : t;
      const lines = [
        ...rawAuth(),
        ['x-sse-topic', topicValue],
        ...inj.headers(id, t),
        ['content-type', 'text/plain'],
        ['content-length', String(Buffer.byteLength(BODY))],
      ];
      const r = await rawSend('POST', '/publish', lines, BODY, { timeoutMs: 5000 });
      assert.ok(r.status !== null, `no response to the crafted request (timedOut=${r.timedOut}, closed=${r.closed}, error=${r.error?.message})`);
      let lenientDelivered = false;
      if (inj.expect === 'json400') {
        assertJsonError(r, 400, inj.codes);
      } else if (inj.expect === 'any4xx') {
        assert.ok(r.status >= 400 && r.status < 500, `expected 4xx, got ${r.status} ${r.text.slice(0, 200)}`);
      } else {
        assert.ok((r.status >= 400 && r.status < 500) || r.status === 202, `expected 4xx or 202, got ${r.status} ${r.text.slice(0, 200)}`);
        lenientDelivered = r.status === 202;
        if (lenientDelivered) assert.equal(r.json?.delivered, 1, r.text);
      }
      const good = uniqueId('good');
      await publishOk({ topics: t, id: good, event: 'good', body: 'good body' });
      await c.waitForEvent((e) => e.id === good, 5000, 'the good event');
      const evs = c.published;
      const expected = [];
      if (lenientDelivered) {
        const l = inj.lenient(id);
        expected.push({ id: l.id, event: l.event, data: BODY });
      }
      expected.push({ id: good, event: 'good', data: 'good body' });
      assert.deepEqual(evs.map((e) => ({ id: e.id, event: e.event, data: e.data })), expected);
      for (const e of c.events) {
        for (const f of e.fields) assert.ok(['id', 'event', 'data', 'retry'].includes(f.field), `unexpected field ${JSON.stringify(f)}`);
        if (e.id !== undefined) assert.match(e.id, NAME_RE);
        if (e.event !== null) assert.match(e.event, NAME_RE);
      }
      assert.ok(!c.rawText.includes('evil'), `"evil" reached the stream: ${JSON.stringify(c.rawText.slice(0, 500))}`);
    } finally { c.close(); }
  });
}
