// Retention and resume (docs/replay.md): a retained topic keeps events with nobody connected; a
// subscriber with Last-Event-ID (header, or ?last_event_id=) gets the retained events after it,
// then live ones, with no gap and no duplicate; an unknown or expired id is a `replay-gap` frame.
//
// Needs the target started with the retention rules below:
//   node tests/e2e/run.mjs --files replay --label wrangler-dev-replay --var 'RETENTION:e2e-rp-*=5/600s,e2e-rpb-*=2000/600s'
//   RETENTION='e2e-rp-*=5/600s,e2e-rpb-*=2000/600s' sse-gateway &  node tests/e2e/run.mjs --target native --base-url ... --files replay --var 'RETENTION:...'
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  config, subscribe, publishOk, uniqueTopic, uniqueId, openWs, closeStreamsAfterFile, sleep,
} from './lib/index.mjs';

closeStreamsAfterFile();
const T = { timeout: 120_000 };
const configured = () => (config.vars.RETENTION ?? '').includes('e2e-rp-*=5') && (config.vars.RETENTION ?? '').includes('e2e-rpb-*=2000');
const skipReason = "target not started with --var 'RETENTION:e2e-rp-*=5/600s,e2e-rpb-*=2000/600s'";

const data = (c) => c.published.filter((e) => e.type !== 'replay-gap');

test('replay: a retained topic keeps events with nobody connected; Last-Event-ID resumes after it, then live', T, async (t) => {
  if (!configured()) return t.skip(skipReason);
  const topic = uniqueTopic('rp');
  const ids = [1, 2, 3, 4].map((i) => uniqueId(`r${i}`));
  for (const id of ids) {
    const r = await publishOk({ topics: topic, id, body: `body ${id}` });
    assert.deepEqual(r.topics[topic], { delivered: 0, retained: true }, JSON.stringify(r));
    assert.equal(r.delivered, 0);
  }
  const c = await subscribe({ headers: { 'x-sse-topic': topic, 'last-event-id': ids[1] } });
  try {
    const replayed = await c.waitForCount(2);
    assert.deepEqual(replayed.map((e) => e.id), ids.slice(2));
    assert.equal(replayed[0].data, `body ${ids[2]}`);
    const live = uniqueId('live');
    const r = await publishOk({ topics: topic, id: live, body: 'live' });
    assert.deepEqual(r.topics[topic], { delivered: 1, retained: true });
    const ev = await c.waitForEvent((e) => e.id === live);
    assert.equal(ev.data, 'live');
    assert.deepEqual(c.published.map((e) => e.id), [...ids.slice(2), live], 'no duplicate');
  } finally { c.close(); }
  // ?last_event_id= works as the header does (EventSource's first connection cannot set it).
  const q = await subscribe({ query: { topic, last_event_id: ids[2] } });
  try {
    const got = await q.waitForCount(2);
    assert.equal(got[0].id, ids[3]);
  } finally { q.close(); }
});

test('replay: an id counted out of the window is a replay-gap "expired"; a never-seen id is "unknown_id"', T, async (t) => {
  if (!configured()) return t.skip(skipReason);
  const topic = uniqueTopic('rp');
  const ids = Array.from({ length: 7 }, (_, i) => uniqueId(`x${i}`));
  for (const id of ids) await publishOk({ topics: topic, id, body: id });
  const c = await subscribe({ headers: { 'x-sse-topic': topic, 'last-event-id': ids[0] } });
  try {
    const gap = await c.waitForEvent((e) => e.type === 'replay-gap');
    assert.ok(!gap.fields.some((f) => f.field === 'id'), 'a replay-gap frame has no id: line');
    assert.deepEqual(JSON.parse(gap.data), { topic, last_event_id: ids[0], reason: 'expired' });
    await sleep(300);
    assert.deepEqual(data(c).map((e) => e.id), [], 'after a gap: live events only');
  } finally { c.close(); }
  const fresh = uniqueTopic('rp');
  await publishOk({ topics: fresh, id: uniqueId('f'), body: 'x' });
  const u = await subscribe({ headers: { 'x-sse-topic': fresh, 'last-event-id': 'never-published' } });
  try {
    const gap = await u.waitForEvent((e) => e.type === 'replay-gap');
    assert.equal(JSON.parse(gap.data).reason, 'unknown_id');
  } finally { u.close(); }
  // A topic with no retention rule: no replay, no gap frame (resume is opt-in by config).
  const plain = uniqueTopic('plain');
  const p = await subscribe({ headers: { 'x-sse-topic': plain, 'last-event-id': ids[0] } });
  try {
    const id = uniqueId('p');
    await publishOk({ topics: plain, id, body: 'p' });
    await p.waitForEvent((e) => e.id === id);
    assert.deepEqual(p.published.map((e) => e.type), ['message']);
  } finally { p.close(); }
});

