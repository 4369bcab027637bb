// Admin API: topics, connections, tail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  subscribe, openSse, openWs, publishOk, uniqueTopic, uniqueId, adminGet, findTopic,
  listAllTopics, listAllConnections, poll, config, authHeaders, closeStreamsAfterFile,
} from './lib/index.mjs';

closeStreamsAfterFile();
const T = { timeout: 60_000 };
const LEAVE_MS = 2 * config.heartbeatMs + 3000; // documented bound for leaving, plus slack
const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;
const CLOUDFLARE = config.target !== 'native';

/**
 * A topic entry without its Cloudflare-only fields, after checking them: on Cloudflare `wakes`
 * (≥ 1) and `last_woke_at` (RFC 3339) say how often the topic's object was started; natively
 * they are absent.
 */
function withoutWakes(e) {
  const { wakes, last_woke_at: lastWoke, ...rest } = e;
  if (CLOUDFLARE) {
    assert.ok(Number.isInteger(wakes) && wakes >= 1, `wakes: ${JSON.stringify(e)}`);
    assert.match(lastWoke, ISO_RE, `last_woke_at: ${JSON.stringify(e)}`);
  } else {
    assert.ok(!('wakes' in e) && !('last_woke_at' in e), `no wakes natively: ${JSON.stringify(e)}`);
  }
  return rest;
}

async function connectionsOf(topic) {
  const { connections } = await listAllConnections({ topic });
  return connections;
}

test('admin: /admin/api/topics lists a unicast topic with its connection count', T, async () => {
  const t = uniqueTopic('unicast');
  const c = await subscribe({ headers: { 'x-sse-topic': t } });
  try {
    const entry = await poll(async () => {
      const e = await findTopic(t);
      return e && e.connections === 1 ? e : null;
    }, { label: `${t} listed with 1 connection` });
    assert.deepEqual(withoutWakes(entry), { topic: t, connections: 1, mode: 'unicast' });
  } finally { c.close(); }
});

test('admin: a topic with several connections is multicast, and unicast again when they leave', T, async () => {
  const t = uniqueTopic('multicast');
  const c1 = await subscribe({ headers: { 'x-sse-topic': t } });
  const c2 = await subscribe({ query: { topic: t } });
  const w = await openWs({ query: { topic: t } });
  try {
    const entry = await poll(async () => {
      const e = await findTopic(t);
      return e && e.connections === 3 ? e : null;
    }, { label: `${t} listed with 3 connections` });
    assert.deepEqual(withoutWakes(entry), { topic: t, connections: 3, mode: 'multicast' });
    c2.close();
    w.close();
    const after = await poll(async () => {
      const e = await findTopic(t);
      return e && e.connections === 1 ? e : null;
    }, { timeoutMs: LEAVE_MS, label: `${t} back to 1 connection` });
    assert.equal(after.mode, 'unicast');
  } finally { c1.close(); c2.close(); w.close(); }
});

