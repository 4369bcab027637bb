// Soak (bounded): one native node under connection churn and publishing on many topics.
// Samples RSS, open fds, live topics and connections (admin API, paged) every few seconds;
// fails if one grows without bound (after warm-up, the last third's mean vs the first third's:
// RSS +20%, fds +10%, topics/connections +20%, each with a small absolute slack) or if a topic
// is still listed 3 heartbeats after its last connection left.
//
//   SOAK_MINUTES=20 node tests/reliability/soak.mjs     (scripts/soak.sh, `make soak`)
//   SOAK_CONNS=200 SOAK_TOPICS=300 SOAK_CHURN=20 SOAK_RATE=100 SOAK_SAMPLE_S=5 SSE_GATEWAY_BIN=...
//
// Writes test-results/soak.{json,md} (summary figures, not every sample).
import { readFileSync, readdirSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { ROOT, startNode, subscribe, publish, adminAll, sleep, round1 } from './lib.mjs';
import { writeResult } from '../lib/results.mjs';

const MINUTES = Number(process.env.SOAK_MINUTES || 20);
const CONNS = Number(process.env.SOAK_CONNS || 200);
const TOPICS = Number(process.env.SOAK_TOPICS || 300);
const CHURN = Number(process.env.SOAK_CHURN || 20); // connections closed and opened per second
const RATE = Number(process.env.SOAK_RATE || 100); // publishes per second
const SAMPLE_S = Number(process.env.SOAK_SAMPLE_S || (MINUTES <= 2 ? 2 : 5));
const HEARTBEAT_MS = 1000;
const results = path.join(ROOT, 'test-results');
mkdirSync(path.join(results, 'logs'), { recursive: true });

const node = await startNode({ HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_MS) }, path.join(results, 'logs', 'soak-node.log'));
const rnd = (n) => Math.floor(Math.random() * n);
const live = new Set(); // open subscribers
const ephClosedAt = new Map(); // topic only one connection used -> when it closed
let opened = 0, closed = 0, received = 0, published = 0, publishErrors = 0, openErrors = 0;
let running = true;

async function openOne() {
  const n = opened++;
  const eph = `eph-${n}`; // this connection's own topic: must vanish once it closes
  const topics = [`t${rnd(TOPICS)}`, `t${rnd(TOPICS)}`, eph].join(',');
  try {
    const s = await subscribe(node.base, topics, () => received++);
    s.eph = eph;
    live.add(s);
  } catch {
    openErrors++;
  }
}

function closeOne() {
  const s = [...live][rnd(live.size)];
  if (!s) return;
  live.delete(s);
  s.req.destroy(); // abrupt: the client is gone without a goodbye
  ephClosedAt.set(s.eph, Date.now());
  closed++;
}

async function churn() {
  while (running) {
    const tick = Date.now();
    const k = Math.max(1, Math.round(CHURN / 10));
    for (let i = 0; i < k && live.size > 0; i++) closeOne();
    await Promise.all(Array.from({ length: Math.max(0, CONNS - live.size) }, openOne));
    await sleep(Math.max(0, 100 - (Date.now() - tick)));
  }
}

async function publisher() {
  const start = Date.now();
  for (let i = 0; running; i++) {
    const wait = start + (i * 1000) / RATE - Date.now();
    if (wait > 0) await sleep(wait);
    try {
      const r = await publish(node.base, `t${rnd(TOPICS * 2)}`, `p${i}`, 'y'.repeat(256)); // half the topics never live: the drop path
      if (r.status !== 202) publishErrors++;
      published++;
    } catch {
      publishErrors++;
    }
  }
}

function proc() {
  const status = readFileSync(`/proc/${node.pid}/status`, 'utf8');
  const rss_kib = Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
  const fds = readdirSync(`/proc/${node.pid}/fd`).length;
  return { rss_kib, fds };
}

const samples = [];
const leaks = [];
async function sample(t) {
  const topics = await adminAll(node.base, '/admin/api/topics', 'topics');
  const conns = await adminAll(node.base, '/admin/api/connections', 'connections');
  const names = new Set(topics.map((x) => x.topic));
  const now = Date.now();
  for (const [topic, at] of ephClosedAt) {
    if (now - at > 3 * HEARTBEAT_MS) {
      if (names.has(topic)) leaks.push({ topic, listed_after_ms: Math.round((now - at) / 100) * 100 });
      ephClosedAt.delete(topic);
    }
  }
  samples.push({ t, ...proc(), topics: topics.length, connections: conns.length });
}

