// Admin API: /admin/api/stats (both runtimes) and /metrics (native only; 404 on Cloudflare).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  subscribe, publishOk, uniqueTopic, uniqueId, adminGet, request, assertJsonError, poll, config,
  expectedRuntime, closeStreamsAfterFile,
} from './lib/index.mjs';

closeStreamsAfterFile();
const T = { timeout: 60_000 };
// Cloudflare: topic objects report their counts with the heartbeat snapshot (every heartbeat).
const REPORT_MS = 3 * config.heartbeatMs + 5000;
const COUNTS = ['publishes', 'deliveries', 'drops', 'evictions', 'replayed'];

async function stats() {
  const r = await adminGet('/admin/api/stats');
  assert.equal(r.status, 200, r.text);
  return r.json;
}

test('stats: /admin/api/stats needs the API key', T, async () => {
  assertJsonError(await request('GET', '/admin/api/stats'), 401, 'unauthorized');
  assertJsonError(await adminGet('/admin/api/stats', undefined, { key: 'wrong-key' }), 401, 'unauthorized');
});

test('stats: the body has every count, as integers', T, async () => {
  const s = await stats();
  for (const k of ['connections', 'tails', 'topics', ...COUNTS]) {
    assert.ok(Number.isInteger(s[k]) && s[k] >= 0, `${k}: ${JSON.stringify(s[k])}`);
  }
  assert.equal(s.connections, s.connections_by_transport.sse + s.connections_by_transport.ws);
  const runtime = expectedRuntime();
  if (runtime === 'native') {
    assert.equal(s.scope, 'node');
    assert.equal(typeof s.node, 'string');
    assert.ok(s.publish_to_write && Array.isArray(s.publish_to_write.buckets), JSON.stringify(s));
  } else if (runtime === 'cloudflare') {
    assert.equal(s.scope, 'deployment');
    assert.equal(s.node, null);
  }
});

test('stats: counts move after a publish to a live topic and a drop', T, async () => {
  const before = await stats();
  const live = uniqueTopic('stats-live');
  const dead = uniqueTopic('stats-dead');
  const c = await subscribe({ headers: { 'x-sse-topic': live } });
  try {
    const id = uniqueId();
    const r = await publishOk({ topics: live, id, body: 'hello' });
    assert.equal(r.delivered, 1, JSON.stringify(r));
    await c.waitFor(() => c.published.find((e) => e.id === id), 5000, `event ${id}`);
    const d = await publishOk({ topics: dead, id: uniqueId(), body: 'nobody' });
    assert.deepEqual(d.topics[dead], { dropped: 'no_subscribers' });
    const after = await poll(async () => {
      const s = await stats();
      return s.publishes >= before.publishes + 2 && s.deliveries >= before.deliveries + 1 && s.drops >= before.drops + 1
        && s.connections >= 1 && s.topics >= 1 ? s : null;
    }, { timeoutMs: REPORT_MS, label: 'publishes +2, deliveries +1, drops +1, a live connection' });
    for (const k of COUNTS) assert.ok(after[k] >= before[k], `${k} never goes down: ${before[k]} → ${after[k]}`);
  } finally { c.close(); }
});

test('stats: /metrics is Prometheus text on the native runtime, 404 on Cloudflare', T, async () => {
  const r = await request('GET', '/metrics');
  if (expectedRuntime() !== 'native') {
    assertJsonError(r, 404, 'not_found');
    return;
  }
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  for (const line of r.text.split('\n').filter(Boolean)) {
    if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    assert.match(line, /^sse_gateway_[a-z_]+\{([a-z_]+="[^"]*",?)+\} [0-9.e+-]+$/, line);
  }
  assert.match(r.text, /^sse_gateway_publishes_total\{node="[^"]+"\} \d+$/m);
});