test('admin: /admin/api/topics pages are sorted by topic name, with total and next_cursor', T, async () => {
  const prefix = uniqueTopic('sorted');
  const names = ['c', 'a', 'b'].map((s) => `${prefix}-${s}`);
  const cs = await Promise.all(names.map((t) => subscribe({ headers: { 'x-sse-topic': t } })));
  try {
    await poll(async () => {
      const { topics } = await listAllTopics();
      return names.every((n) => topics.some((e) => e.topic === n));
    }, { label: 'all three topics listed' });
    // small pages, to exercise the cursor
    const seen = [];
    let cursor;
    let pages = 0;
    for (;;) {
      const r = await adminGet('/admin/api/topics', { limit: 2, cursor });
      assert.equal(r.status, 200, r.text);
      const page = r.json;
      assert.ok(Array.isArray(page.topics) && page.topics.length <= 2, `page size ${page.topics?.length}`);
      assert.ok(Number.isInteger(page.total), `total: ${page.total}`);
      assert.ok('next_cursor' in page, 'next_cursor missing');
      for (const e of page.topics) {
        assert.deepEqual(Object.keys(withoutWakes(e)).sort(), ['connections', 'mode', 'topic']);
        assert.ok(Number.isInteger(e.connections) && e.connections >= 1, JSON.stringify(e));
        assert.equal(e.mode, e.connections === 1 ? 'unicast' : 'multicast', JSON.stringify(e));
      }
      seen.push(...page.topics.map((e) => e.topic));
      pages++;
      if (page.next_cursor === null) break;
      cursor = page.next_cursor;
      assert.ok(pages < 5000, 'too many pages');
    }
    const mine = seen.filter((s) => s.startsWith(prefix));
    assert.deepEqual(mine, [...names].sort(), 'our topics, in name order, each once');
    for (let i = 1; i < seen.length; i++) {
      assert.ok(seen[i - 1] < seen[i], `not strictly sorted: ${seen[i - 1]} then ${seen[i]}`);
    }
  } finally { cs.forEach((c) => c.close()); }
});

test('admin: /admin/api/connections?topic= lists SSE and WS connections with their fields', T, async () => {
  const t = uniqueTopic('conns');
  const other = uniqueTopic('conns-other');
  const start = Date.now();
  const s = await subscribe({ headers: { 'x-sse-topic': `${t},${other}` } });
  const w = await openWs({ query: { topic: t } });
  try {
    const conns = await poll(async () => {
      const list = await connectionsOf(t);
      return list.length === 2 ? list : null;
    }, { label: `two connections listed for ${t}` });
    const byId = Object.fromEntries(conns.map((c) => [c.id, c]));
    const sse = byId[s.connectionId];
    const ws = byId[w.connected.connection_id];
    assert.ok(sse, `SSE connection ${s.connectionId} not listed: ${JSON.stringify(conns)}`);
    assert.ok(ws, `WS connection ${w.connected.connection_id} not listed: ${JSON.stringify(conns)}`);
    assert.deepEqual(sse.topics, [t, other]);
    assert.deepEqual(ws.topics, [t]);
    assert.equal(sse.transport, 'sse');
    assert.equal(ws.transport, 'ws');
    for (const c of [sse, ws]) {
      for (const k of ['id', 'topics', 'transport', 'connected_at', 'node', 'events_sent']) assert.ok(k in c, `field ${k} missing: ${JSON.stringify(c)}`);
      assert.match(c.connected_at, ISO_RE);
      const at = Date.parse(c.connected_at);
      assert.ok(at >= start - 60_000 && at <= Date.now() + 60_000, `connected_at ${c.connected_at} not near now`);
      assert.equal(typeof c.node, 'string');
      assert.ok(c.node.length > 0, 'node empty');
      assert.ok(typeof c.node === 'string' && /^[A-Za-z0-9_.:-]{1,128}$/.test(c.node), `node: ${c.node}`);
      assert.ok(Number.isInteger(c.events_sent) && c.events_sent >= 0, `events_sent ${c.events_sent}`);
    }
    const ids = conns.map((c) => c.id);
    assert.deepEqual(ids, [...ids].sort(), 'connections sorted by id');
    // the other topic's filter lists only the SSE connection
    const otherList = await poll(async () => {
      const list = await connectionsOf(other);
      return list.length === 1 ? list : null;
    }, { label: `one connection listed for ${other}` });
    assert.equal(otherList[0].id, s.connectionId);
    // the unfiltered list has both too
    const { connections: all } = await listAllConnections();
    for (const id of [s.connectionId, w.connected.connection_id]) {
      assert.equal(all.filter((c) => c.id === id).length, 1, `${id} not listed exactly once in the unfiltered list`);
    }
  } finally { s.close(); w.close(); }
});

