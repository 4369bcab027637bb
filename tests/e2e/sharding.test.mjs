// A hot topic over shard objects (Cloudflare only): with TOPIC_SHARD_SIZE=50, 500 subscribers of
// one topic spread over the topic's object and its shards; every publish reaches all of them
// exactly once, in publish order, and the 202 counts them all.
//
//   node tests/e2e/run.mjs --files sharding --label wrangler-dev-topic-shards --var TOPIC_SHARD_SIZE:50
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  config, subscribe, openWs, publishOk, uniqueTopic, uniqueId, findTopic, poll, sleep, closeStreamsAfterFile,
} from './lib/index.mjs';

closeStreamsAfterFile();
const T = { timeout: 300_000 };
const SSE = 480;
const WS = 20;
const EVENTS = 200;
const configured = () => config.vars.TOPIC_SHARD_SIZE === '50';

test('sharding: 500 subscribers of one topic over shard objects each get 200 publishes exactly once, in order', T, async (t) => {
  if (config.target === 'native') return t.skip('Cloudflare only: a native node holds a topic in one place');
  if (!configured()) return t.skip('target not started with --var TOPIC_SHARD_SIZE:50');
  const topic = uniqueTopic('hot');
  const sse = [];
  const ws = [];
  try {
    for (let i = 0; i < SSE; i += 40) {
      sse.push(...await Promise.all(Array.from({ length: Math.min(40, SSE - i) }, () => subscribe({ headers: { 'x-sse-topic': topic } }))));
    }
    for (let i = 0; i < WS; i++) ws.push(await openWs({ query: { topic } }));
    const listed = await poll(async () => {
      const e = await findTopic(topic);
      return e?.connections === SSE + WS ? e : null;
    }, { timeoutMs: 30_000, label: `${SSE + WS} connections listed` });
    // 50 on the topic's own object, the other 450 over nine shards.
    assert.equal(listed.shards, (SSE + WS) / 50 - 1, `shards: ${JSON.stringify(listed)}`);

    const ids = Array.from({ length: EVENTS }, (_, i) => uniqueId(`h${i}`));
    for (const [i, id] of ids.entries()) {
      const r = await publishOk({ topics: topic, id, body: `event ${i}` });
      assert.deepEqual(r.topics[topic], { delivered: SSE + WS }, `publish ${i}: ${JSON.stringify(r)}`);
    }
    for (const [n, c] of sse.entries()) {
      await c.waitForCount(EVENTS, 30_000);
      assert.deepEqual(c.published.map((e) => e.id), ids, `SSE subscriber ${n}: every event once, in order`);
    }
    for (const [n, w] of ws.entries()) {
      await w.waitFor((x) => x.envelopes.length >= EVENTS, 30_000, `${EVENTS} envelopes`);
      assert.deepEqual(w.envelopes.map((m) => m.id), ids, `WebSocket subscriber ${n}: every event once, in order`);
    }
    await sleep(500);
    assert.ok(sse.every((c) => c.published.length === EVENTS), 'no duplicate on SSE');
    assert.ok(ws.every((w) => w.envelopes.length === EVENTS), 'no duplicate on WebSocket');
  } finally {
    for (const c of sse) c.close();
    for (const w of ws) w.close();
  }
  // The topic is forgotten with its last subscriber, shards included: a publish is dropped.
  await poll(async () => !(await findTopic(topic)), { timeoutMs: 2 * config.heartbeatMs + 10_000, label: 'topic gone' });
  const r = await publishOk({ topics: topic, id: uniqueId('after'), body: 'x' });
  assert.deepEqual(r.topics[topic], { dropped: 'no_subscribers' }, JSON.stringify(r));
});
