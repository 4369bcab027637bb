// 413 / 415 and the drop path (a topic without subscribers never has its body read).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  subscribe, publish, publishOk, uniqueTopic, uniqueId, assertJsonError, rawSend, rawRequest,
  buildRequest, rawAuth, config, closeStreamsAfterFile, heldBackHint,
} from './lib/index.mjs';

closeStreamsAfterFile();
const T = { timeout: 60_000 };
const MAX = config.maxBodyBytes;

/** Publish a good event and require that it is the only event the subscriber ever got. */
async function assertOnlyGoodArrives(c, topic) {
  const good = uniqueId('good');
  await publishOk({ topics: topic, id: good, body: 'good' });
  await c.waitForEvent((e) => e.id === good, 5000, 'the good event');
  assert.deepEqual(c.published.map((e) => e.id), [good], 'a rejected publish reached the subscriber');
}

test('413: body of MAX_BODY_BYTES+1 to a live topic', T, async () => {
  const t = uniqueTopic('413');
  const c = await subscribe({ headers: { 'x-sse-topic': t } });
  try {
    const r = await publish({ topics: t, id: uniqueId(), body: 'a'.repeat(MAX + 1) });
    assertJsonError(r, 413, 'payload_too_large');
    await assertOnlyGoodArrives(c, t);
  } finally { c.close(); }
});

test('413: chunked body over MAX_BODY_BYTES to a live topic (counted while reading)', T, async () => {
  const t = uniqueTopic('413chunked');
  const c = await subscribe({ headers: { 'x-sse-topic': t } });
  try {
    const r = await publish({ topics: t, id: uniqueId(), body: 'b'.repeat(MAX + 1), chunked: true });
    assertJsonError(r, 413, 'payload_too_large');
    await assertOnlyGoodArrives(c, t);
  } finally { c.close(); }
});

test('413: declared content-length over the limit is answered without the body being sent', T, async () => {
  const t = uniqueTopic('413declared');
  const c = await subscribe({ headers: { 'x-sse-topic': t } });
  try {
    const r = await rawSend('POST', '/publish', [
      ...rawAuth(), ['x-sse-topic', t], ['x-sse-id', uniqueId()], ['content-length', String(MAX + 1)],
    ], undefined, { timeoutMs: 5000 });
    assert.ok(r.status !== null, `no response within 5 s while the body was held back (timedOut=${r.timedOut})${heldBackHint()}`);
    assertJsonError(r, 413, 'payload_too_large');
    await assertOnlyGoodArrives(c, t);
  } finally { c.close(); }
});

test('413: declared content-length over the limit to a topic without subscribers (413 is checked first)', T, async () => {
  const t = uniqueTopic('413dead');
  const r = await rawSend('POST', '/publish', [
    ...rawAuth(), ['x-sse-topic', t], ['x-sse-id', uniqueId()], ['content-length', '10000000'],
  ], undefined, { timeoutMs: 5000 });
  assert.ok(r.status !== null, `no response within 5 s (timedOut=${r.timedOut})${heldBackHint()}`);
  assertJsonError(r, 413, 'payload_too_large');
});

test('a body of exactly MAX_BODY_BYTES is delivered', T, async () => {
  const t = uniqueTopic('max');
  const c = await subscribe({ headers: { 'x-sse-topic': t } });
  try {
    const body = 'm'.repeat(MAX - 4) + '🚀';
    assert.equal(Buffer.byteLength(body), MAX);
    const id = uniqueId();
    const r = await publishOk({ topics: t, id, body });
    assert.equal(r.delivered, 1);
    const ev = await c.waitForEvent((e) => e.id === id, 10_000);
    assert.equal(ev.data, body);
  } finally { c.close(); }
});

test('415: a non-UTF-8 body to a live topic', T, async () => {
  const t = uniqueTopic('415');
  const c = await subscribe({ headers: { 'x-sse-topic': t } });
  try {
    const bodies = {
      'invalid bytes ff fe': Buffer.from([0x66, 0x6f, 0xff, 0xfe, 0x6f]),
      'truncated sequence at the end': Buffer.concat([Buffer.from('abc'), Buffer.from('世', 'utf8').subarray(0, 2)]),
      'overlong encoding of /': Buffer.from([0x61, 0xc0, 0xaf, 0x62]),
      'encoded surrogate (CESU-8)': Buffer.from([0x61, 0xed, 0xa0, 0x80, 0x62]),
      'latin-1 é': Buffer.from('caf\xe9', 'latin1'),
    };
    for (const [name, body] of Object.entries(bodies)) {
      const r = await publish({ topics: t, id: uniqueId(), body, headers: { 'content-type': 'text/plain' } });
      assertJsonError(r, 415, 'unsupported_body', name);
    }
    await assertOnlyGoodArrives(c, t);
  } finally { c.close(); }
});

