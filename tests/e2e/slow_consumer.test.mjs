// A subscriber that stops reading is evicted once QUEUE_CAPACITY frames are waiting for it, and
// the others keep receiving every event (on Cloudflare the Worker that holds the stream evicts
// it; natively the node). Needs the target started with a small queue:
//   node tests/e2e/run.mjs --files slow_consumer --var QUEUE_CAPACITY:16
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import {
  config, baseUrl, subscribe, publishOk, uniqueTopic, uniqueId, adminGet, poll, buildRequest, closeStreamsAfterFile,
} from './lib/index.mjs';

closeStreamsAfterFile();
const T = { timeout: 180_000 };
const MAX_EVENTS = 800;

test('slow consumer: a subscriber that stops reading is evicted; the others get every event', T, async (t) => {
  if (config.vars.QUEUE_CAPACITY !== '16') return t.skip('target not started with --var QUEUE_CAPACITY:16');
  const topic = uniqueTopic('slow');
  const url = baseUrl();
  // A raw client that reads the response head, then nothing more.
  const slow = net.connect(Number(url.port), url.hostname);
  await new Promise((resolve, reject) => {
    slow.once('error', reject);
    slow.once('connect', () => slow.write(buildRequest('GET', `/sse?topic=${topic}`)));
    slow.once('data', () => { slow.pause(); resolve(); });
  });
  const fast = await subscribe({ headers: { 'x-sse-topic': topic } });
  const statsBefore = (await adminGet('/admin/api/stats')).json;
  try {
    const body = 'x'.repeat(60_000);
    const sent = [];
    let evictedAt = null;
    for (let i = 0; i < MAX_EVENTS && evictedAt === null; i++) {
      const id = uniqueId(`s${i}`);
      const r = await publishOk({ topics: topic, id, body });
      sent.push(id);
      if (r.topics[topic].delivered === 1) evictedAt = i;
      else assert.deepEqual(r.topics[topic], { delivered: 2 }, JSON.stringify(r));
    }
    assert.ok(evictedAt !== null, `the paused subscriber was still counted after ${MAX_EVENTS} events of 60 kB`);
    await fast.waitForCount(sent.length, 60_000);
    assert.deepEqual(fast.published.map((e) => e.id), sent, 'the reading subscriber got every event, in order');
    await poll(async () => {
      const s = (await adminGet('/admin/api/stats')).json;
      return s.evictions > statsBefore.evictions ? s : null;
    }, { timeoutMs: 2 * config.heartbeatMs + 5_000, label: 'evictions counted in the stats' });
  } finally {
    fast.close();
    slow.destroy();
  }
});
