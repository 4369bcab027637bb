// Slow consumer (SPEC §4: "a slow subscriber never slows the others"), measured on one native
// node with QUEUE_CAPACITY=64: N normal subscribers + 1 whose socket is paused, 4 KiB events
// published at a steady rate until the slow one is evicted. Two runs: with and without the slow
// one (same number of events), p99 publish→receive latency of the normal subscribers in each.
//
//   node tests/reliability/slow-consumer.mjs
//   SLOW_N=100 SLOW_RATE=200 SLOW_MAX_SECONDS=30 SSE_GATEWAY_BIN=...   (defaults shown)
//
// Writes test-results/slow-consumer.{json,md}. Exit status 1 only if the eviction/delivery
// checks fail (the slow one not evicted, its stream not ended, still listed, or a normal
// subscriber missing an event); the latency ratio is reported, not asserted.
import { readFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { ROOT, startNode, subscribe, publish, adminAll, request, KEY, sleep, percentile, round1 } from './lib.mjs';
import { writeResult } from '../lib/results.mjs';

const N = Number(process.env.SLOW_N || 100);
const RATE = Number(process.env.SLOW_RATE || 200);
const MAX_SECONDS = Number(process.env.SLOW_MAX_SECONDS || 30);
const BODY = 'x'.repeat(4096);
const TOPIC = 'slow-consumer';
const results = path.join(ROOT, 'test-results');
mkdirSync(path.join(results, 'logs'), { recursive: true });

async function run(withSlow, fixedCount) {
  const log = path.join(results, 'logs', `slow-consumer-${withSlow ? 'with' : 'without'}.log`);
  const node = await startNode({ QUEUE_CAPACITY: '64' }, log);
  try {
    const sent = new Map(); // id -> publish start (performance.now())
    const latencies = [];
    const received = Array.from({ length: N }, () => new Set());
    const subs = [];
    for (let i = 0; i < N; i++) {
      subs.push(await subscribe(node.base, TOPIC, (id, _ev, now) => {
        if (id === null || !sent.has(id)) return;
        received[i].add(id);
        latencies.push(now - sent.get(id));
      }));
    }
    let slow = null;
    if (withSlow) {
      slow = await subscribe(node.base, TOPIC);
      slow.res.pause();
      slow.req.socket.pause();
    }
    const every = 1000 / RATE;
    const start = performance.now();
    let evictedAt = null, count = 0, failures = 0, afterEviction = 0;
    let lastCheck = 0;
    for (let i = 0; ; i++) {
      if (fixedCount !== undefined && i >= fixedCount) break;
      if (fixedCount === undefined) {
        if (evictedAt !== null && ++afterEviction > RATE) break; // one more second after eviction
        if (performance.now() - start > MAX_SECONDS * 1000) break;
      }
      const due = start + i * every;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const id = `e${i}`;
      sent.set(id, performance.now());
      const r = await publish(node.base, TOPIC, id, BODY);
      if (r.status !== 202) failures++;
      count++;
      if (withSlow && evictedAt === null && performance.now() - lastCheck > 250) {
        lastCheck = performance.now();
        const conns = await adminAll(node.base, `/admin/api/connections?topic=${TOPIC}`, 'connections');
        if (!conns.some((c) => c.id === slow.id)) evictedAt = (performance.now() - start) / 1000;
      }
    }
    // Let the last events arrive.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && received.some((s) => s.size < count)) await sleep(100);
    const missing = received.map((s) => count - s.size).reduce((a, b) => a + b, 0);
    const out = { events: count, publish_failures: failures, missing_events: missing, subscribers: N };
    if (withSlow) {
      const listed = (await adminAll(node.base, `/admin/api/connections?topic=${TOPIC}`, 'connections')).some((c) => c.id === slow.id);
      // Resume the slow socket: it reads what the kernel held, then must see the end of stream.
      slow.req.socket.resume();
      slow.res.resume();
      const ended = await Promise.race([slow.ended, sleep(10_000).then(() => false)]);
      const logText = readFileSync(log, 'utf8');
      out.slow = {
        evicted_after_s: evictedAt === null ? null : round1(evictedAt),
        still_listed: listed,
        stream_ended: ended === true,
        eviction_logged: /slow consumer evicted/.test(logText),
      };
    }
    latencies.sort((a, b) => a - b);
    out.latency_ms = { p50: round1(percentile(latencies, 50)), p99: round1(percentile(latencies, 99)), max: round1(latencies.at(-1) ?? null) };
    for (const s of subs) s.req.destroy();
    if (slow) slow.req.destroy();
    return out;
  } finally {
    await node.stop();
  }
}

const withSlow = await run(true);
const without = await run(false, withSlow.events);
const ratio = withSlow.latency_ms.p99 && without.latency_ms.p99 ? Math.round((withSlow.latency_ms.p99 / without.latency_ms.p99) * 100) / 100 : null;
const checks = {
  slow_evicted: withSlow.slow.evicted_after_s !== null,
  slow_stream_ended: withSlow.slow.stream_ended,
  slow_unlisted: !withSlow.slow.still_listed,
  eviction_logged: withSlow.slow.eviction_logged,
  others_got_every_event: withSlow.missing_events === 0 && without.missing_events === 0 && withSlow.publish_failures === 0 && without.publish_failures === 0,
};
const passed = Object.values(checks).every(Boolean);
const report = {
  suite: 'slow-consumer',
  settings: { subscribers: N, rate_per_s: RATE, body_bytes: BODY.length, QUEUE_CAPACITY: 64, binary: path.relative(ROOT, (await import('./lib.mjs')).gatewayBinary()) },
  with_slow: withSlow,
  without_slow: without,
  p99_ratio: ratio,
  p99_within_2x: ratio !== null && ratio <= 2,
  checks,
  passed,
};
const md = [
  '# Slow consumer (native, one node)', '',
  `${N} subscribers + 1 paused socket, ${BODY.length}-byte events at ${RATE}/s, QUEUE_CAPACITY=64; binary \`${report.settings.binary}\`.`,
  'Latency = publish start → event parsed by the subscriber (same process clock); loopback, 2 shared cores.', '',
  `**${passed ? 'passed' : 'FAILED'}** (eviction/delivery checks; latency is reported, not asserted)`, '',
  '| run | events | missing | p50 ms | p99 ms | max ms |', '|---|---:|---:|---:|---:|---:|',
  `| with the slow consumer | ${withSlow.events} | ${withSlow.missing_events} | ${withSlow.latency_ms.p50} | ${withSlow.latency_ms.p99} | ${withSlow.latency_ms.max} |`,
  `| without | ${without.events} | ${without.missing_events} | ${without.latency_ms.p50} | ${without.latency_ms.p99} | ${without.latency_ms.max} |`, '',
  `p99 ratio (with / without): **${ratio}** (issue 7 expects ≤ 2: ${report.p99_within_2x ? 'yes' : 'no'})`, '',
  `Slow consumer: evicted after ${withSlow.slow.evicted_after_s} s of publishing; unlisted: ${!withSlow.slow.still_listed}; stream ended: ${withSlow.slow.stream_ended}; \`slow consumer evicted\` logged: ${withSlow.slow.eviction_logged}.`, '',
  '| check | result |', '|---|---|', ...Object.entries(checks).map(([k, v]) => `| ${k} | ${v ? 'ok' : 'FAILED'} |`), '',
];
writeResult('slow-consumer', report, md);
console.log(JSON.stringify({ checks, p99_with: withSlow.latency_ms.p99, p99_without: without.latency_ms.p99, ratio, evicted_after_s: withSlow.slow.evicted_after_s }));
console.log(passed ? '1 passed, 0 failed' : '0 passed, 1 failed');
process.exit(passed ? 0 : 1);
