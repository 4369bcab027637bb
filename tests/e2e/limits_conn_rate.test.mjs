// Connection limits (per node, per topic) and the per-API-key publish rate limit.
//
// These limits are off or very high by default, so each test runs only when the target was
// started with the limit configured and says so (`run.mjs --var KEY:VALUE`, which also tells the
// tests through E2E_VARS). Otherwise it is skipped with the reason: never a silent pass.
//
//   node tests/e2e/run.mjs --files limits_conn_rate --label wrangler-dev-limits \
//        --var PUBLISH_RATE_PER_KEY:5 --var PUBLISH_BURST_PER_KEY:5 --var MAX_CONNECTIONS_PER_TOPIC:5
//   MAX_CONNECTIONS_PER_NODE=20 PUBLISH_RATE_PER_KEY=5 ... sse-gateway &
//   node tests/e2e/run.mjs --target native --base-url ... --files limits_conn_rate --var MAX_CONNECTIONS_PER_NODE:20 ...
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  config, openSse, subscribe, publish, publishOk, uniqueTopic, uniqueId, assertJsonError, sleep, poll,
  closeStreamsAfterFile,
} from './lib/index.mjs';

closeStreamsAfterFile();
const T = { timeout: 120_000 };
const num = (k) => (config.vars[k] === undefined ? 0 : Number(config.vars[k]));

function assertRetryAfter(r, where) {
  const ra = r.headers['retry-after'];
  assert.ok(ra !== undefined, `${where}: no retry-after header`);
  assert.match(String(ra), /^[1-9][0-9]*$/, `${where}: retry-after must be whole seconds ≥ 1, got ${ra}`);
  return Number(ra);
}

test('MAX_CONNECTIONS_PER_NODE: the connection past the limit gets 503 connection_limit + retry-after; a freed slot is reusable', T, async (t) => {
  const max = num('MAX_CONNECTIONS_PER_NODE');
  if (config.target !== 'native') return t.skip('Cloudflare has no node: the per-topic limit (MAX_CONNECTIONS_PER_TOPIC, per Durable Object) applies instead');
  if (!max) return t.skip('target not started with --var MAX_CONNECTIONS_PER_NODE:N');
  if (max > 200) return t.skip(`MAX_CONNECTIONS_PER_NODE=${max} is too many to open in a test (≤ 200)`);
  const open = [];
  try {
    let refused = null;
    // The node may already hold connections of other runs: open until refused, at most max.
    for (let i = 0; i <= max && !refused; i++) {
      const r = await openSse({ query: { topic: uniqueTopic(`node${i}`) } });
      if (r.isError) refused = r; else open.push(r);
    }
    assert.ok(refused, `${max + 1} connections were accepted with MAX_CONNECTIONS_PER_NODE=${max}`);
    assert.ok(open.length <= max);
    assertJsonError(refused, 503, 'connection_limit');
    assertRetryAfter(refused, '503');
    // any topic counts against the same node limit
    const over = await openSse({ query: { topic: uniqueTopic('nodeover') } });
    assert.equal(over.status, 503, 'still refused while full');
    open.pop().close();
    const again = await poll(async () => {
      const r = await openSse({ query: { topic: uniqueTopic('nodeagain') } });
      if (r.isError) return null;
      return r;
    }, { timeoutMs: 5000, label: 'a connection accepted once one left' });
    open.push(again);
  } finally {
    for (const c of open) c.close();
  }
});

test('MAX_CONNECTIONS_PER_TOPIC: the subscriber past the limit gets 503 connection_limit + retry-after; other topics are unaffected', T, async (t) => {
  const max = num('MAX_CONNECTIONS_PER_TOPIC');
  if (!max) return t.skip('target not started with --var MAX_CONNECTIONS_PER_TOPIC:N (default 20000 is too many to reach in a test)');
  if (max > 200) return t.skip(`MAX_CONNECTIONS_PER_TOPIC=${max} is too many to open in a test (≤ 200)`);
  const topic = uniqueTopic('topicmax');
  const open = [];
  try {
    for (let i = 0; i < max; i++) open.push(await subscribe({ query: { topic } }));
    const r = await openSse({ query: { topic } });
    assertJsonError(r, 503, 'connection_limit');
    assertRetryAfter(r, '503');
    const other = await subscribe({ query: { topic: uniqueTopic('topicmax-other') } });
    open.push(other);
    const id = uniqueId();
    const res = await publishOk({ topics: topic, id, body: 'x' });
    assert.equal(res.delivered, max, 'the subscribers within the limit all receive');
  } finally {
    for (const c of open) c.close();
  }
});

test('PUBLISH_RATE_PER_KEY: past the burst a publish gets 429 rate_limited + retry-after, and succeeds after waiting it', T, async (t) => {
  const rate = num('PUBLISH_RATE_PER_KEY');
  if (!rate) return t.skip('target not started with --var PUBLISH_RATE_PER_KEY:N (default 0 = unlimited)');
  const burst = num('PUBLISH_BURST_PER_KEY') || rate;
  if (burst > 200) return t.skip(`PUBLISH_BURST_PER_KEY=${burst} is too many to exhaust in a test (≤ 200)`);
  const topic = uniqueTopic('rate');
  const c = await subscribe({ query: { topic } });
  try {
    // Send up to burst+1 publishes back to back: the bucket refills meanwhile, so keep going
    // until refused (bounded).
    let refused = null;
    let accepted = 0;
    for (let i = 0; i < burst * 3 + 10 && !refused; i++) {
      const r = await publish({ topics: topic, id: uniqueId(`r${i}`), body: 'x' });
      if (r.status === 202) accepted++; else refused = r;
    }
    assert.ok(refused, `never refused after ${accepted} publishes (rate ${rate}/s, burst ${burst})`);
    assert.ok(accepted >= 1, 'the first publish of a full bucket must be accepted');
    assertJsonError(refused, 429, 'rate_limited');
    const wait = assertRetryAfter(refused, '429');
    assert.ok(wait <= Math.ceil(1 / rate) + 1, `retry-after ${wait} s is longer than one token takes at ${rate}/s`);
    // a refused publish never reaches the subscriber
    const delivered = c.published.length;
    assert.ok(delivered <= accepted);
    await sleep(wait * 1000 + 100);
    const ok = await publish({ topics: topic, id: uniqueId('after'), body: 'x' });
    assert.equal(ok.status, 202, `after waiting retry-after (${wait} s): ${ok.status} ${ok.text}`);
    // a request with a wrong key is 401, never 429
    const bad = await publish({ topics: topic, id: uniqueId(), key: 'not-a-key' });
    assertJsonError(bad, 401, 'unauthorized');
  } finally {
    c.close();
  }
});
