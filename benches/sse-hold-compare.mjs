// Compares the two ways the Cloudflare runtime can hold an SSE connection, under wrangler dev:
//   direct  - one topic: the TopicObject serves the stream and the Worker passes it through;
//   bridged - two topics: the Worker holds the client's stream and merges one internal stream
//             per topic object (the shape of a Worker-held SSE response bridged to objects).
// For each: N subscribers, E events published one at a time, publish->receive latency
// percentiles over every delivery, and the RSS growth of the workerd processes.
//
//   node benches/sse-hold-compare.mjs [--base http://127.0.0.1:8787] [--subs 1000] [--events 50]
import http from 'node:http';
import { execSync } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const BASE = new URL(arg('base', 'http://127.0.0.1:8787'));
const SUBS = Number(arg('subs', 1000));
const EVENTS = Number(arg('events', 50));
const KEY = process.env.API_KEY || 'dev-key-change-me';
const OUT = arg('out', '');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function workerdRssKiB() {
  try {
    const pids = execSync('pgrep -x workerd', { encoding: 'utf8' }).trim().split('\n');
    let total = 0;
    for (const pid of pids) {
      const status = execSync(`cat /proc/${pid}/status`, { encoding: 'utf8' });
      total += Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
    }
    return total;
  } catch {
    return NaN;
  }
}

// utime + stime of the workerd processes, in ms (clock ticks are 10 ms here).
function workerdCpuMs() {
  let total = 0;
  for (const pid of execSync('pgrep -x workerd', { encoding: 'utf8' }).trim().split('\n')) {
    const f = execSync(`cat /proc/${pid}/stat`, { encoding: 'utf8' }).split(') ')[1].split(' ');
    total += (Number(f[11]) + Number(f[12])) * 10;
  }
  return total;
}

function subscribe(path, onEvent) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: BASE.hostname, port: BASE.port, path, agent: false }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (chunk) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = frame.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
          if (frame.includes('event: connected')) resolve(req);
          else if (data) onEvent(data);
        }
      });
    });
    req.on('error', reject);
  });
}

async function publish(topic, id, body) {
  const r = await fetch(new URL('/publish', BASE), {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'x-sse-topic': topic, 'x-sse-id': id },
    body,
  });
  return r.json();
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function scenario(name, topicsOfSub, publishTopic) {
  const latencies = [];
  let received = 0;
  const rssBefore = workerdRssKiB();
  const reqs = [];
  for (let i = 0; i < SUBS; i += 100) {
    const batch = [];
    for (let j = i; j < Math.min(SUBS, i + 100); j++) {
      batch.push(subscribe(`/sse?topic=${topicsOfSub}`, (data) => {
        received++;
        latencies.push(Date.now() - Number(data.split(':')[1]));
      }));
    }
    reqs.push(...(await Promise.all(batch)));
  }
  await sleep(500);
  const rssAfter = workerdRssKiB();
  const cpuBefore = workerdCpuMs();
  for (let e = 0; e < EVENTS; e++) {
    const res = await publish(publishTopic, `e${e}`, `t:${Date.now()}`);
    if (res.delivered !== SUBS) console.error(`${name}: event ${e} delivered to ${res.delivered}`);
    await sleep(20);
  }
  const deadline = Date.now() + 10000;
  while (received < SUBS * EVENTS && Date.now() < deadline) await sleep(50);
  const cpuMs = workerdCpuMs() - cpuBefore;
  for (const r of reqs) r.destroy();
  latencies.sort((a, b) => a - b);
  const result = {
    scenario: name,
    subscribers: SUBS,
    events: EVENTS,
    delivered: received,
    expected: SUBS * EVENTS,
    latency_ms: { p50: pct(latencies, 50), p90: pct(latencies, 90), p99: pct(latencies, 99), max: latencies.at(-1) },
    workerd_cpu_us_per_delivery: Math.round((cpuMs * 1000) / Math.max(1, received)),
    workerd_rss_kib_per_1000_conns: Math.round(((rssAfter - rssBefore) / SUBS) * 1000),
  };
  console.log(JSON.stringify(result));
  await sleep(3000); // let the objects notice the closed streams
  return result;
}

const suffix = Math.random().toString(36).slice(2, 8);
const results = [
  await scenario('direct (one topic, stream held by the TopicObject)', `d-${suffix}`, `d-${suffix}`),
  await scenario('bridged (two topics, stream held by the Worker)', `b-${suffix},b2-${suffix}`, `b-${suffix}`),
];
if (OUT) {
  mkdirSync(OUT.replace(/\/[^/]+$/, ''), { recursive: true });
  writeFileSync(OUT, JSON.stringify(results, null, 2) + '\n');
}