const start = Date.now();
const tasks = [churn(), publisher()];
while (Date.now() - start < MINUTES * 60_000) {
  await sleep(SAMPLE_S * 1000);
  await sample((Date.now() - start) / 1000);
}
running = false;
await Promise.all(tasks);
// Everyone leaves: after 3 heartbeats no topic may be listed.
for (const s of live) s.req.destroy();
const lastIds = [...live].map((s) => s.eph);
live.clear();
await sleep(3 * HEARTBEAT_MS);
const leftTopics = (await adminAll(node.base, '/admin/api/topics', 'topics')).map((t) => t.topic);
const leftConns = (await adminAll(node.base, '/admin/api/connections', 'connections')).length;
const final = proc();
await node.stop();

// Trend: warm-up = the first 20% of samples (at least 1); then first third vs last third.
const warm = samples.slice(Math.max(1, Math.floor(samples.length * 0.2)));
const third = Math.max(1, Math.floor(warm.length / 3));
const mean = (xs, k) => xs.reduce((a, x) => a + x[k], 0) / xs.length;
const limits = { rss_kib: [0.2, 2048], fds: [0.1, 5], topics: [0.2, 10], connections: [0.2, 10] };
const trend = {};
for (const [k, [rel, abs]] of Object.entries(limits)) {
  const first = mean(warm.slice(0, third), k);
  const last = mean(warm.slice(-third), k);
  const allowed = Math.max(first * (1 + rel), first + abs);
  trend[k] = { first_third_mean: round1(first), last_third_mean: round1(last), growth_pct: round1(first ? ((last - first) / first) * 100 : 0), allowed_max: round1(allowed), max: Math.max(...samples.map((s) => s[k])), ok: last <= allowed };
}
const checks = {
  no_unbounded_growth: Object.values(trend).every((x) => x.ok),
  no_topic_listed_3_heartbeats_after_its_last_connection: leaks.length === 0 && leftTopics.length === 0,
  no_connection_listed_after_all_left: leftConns === 0,
  publishes_answered_202: publishErrors === 0,
  enough_samples: warm.length >= 3,
};
const passed = Object.values(checks).every(Boolean);
const report = {
  suite: 'soak',
  settings: { minutes: MINUTES, connections: CONNS, topics: TOPICS, churn_per_s: CHURN, publish_per_s: RATE, sample_every_s: SAMPLE_S, HEARTBEAT_INTERVAL_MS: HEARTBEAT_MS, binary: path.relative(ROOT, node.bin) },
  totals: { samples: samples.length, connections_opened: opened, connections_closed_abruptly: closed + lastIds.length, open_errors: openErrors, published, publish_errors: publishErrors, events_received: received },
  trend,
  after_everyone_left: { topics_listed: leftTopics.length, connections_listed: leftConns, rss_kib: final.rss_kib, fds: final.fds },
  topic_leaks: leaks.slice(0, 20),
  checks,
  passed,
};
const md = [
  '# Soak (native, one node)', '',
  `${MINUTES} min; ~${CONNS} SSE connections (each on 2 of ${TOPICS} shared topics + its own), ${CHURN} closed abruptly and reopened per second, ${RATE} publishes/s (256 B) on ${TOPICS * 2} topics (half never live: the drop path); sampled every ${SAMPLE_S} s; HEARTBEAT_INTERVAL_MS ${HEARTBEAT_MS}; binary \`${report.settings.binary}\`.`, '',
  `**${passed ? 'passed' : 'FAILED'}**`, '',
  '| figure | first third (mean) | last third (mean) | growth % | allowed | max | ok |', '|---|---:|---:|---:|---:|---:|---|',
  ...Object.entries(trend).map(([k, x]) => `| ${k} | ${x.first_third_mean} | ${x.last_third_mean} | ${x.growth_pct} | ${x.allowed_max} | ${x.max} | ${x.ok ? 'ok' : 'FAILED'} |`), '',
  `Connections opened ${opened}, closed abruptly ${closed + lastIds.length}; ${published} publishes (${publishErrors} not 202), ${received} events received.`,
  `After everyone left (+3 heartbeats): ${leftTopics.length} topics, ${leftConns} connections listed; RSS ${final.rss_kib} KiB, ${final.fds} fds.`, '',
  '| check | result |', '|---|---|', ...Object.entries(checks).map(([k, v]) => `| ${k} | ${v ? 'ok' : 'FAILED'} |`), '',
];
writeResult('soak', report, md);
console.log(JSON.stringify({ checks, trend }));
console.log(passed ? '1 passed, 0 failed' : '0 passed, 1 failed');
process.exit(passed ? 0 : 1);
