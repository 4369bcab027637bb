// Connection lifecycle: a gone client leaves its topics; keepalive comments.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  subscribe, openWs, publish, uniqueTopic, uniqueId, findTopic, listAllConnections, poll, config,
  closeStreamsAfterFile,
} from './lib/index.mjs';

closeStreamsAfterFile();
const LEAVE_MS = 2 * config.heartbeatMs + 3000;
const T = { timeout: LEAVE_MS + 60_000 };

/**
 * Wait until topic t is gone from the registry and connection `id` from the connection list
 * (no publish while waiting, so only the heartbeat can notice the client is gone), then check
 * that a publish to t is dropped.
 */
async function assertGone(t, id, closedAt) {
  const state = { topic: true, conn: true };
  try {
    await poll(async () => {
      state.topic = (await findTopic(t)) !== undefined;
      const { connections } = await listAllConnections();
      state.conn = connections.some((c) => c.id === id);
      return !state.topic && !state.conn;
    }, { timeoutMs: Math.max(500, LEAVE_MS - (Date.now() - closedAt)), intervalMs: 250, label: 'cleanup' });
  } catch (e) {
    throw new Error(`${LEAVE_MS} ms after the client left: topic listed=${state.topic}, connection listed=${state.conn} (${e.message})`);
  }
  const r = await publish({ topics: t, id: uniqueId('probe'), body: 'anyone?' });
  assert.equal(r.status, 202, r.text);
  assert.deepEqual(r.json?.topics?.[t], { dropped: 'no_subscribers' }, `publish after cleanup: ${r.text}`);
}

test('lifecycle: a closed SSE subscriber leaves topic, registry and routing within 2×heartbeat + 3 s', T, async () => {
  const t = uniqueTopic('gone');
  const c = await subscribe({ headers: { 'x-sse-topic': t } });
  const id = c.connectionId;
  await poll(async () => (await findTopic(t))?.connections === 1, { label: `${t} listed` });
  const { connections } = await listAllConnections({ topic: t });
  assert.deepEqual(connections.map((x) => x.id), [id]);
  c.close();
  await assertGone(t, id, Date.now());
});

test('lifecycle: a closed WebSocket subscriber leaves within 2×heartbeat + 3 s', T, async () => {
  const t = uniqueTopic('gone-ws');
  const w = await openWs({ query: { topic: t } });
  const id = w.connected.connection_id;
  await poll(async () => (await findTopic(t))?.connections === 1, { label: `${t} listed` });
  w.close();
  await assertGone(t, id, Date.now());
});

test('lifecycle: a client that leaves a multi-topic connection leaves every topic', T, async () => {
  const a = uniqueTopic('gone-a');
  const b = uniqueTopic('gone-b');
  const keep = await subscribe({ headers: { 'x-sse-topic': b } });
  const c = await subscribe({ headers: { 'x-sse-topic': `${a},${b}` } });
  try {
    await poll(async () => (await findTopic(b))?.connections === 2, { label: `${b} has 2 connections` });
    const closedAt = Date.now();
    c.close();
    await assertGone(a, c.connectionId, closedAt);
    const eb = await poll(async () => {
      const e = await findTopic(b);
      return e?.connections === 1 ? e : null;
    }, { timeoutMs: Math.max(1000, LEAVE_MS - (Date.now() - closedAt)), label: `${b} back to 1 connection` });
    assert.equal(eb.mode, 'unicast');
  } finally { keep.close(); c.close(); }
});

test('lifecycle: a `: keepalive` comment arrives within 2× the heartbeat interval', { timeout: 30_000 }, async (t) => {
  if (config.heartbeatMs > 5000) {
    t.skip(`E2E_HEARTBEAT_MS is ${config.heartbeatMs} (> 5000): waiting for a keepalive would take too long; run against a target configured with a short HEARTBEAT_INTERVAL_MS`);
    return;
  }
  const c = await subscribe({ headers: { 'x-sse-topic': uniqueTopic('keepalive') } });
  try {
    const start = c.startedAt;
    const k = await c.waitFor((x) => x.comments.find((m) => m.text === 'keepalive'), 2 * config.heartbeatMs + 500, '`: keepalive`');
    assert.ok(k.at - start <= 2 * config.heartbeatMs + 500, `first keepalive after ${k.at - start} ms`);
    // and they keep coming
    const n = c.comments.length;
    await c.waitFor((x) => x.comments.length > n && x.comments.at(-1).text === 'keepalive', 2 * config.heartbeatMs + 500, 'a second keepalive');
    assert.ok(c.rawText.includes(': keepalive'), 'raw stream shows `: keepalive`');
  } finally { c.close(); }
});
