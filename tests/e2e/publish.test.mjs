// POST /publish: delivery, the 202 body, multi-topic, ordering, check order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  subscribe, publish, publishOk, uniqueTopic, uniqueId, request, rawSend, rawAuth,
  assertJsonError, closeStreamsAfterFile, heldBackHint,
} from './lib/index.mjs';

closeStreamsAfterFile();
const T = { timeout: 30_000 };

test('publish: subscriber receives a frame with id, event and data', T, async () => {
  const t = uniqueTopic('frame');
  const c = await subscribe({ headers: { 'x-sse-topic': t } });
  try {
    const id = uniqueId('evt');
    await publishOk({ topics: t, id, event: 'order.created', body: '{"n":1}' });
    const ev = await c.waitForEvent((e) => e.id === id);
    assert.equal(ev.type, 'order.created');
    assert.equal(ev.event, 'order.created');
    assert.equal(ev.data, '{"n":1}');
    assert.equal(ev.lastEventId, id);
    const names = new Set(ev.fields.map((f) => f.field));
    for (const n of names) assert.ok(['id', 'event', 'data'].includes(n), `unexpected field ${n}: in frame ${JSON.stringify(ev.fields)}`);
    assert.equal(ev.fields.filter((f) => f.field === 'id').length, 1);
  } finally { c.close(); }
});

test('publish: no event: line when x-sse-event is absent', T, async () => {
  const t = uniqueTopic('noevent');
  const c = await subscribe({ headers: { 'x-sse-topic': t } });
  try {
    const id = uniqueId();
    await publishOk({ topics: t, id, body: 'plain' });
    const ev = await c.waitForEvent((e) => e.id === id);
    assert.equal(ev.event, null, `frame has an event: line: ${JSON.stringify(ev.fields)}`);
    assert.equal(ev.type, 'message');
    assert.equal(ev.data, 'plain');
  } finally { c.close(); }
});

test('publish: 202 JSON body {id, delivered, topics:{t:{delivered}}}', T, async () => {
  const t = uniqueTopic('shape');
  const c1 = await subscribe({ headers: { 'x-sse-topic': t } });
  const c2 = await subscribe({ query: { topic: t } });
  try {
    const id = uniqueId();
    const r = await publish({ topics: t, id, body: 'hello' });
    assert.equal(r.status, 202, r.text);
    assert.match(String(r.headers['content-type']), /application\/json/i);
    assert.equal(r.headers['access-control-allow-origin'], '*');
    assert.deepEqual(r.json, { id, delivered: 2, topics: { [t]: { delivered: 2 } } });
    await c1.waitForEvent((e) => e.id === id);
    await c2.waitForEvent((e) => e.id === id);
  } finally { c1.close(); c2.close(); }
});

test('publish: 202 body for a topic without subscribers says dropped', T, async () => {
  const t = uniqueTopic('dead');
  const id = uniqueId();
  const r = await publish({ topics: t, id, body: 'nobody' });
  assert.equal(r.status, 202, r.text);
  assert.deepEqual(r.json, { id, delivered: 0, topics: { [t]: { dropped: 'no_subscribers' } } });
});

test('publish: one POST to several topics reports per-topic counts', T, async () => {
  const a = uniqueTopic('multi-a');
  const b = uniqueTopic('multi-b');
  const dead = uniqueTopic('multi-dead');
  const a1 = await subscribe({ headers: { 'x-sse-topic': a } });
  const a2 = await subscribe({ headers: { 'x-sse-topic': a } });
  const b1 = await subscribe({ headers: { 'x-sse-topic': b } });
  try {
    const id = uniqueId();
    const r = await publish({ topics: [a, b, dead], id, event: 'fan', body: 'to all' });
    assert.equal(r.status, 202, r.text);
    assert.deepEqual(r.json, {
      id,
      delivered: 3,
      topics: { [a]: { delivered: 2 }, [b]: { delivered: 1 }, [dead]: { dropped: 'no_subscribers' } },
    });
    for (const c of [a1, a2, b1]) {
      const ev = await c.waitForEvent((e) => e.id === id);
      assert.equal(ev.data, 'to all');
      assert.equal(ev.event, 'fan');
    }
  } finally { a1.close(); a2.close(); b1.close(); }
});

test('publish: duplicate topics in x-sse-topic are merged', T, async () => {
  const t = uniqueTopic('dup');
  const c = await subscribe({ headers: { 'x-sse-topic': t } });
  try {
    const id = uniqueId();
    const r = await publishOk({ topics: `${t},${t}`, id, body: 'once' });
    assert.deepEqual(r, { id, delivered: 1, topics: { [t]: { delivered: 1 } } });
    const check = uniqueId('after');
    await publishOk({ topics: t, id: check, body: 'x' });
    await c.waitForEvent((e) => e.id === check);
    assert.equal(c.published.filter((e) => e.id === id).length, 1, 'event delivered more than once');
  } finally { c.close(); }
});

test('publish: a multi-topic subscriber receives the events of both topics', T, async () => {
  const a = uniqueTopic('both-a');
  const b = uniqueTopic('both-b');
  const c = await subscribe({ headers: { 'x-sse-topic': `${a},${b}` } });
  try {
    const ia = uniqueId('a');
    const ib = uniqueId('b');
    assert.equal((await publishOk({ topics: a, id: ia, body: 'from a' })).delivered, 1);
    assert.equal((await publishOk({ topics: b, id: ib, body: 'from b' })).delivered, 1);
    const evs = await c.waitForCount(2);
    assert.deepEqual(evs.map((e) => [e.id, e.data]), [[ia, 'from a'], [ib, 'from b']]);
  } finally { c.close(); }
});

test('publish: 200 events arrive in publish order', { timeout: 120_000 }, async () => {
  const t = uniqueTopic('order');
  const c = await subscribe({ headers: { 'x-sse-topic': t } });
  try {
    const ids = [];
    for (let i = 0; i < 200; i++) {
      const id = `o-${i}`;
      ids.push(id);
      const r = await publish({ topics: t, id, body: `n=${i}` });
      assert.equal(r.status, 202, `publish #${i}: ${r.status} ${r.text}`);
      assert.equal(r.json?.delivered, 1, `publish #${i}: ${r.text}`);
    }
    const evs = await c.waitForCount(200, 20_000);
    assert.deepEqual(evs.map((e) => e.id), ids);
    assert.deepEqual(evs.map((e) => e.data), ids.map((_, i) => `n=${i}`));
  } finally { c.close(); }
});

test('publish: checks run in order — 405 before 401', T, async () => {
  const r = await request('GET', '/publish');
  assertJsonError(r, 405, 'method_not_allowed', 'GET /publish without key');
});

test('publish: checks run in order — 401 before header validation', T, async () => {
  const r = await publish({ auth: 'none', body: 'x' });
  assertJsonError(r, 401, 'unauthorized', 'POST /publish without key and without topic');
});

test('publish: checks run in order — 400 before 413, body not awaited', T, async () => {
  // invalid id + a declared body far over the limit that is never sent: the 400 comes at once
  const r = await rawSend('POST', '/publish', [
    ...rawAuth(),
    ['x-sse-topic', uniqueTopic('order400')],
    ['x-sse-id', 'bad id'],
    ['content-length', '10000000'],
  ], undefined, { timeoutMs: 5000 });
  assert.ok(r.status !== null, `no response within 5 s (timed out: ${r.timedOut})${heldBackHint()}`);
  assertJsonError(r, 400, 'invalid_id', 'invalid id with oversize content-length');
});
