// ?envelope=json on /sse, and the WebSocket transport.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  subscribe, publishOk, uniqueTopic, uniqueId, request, assertJsonError, openWs,
  closeStreamsAfterFile,
} from './lib/index.mjs';

closeStreamsAfterFile();
const T = { timeout: 30_000 };

function assertEnvelope(env, { topic, id, event, data }, before) {
  assert.deepEqual(Object.keys(env).sort(), ['data', 'event', 'id', 'topic', 'ts'], `envelope keys: ${JSON.stringify(env)}`);
  assert.equal(env.topic, topic);
  assert.equal(env.id, id);
  assert.equal(env.event, event);
  assert.equal(env.data, data);
  assert.ok(Number.isInteger(env.ts), `ts should be an integer: ${env.ts}`);
  // publish time in ms since the epoch: between just before the publish and now (1 min slack for clock skew)
  assert.ok(env.ts >= before - 60_000 && env.ts <= Date.now() + 60_000, `ts ${env.ts} is not near now ${Date.now()}`);
}

test('envelope: ?envelope=json wraps each event as one line of JSON {topic,id,event,data,ts}', T, async () => {
  const a = uniqueTopic('env-a');
  const b = uniqueTopic('env-b');
  const c = await subscribe({ query: { topic: `${a},${b}`, envelope: 'json' } });
  try {
    assert.deepEqual(c.connected.topics, [a, b]);
    const before = Date.now();
    const ia = uniqueId('ea');
    const ib = uniqueId('eb');
    await publishOk({ topics: a, id: ia, event: 'order.created', body: 'first line\nsecond line' });
    await publishOk({ topics: b, id: ib, event: 'other', body: 'ünïcödé 🚀' });
    const evs = await c.waitForCount(2);
    for (const ev of evs) {
      assert.equal(ev.fields.filter((f) => f.field === 'data').length, 1, `data should be one line: ${JSON.stringify(ev.fields)}`);
    }
    assertEnvelope(JSON.parse(evs[0].data), { topic: a, id: ia, event: 'order.created', data: 'first line\nsecond line' }, before);
    assertEnvelope(JSON.parse(evs[1].data), { topic: b, id: ib, event: 'other', data: 'ünïcödé 🚀' }, before);
    assert.equal(evs[0].id, ia, 'the frame keeps its id: line');
    assert.equal(evs[1].id, ib, 'the frame keeps its id: line');
  } finally { c.close(); }
});

test('envelope: event is null when the publisher sent no x-sse-event', T, async () => {
  const t = uniqueTopic('env-null');
  const c = await subscribe({ headers: { 'x-sse-topic': t }, query: { envelope: 'json' } });
  try {
    const before = Date.now();
    const id = uniqueId();
    await publishOk({ topics: t, id, body: '' });
    const ev = await c.waitForEvent((e) => e.id === id);
    const env = JSON.parse(ev.data);
    assertEnvelope(env, { topic: t, id, event: null, data: '' }, before);
  } finally { c.close(); }
});

test('ws: /ws?topic= sends a connected message, then one envelope per event', T, async () => {
  const a = uniqueTopic('ws-a');
  const b = uniqueTopic('ws-b');
  const ws = await openWs({ query: { topic: `${a},${b}` } });
  try {
    const first = ws.messages[0];
    assert.equal(first.type, 'connected', `first message: ${ws.texts[0]}`);
    assert.equal(typeof first.connection_id, 'string');
    assert.ok(first.connection_id.length > 0);
    assert.deepEqual(first.topics, [a, b]);
    const before = Date.now();
    const ia = uniqueId('wa');
    const ib = uniqueId('wb');
    const ra = await publishOk({ topics: a, id: ia, event: 'e1', body: 'x\r\ny' });
    assert.equal(ra.topics[a].delivered, 1, JSON.stringify(ra));
    await publishOk({ topics: b, id: ib, body: '中文' });
    // messages the client sends are ignored
    ws.ws.send('hello from the client');
    await ws.waitFor((w) => w.envelopes.length >= 2);
    const [e1, e2] = ws.envelopes;
    assert.equal(e1.topic, a);
    assert.equal(e1.id, ia);
    assert.equal(e1.event, 'e1');
    assert.ok(e1.data === 'x\ny' || e1.data === 'x\r\ny', `data: ${JSON.stringify(e1.data)}`);
    assertEnvelope(e2, { topic: b, id: ib, event: null, data: '中文' }, before);
    // still open and delivering after the client's message
    const ic = uniqueId('wc');
    await publishOk({ topics: a, id: ic, body: 'after' });
    await ws.waitFor((w) => w.envelopes.find((e) => e.id === ic));
    assert.equal(ws.closed, false);
  } finally { ws.close(); }
});

test('ws: /ws with the topic list rules (repeated ?topic=)', T, async () => {
  const a = uniqueTopic('wsr-a');
  const b = uniqueTopic('wsr-b');
  const ws = await openWs({ query: { topic: [a, b] } });
  try {
    assert.deepEqual(ws.connected.topics, [a, b]);
  } finally { ws.close(); }
});

test('ws: GET /ws without upgrade answers 426 JSON', T, async () => {
  const r = await request('GET', '/ws', { query: { topic: uniqueTopic('ws426') } });
  assertJsonError(r, 426, 'upgrade_required', 'GET /ws without upgrade');
});