test('replay: multi-topic resume and WebSocket ?last_event_id=', T, async (t) => {
  if (!configured()) return t.skip(skipReason);
  const [a, b] = [uniqueTopic('rp'), uniqueTopic('rp')];
  const shared = uniqueId('both');
  await publishOk({ topics: [a, b], id: shared, body: 's' });
  const onlyA = uniqueId('a');
  await publishOk({ topics: a, id: onlyA, body: 'a' });
  const last = uniqueId('bonly');
  await publishOk({ topics: b, id: last, body: 'b' });
  // The id is in both topics: each resumes after it.
  const c = await subscribe({ query: { topic: `${a},${b}`, envelope: 'json' }, headers: { 'last-event-id': shared } });
  try {
    const got = await c.waitForCount(2);
    assert.deepEqual(got.map((e) => `${JSON.parse(e.data).topic}/${e.id}`).sort(), [`${a}/${onlyA}`, `${b}/${last}`].sort());
  } finally { c.close(); }
  // The id is only in b: b resumes after it, a says replay-gap.
  const ws = await openWs({ query: { topic: `${a},${b}`, last_event_id: last } });
  try {
    const gap = await ws.waitFor((w) => w.envelopes.find((m) => m.type === 'replay_gap'), 5000, 'replay_gap');
    assert.deepEqual(gap, { type: 'replay_gap', topic: a, last_event_id: last, reason: 'unknown_id' });
    const live = uniqueId('live');
    await publishOk({ topics: b, id: live, body: 'l' });
    const ev = await ws.waitFor((w) => w.envelopes.find((m) => m.id === live), 5000, 'live');
    assert.equal(ev.topic, b);
    assert.equal(ws.envelopes.filter((m) => m.type !== 'replay_gap').length, 1, JSON.stringify(ws.envelopes));
  } finally { ws.close(); }
});

test('replay: subscribers killed at random during a publish burst reconnect with their last id and end with every event exactly once', T, async (t) => {
  if (!configured()) return t.skip(skipReason);
  const topic = uniqueTopic('rpb');
  const N = 300;
  const SUBS = 4;
  const subs = Array.from({ length: SUBS }, () => ({ seen: [], reconnects: 0, last: null, conn: null }));
  const first = uniqueId('start');
  await publishOk({ topics: topic, id: first, body: 'start' });
  for (const s of subs) {
    s.last = first;
    s.conn = await subscribe({ headers: { 'x-sse-topic': topic, 'last-event-id': first } });
  }
  const harvest = (s) => {
    for (const e of data(s.conn).slice(s.taken ?? 0)) s.seen.push(e.id);
    s.taken = data(s.conn).length;
    if (s.seen.length) s.last = s.seen[s.seen.length - 1];
  };
  let publishing = true;
  const chaos = (async () => {
    while (publishing) {
      await sleep(20 + Math.random() * 60);
      const s = subs[Math.floor(Math.random() * SUBS)];
      harvest(s);
      s.conn.close();
      s.reconnects++;
      s.taken = 0;
      s.conn = await subscribe({ headers: { 'x-sse-topic': topic, 'last-event-id': s.last } });
    }
  })();
  const ids = [];
  for (let i = 0; i < N; i++) {
    const id = `b${i}`;
    ids.push(id);
    await publishOk({ topics: topic, id, body: String(i) });
  }
  publishing = false;
  await chaos;
  for (const s of subs) {
    await s.conn.waitFor((c) => data(c).some((e) => e.id === ids[N - 1]) || s.last === ids[N - 1], 15_000, 'the last event');
    harvest(s);
    s.conn.close();
    assert.ok(!s.conn.published.some((e) => e.type === 'replay-gap'), 'the window covers the burst: no gap');
    assert.deepEqual(s.seen, ids, `subscriber with ${s.reconnects} reconnects: every event exactly once, in order`);
  }
  assert.ok(subs.reduce((n, s) => n + s.reconnects, 0) > 0, 'the chaos killed at least one connection');
});