test('admin: events_sent counts delivered events (refreshed each heartbeat)', T, async () => {
  const t = uniqueTopic('sent');
  const c = await subscribe({ headers: { 'x-sse-topic': t } });
  try {
    for (let i = 0; i < 3; i++) await publishOk({ topics: t, id: uniqueId(), body: `n${i}` });
    await c.waitForCount(3);
    const conn = await poll(async () => {
      const list = await connectionsOf(t);
      const me = list.find((x) => x.id === c.connectionId);
      return me && me.events_sent >= 3 ? me : null;
    }, { timeoutMs: LEAVE_MS, label: 'events_sent ≥ 3' });
    assert.ok(conn.events_sent <= 4, `events_sent ${conn.events_sent} for 3 events (+ the connected frame at most)`);
  } finally { c.close(); }
});

test('admin: tail streams `published` with the envelope for a topic with a subscriber', T, async () => {
  const t = uniqueTopic('tail-pub');
  const sub = await subscribe({ headers: { 'x-sse-topic': t } });
  const tail = await openSse({ path: `/admin/api/topics/${t}/tail`, headers: authHeaders() });
  try {
    assert.equal(tail.status, 200, `tail: ${tail.status} ${tail.body ?? ''}`);
    assert.match(String(tail.headers['content-type']), /^text\/event-stream/);
    const first = tail.blocks[0];
    assert.ok(first.fields.some((f) => f.field === 'retry'), 'tail opens with retry:');
    assert.equal(tail.events[0].type, 'connected');
    assert.equal(tail.events[0].id, undefined);
    const before = Date.now();
    const id = uniqueId('tp');
    await publishOk({ topics: t, id, event: 'order.created', body: 'tail me\nplease' });
    const ev = await tail.waitForEvent((e) => e.type === 'published' && e.id === id, 5000, 'event: published');
    const env = JSON.parse(ev.data);
    assert.equal(env.topic, t);
    assert.equal(env.id, id);
    assert.equal(env.event, 'order.created');
    assert.equal(env.data, 'tail me\nplease');
    assert.ok(Number.isInteger(env.ts) && env.ts >= before - 60_000 && env.ts <= Date.now() + 60_000, `ts ${env.ts}`);
    await sub.waitForEvent((e) => e.id === id);
    // a tail does not count as a connection
    const list = await connectionsOf(t);
    assert.deepEqual(list.map((c) => c.id), [sub.connectionId], 'only the subscriber is a connection of the topic');
  } finally { sub.close(); tail.close?.(); }
});

test('admin: tail streams `dropped` for a publish to a topic without subscribers, and does not keep it alive', T, async () => {
  const t = uniqueTopic('tail-drop');
  const tail = await openSse({ path: `/admin/api/topics/${t}/tail`, headers: authHeaders() });
  try {
    assert.equal(tail.status, 200, `tail: ${tail.status} ${tail.body ?? ''}`);
    const id = uniqueId('td');
    const r = await publishOk({ topics: t, id, body: 'nobody listens' });
    assert.deepEqual(r.topics[t], { dropped: 'no_subscribers' }, 'a tail must not make the topic live');
    const ev = await tail.waitForEvent((e) => e.type === 'dropped' && e.id === id, 5000, 'event: dropped');
    const d = JSON.parse(ev.data);
    assert.equal(d.topic, t);
    assert.equal(d.id, id);
    assert.equal(d.reason, 'no_subscribers');
    assert.ok(Number.isInteger(d.ts), `ts ${d.ts}`);
    assert.equal(await findTopic(t), undefined, 'a tailed topic without subscribers is listed');
    // then a subscriber arrives: the same tail sees `published`
    const sub = await subscribe({ headers: { 'x-sse-topic': t } });
    try {
      const id2 = uniqueId('tp2');
      const r2 = await publishOk({ topics: t, id: id2, body: 'now someone listens' });
      assert.equal(r2.delivered, 1);
      await tail.waitForEvent((e) => e.type === 'published' && e.id === id2, 5000, 'event: published after subscribe');
    } finally { sub.close(); }
  } finally { tail.close?.(); }
});