test('415: a non-UTF-8 chunked body to a live topic', T, async () => {
  const t = uniqueTopic('415chunked');
  const c = await subscribe({ headers: { 'x-sse-topic': t } });
  try {
    const body = Buffer.concat([Buffer.from('a'.repeat(1000)), Buffer.from([0xff]), Buffer.from('b'.repeat(1000))]);
    const r = await publish({ topics: t, id: uniqueId(), body, chunked: true });
    assertJsonError(r, 415, 'unsupported_body');
    await assertOnlyGoodArrives(c, t);
  } finally { c.close(); }
});

/** POST with a declared body of `length` bytes that is never sent; the 202 must come anyway. */
async function dropWithoutBody(topics) {
  const id = uniqueId('drop');
  const r = await rawSend('POST', '/publish', [
    ...rawAuth(), ['x-sse-topic', topics.join(',')], ['x-sse-id', id], ['content-type', 'text/plain'],
    ['content-length', String(MAX)],
  ], undefined, { timeoutMs: 5000 });
  assert.ok(r.status !== null, `no response within 5 s while the body was held back — the body is being waited for (timedOut=${r.timedOut})${heldBackHint()}`);
  assert.equal(r.status, 202, r.text);
  assert.deepEqual(r.json, {
    id, delivered: 0, topics: Object.fromEntries(topics.map((t) => [t, { dropped: 'no_subscribers' }])),
  });
}

// The largest body the limit allows is declared and never sent. (A content-length over the
// limit is a 413 by the documented check order, see the 413 test above.)
test('drop: a topic without subscribers answers 202 without reading a declared body (content-length)', T, async () => {
  await dropWithoutBody([uniqueTopic('drop')]);
});

test('drop: several topics without subscribers answer 202 without reading a declared body (content-length)', T, async () => {
  await dropWithoutBody([uniqueTopic('drop-a'), uniqueTopic('drop-b'), uniqueTopic('drop-c')]);
});

test('drop: a topic without subscribers answers 202 while a chunked body is left open', T, async () => {
  const t = uniqueTopic('drop-chunked');
  const id = uniqueId('dropc');
  // head + the first chunk; the terminating chunk never comes
  const head = buildRequest('POST', '/publish', [
    ...rawAuth(), ['x-sse-topic', t], ['x-sse-id', id], ['transfer-encoding', 'chunked'],
  ]);
  const r = await rawRequest([head, Buffer.from('5\r\nhello\r\n')], { timeoutMs: 5000, method: 'POST' });
  assert.ok(r.status !== null, `no response within 5 s while the chunked body was left open (timedOut=${r.timedOut})${heldBackHint()}`);
  assert.equal(r.status, 202, r.text);
  assert.deepEqual(r.json, { id, delivered: 0, topics: { [t]: { dropped: 'no_subscribers' } } });
});

test('drop: a live topic next to a dead one still reads and delivers the body', T, async () => {
  const live = uniqueTopic('mixed-live');
  const dead = uniqueTopic('mixed-dead');
  const c = await subscribe({ headers: { 'x-sse-topic': live } });
  try {
    const id = uniqueId();
    const body = 'x'.repeat(5000);
    const r = await rawSend('POST', '/publish', [
      ...rawAuth(), ['x-sse-topic', `${dead},${live}`], ['x-sse-id', id], ['content-length', String(body.length)],
    ], body, { timeoutMs: 5000 });
    assert.equal(r.status, 202, r.text);
    assert.deepEqual(r.json, { id, delivered: 1, topics: { [dead]: { dropped: 'no_subscribers' }, [live]: { delivered: 1 } } });
    const ev = await c.waitForEvent((e) => e.id === id);
    assert.equal(ev.data, body);
  } finally { c.close(); }
});
