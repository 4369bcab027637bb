// How long one topic object takes to fan an event out to its subscribers, under wrangler dev:
// the publish round trip (the object answers 202 after it has sent the frame on every
// subscriber's socket) for 1, 500 and 1,500 SSE subscribers of one topic, all on one object
// (TOPIC_SHARD_SIZE above 1,500). The slope is the object's time per delivery; it is what
// TOPIC_SHARD_SIZE is set from. Under wrangler dev the Worker invocations that hold the
// subscribers' streams run on the same thread as the object, so it is an upper bound.
//
//   node benches/topic-fanout.mjs [--base http://127.0.0.1:8787] [--sizes 1,500,1500] [--events 30]
// Needs a wrangler dev started with API_KEYS containing $API_KEY (default dev-key-change-me).
// Writes benchmark-results/topic-fanout.json and .md.
import http from 'node:http';
import { writeFileSync, mkdirSync } from 'node:fs';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const BASE = arg('base', 'http://127.0.0.1:8787');
const SIZES = arg('sizes', '1,500,1500').split(',').map(Number);
const EVENTS = Number(arg('events', 30));
const KEY = process.env.API_KEY || 'dev-key-change-me';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const agent = new http.Agent({ keepAlive: true, maxSockets: 5000 });

function subscribe(topic) {
  return new Promise((resolve, reject) => {
    const req = http.get(`${BASE}/sse?topic=${topic}`, { agent }, (res) => {
      res.resume();
      resolve(req);
    });
    req.on('error', reject);
  });
}

async function measure(n) {
  const topic = `fanout-${n}-${Date.now()}`;
  const reqs = [];
  for (let i = 0; i < n; i += 100) reqs.push(...await Promise.all(Array.from({ length: Math.min(100, n - i) }, () => subscribe(topic))));
  await sleep(2000);
  const rtts = [];
  let short = 0;
  for (let i = 0; i < EVENTS; i++) {
    const t0 = performance.now();
    const r = await fetch(`${BASE}/publish`, {
      method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'x-sse-topic': topic, 'x-sse-id': `e${i}` }, body: 'x'.repeat(64),
    });
    const j = await r.json();
    rtts.push(performance.now() - t0);
    if (j.delivered !== n) short++;
    await sleep(100);
  }
  for (const r of reqs) r.destroy();
  rtts.sort((a, b) => a - b);
  const q = (p) => Number(rtts[Math.min(rtts.length - 1, Math.floor(p * rtts.length))].toFixed(1));
  return { subscribers: n, publishes: EVENTS, publish_rtt_ms: { p50: q(0.5), p90: q(0.9) }, publishes_not_reaching_all: short };
}

const rows = [];
for (const n of SIZES) {
  rows.push(await measure(n));
  console.log(JSON.stringify(rows.at(-1)));
  await sleep(3000);
}
const [first, last] = [rows[0], rows.at(-1)];
const perDeliveryMs = (last.publish_rtt_ms.p50 - first.publish_rtt_ms.p50) / (last.subscribers - first.subscribers);
const out = {
  bench: 'topic-fanout',
  target: `wrangler dev (${BASE})`,
  rows,
  per_delivery_ms_p50_slope: Number(perDeliveryMs.toFixed(3)),
  subscribers_per_second_of_fanout: Math.round(1000 / perDeliveryMs),
};
mkdirSync('benchmark-results', { recursive: true });
writeFileSync('benchmark-results/topic-fanout.json', `${JSON.stringify(out, null, 2)}\n`);
writeFileSync('benchmark-results/topic-fanout.md', [
  '# One topic object\'s fan-out time (wrangler dev)', '',
  'Publish round trip (the object answers after sending on every socket) by subscribers on one object; `node benches/topic-fanout.mjs`.', '',
  '| subscribers | publish p50 ms | p90 ms | publishes not reaching all |', '|---:|---:|---:|---:|',
  ...rows.map((r) => `| ${r.subscribers} | ${r.publish_rtt_ms.p50} | ${r.publish_rtt_ms.p90} | ${r.publishes_not_reaching_all} |`), '',
  `Slope: **${out.per_delivery_ms_p50_slope} ms per subscriber** (about ${out.subscribers_per_second_of_fanout} deliveries per second of one object's time; an upper bound: the Worker invocations holding the streams share the object's thread under wrangler dev).`, '',
].join('\n'));
process.exit(0);
