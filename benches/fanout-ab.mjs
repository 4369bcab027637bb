// Fan-out of two Worker builds under wrangler dev, alternating, with the CPU of each workerd
// process apart: one topic, SUBS SSE subscribers, EVENTS 64-byte publishes 250 ms apart; per
// run the deliveries (each checked against the publish it came from), p50/p99 latency, and
// the CPU time of every workerd process over the publishing (wrangler dev runs two: its dev
// proxy, and the runtime that holds the Worker and its objects).
//
//   node benches/fanout-ab.mjs --a <build dir> --b <build dir> [--rounds 3] [--subs 1000]
//        [--events 80] [--port 8878] [--dir benchmark-results/hibernation-fanout-1k] [--name ab]
// Each build dir is a `build/` of scripts/build-worker.sh; it runs with this checkout's
// wrangler.toml (every build since 555a832 accepts it). Writes the runs as JSON and .md.
import http from 'node:http';
import { execSync, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from '../tests/lib/args.mjs';
import { writeResult } from '../tests/lib/results.mjs';

const ROOT = resolve(new URL('..', import.meta.url).pathname);
const opts = {
  rounds: '3',
  subs: '1000',
  events: '80',
  port: '8878',
  dir: join(ROOT, 'benchmark-results/hibernation-fanout-1k'),
  name: 'ab',
  ...parseArgs(process.argv.slice(2), { runner: 'benches/fanout-ab.mjs', values: ['a', 'b', 'rounds', 'subs', 'events', 'port', 'dir', 'name'] }),
};
if (!opts.a || !opts.b) throw new Error('fanout-ab: --a and --b name two Worker builds');
const [SUBS, EVENTS, PORT] = [Number(opts.subs), Number(opts.events), Number(opts.port)];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** CPU ms (user + system) of every workerd process, by pid. */
function workerdCpu() {
  const pids = execSync('pgrep -x workerd || true').toString().trim().split('\n').filter(Boolean);
  return Object.fromEntries(
    pids.map((pid) => {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      return [pid, (Number(f[11]) + Number(f[12])) * 10];
    }),
  );
}

/** A wrangler dev of `build` on PORT, in a scratch directory; resolves with a stop function. */
async function startWrangler(build) {
  if (await fetch(`http://127.0.0.1:${PORT}/healthz`).then(() => true, () => false)) {
    throw new Error(`fanout-ab: something already answers on port ${PORT}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'fanout-ab-'));
  cpSync(build, join(dir, 'build'), { recursive: true });
  const toml = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8')
    .replace(/^command = .*$/m, 'command = "true"')
    .replace(/^watch_dir.*$/m, '')
    .replace('directory = "admin/dist"', `directory = "${join(ROOT, 'admin/dist')}"`);
  writeFileSync(join(dir, 'wrangler.toml'), toml);
  const child = spawn(
    join(ROOT, 'node_modules/.bin/wrangler'),
    ['dev', '--ip', '127.0.0.1', '--port', String(PORT), '--inspector-port', String(PORT + 1), '--persist-to', join(dir, 'state'), '--var', 'API_KEYS:k'],
    { cwd: dir, detached: true, stdio: 'ignore', env: { ...process.env, WRANGLER_SEND_METRICS: 'false', DO_NOT_TRACK: '1', WRANGLER_HIDE_BANNER: 'true' } },
  );
  let up = false;
  for (let i = 0; i < 120 && !up; i++) {
    up = await fetch(`http://127.0.0.1:${PORT}/healthz`).then((r) => r.ok, () => false);
    if (!up) await sleep(500);
  }
  const stop = async () => {
    try { process.kill(-child.pid, 'SIGTERM'); } catch {}
    await sleep(2000);
    try { process.kill(-child.pid, 'SIGKILL'); } catch {}
    rmSync(dir, { recursive: true, force: true });
  };
  if (!up) {
    await stop();
    throw new Error(`fanout-ab: wrangler dev of ${build} did not answer on port ${PORT}`);
  }
  return stop;
}

async function run(build) {
  const stop = await startWrangler(build);
  try {
    return await measure();
  } finally {
    await stop();
  }
}

async function measure() {
  const base = `http://127.0.0.1:${PORT}`;
  const topic = `fanout-ab-${Date.now()}`;
  const agent = new http.Agent({ keepAlive: true, maxSockets: SUBS + 10 });
  const sent = new Map();
  const lat = [];
  let misordered = 0;
  const subscribe = () =>
    new Promise((ok, fail) => {
      const req = http.get(`${base}/sse?topic=${topic}`, { agent }, (res) => {
        res.setEncoding('utf8');
        let buf = '';
        let last = -1;
        res.on('data', (d) => {
          buf += d;
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const m = /^id: e(\d+)/m.exec(buf.slice(0, i));
            buf = buf.slice(i + 2);
            if (m && sent.has(`e${m[1]}`)) {
              const n = Number(m[1]);
              if (n <= last) misordered++;
              last = n;
              lat.push(performance.now() - sent.get(`e${m[1]}`));
            }
          }
        });
        ok(req);
      });
      req.on('error', fail);
    });
  const reqs = [];
  for (let i = 0; i < SUBS; i += 100) reqs.push(...(await Promise.all(Array.from({ length: Math.min(100, SUBS - i) }, subscribe))));
  await sleep(3000);
  const before = workerdCpu();
  for (let i = 0; i < EVENTS; i++) {
    sent.set(`e${i}`, performance.now());
    await fetch(`${base}/publish`, { method: 'POST', headers: { authorization: 'Bearer k', 'x-sse-topic': topic, 'x-sse-id': `e${i}` }, body: 'x'.repeat(64) });
    await sleep(250);
  }
  await sleep(2000);
  const after = workerdCpu();
  reqs.forEach((r) => r.destroy());
  agent.destroy();
  const perProcess = Object.keys(after).map((pid) => after[pid] - (before[pid] ?? 0)).sort((x, y) => x - y);
  const cpu = perProcess.reduce((t, v) => t + v, 0);
  lat.sort((x, y) => x - y);
  const q = (p) => Math.round(lat[Math.floor(p * (lat.length - 1))] * 10) / 10;
  return { deliveries: lat.length, expected: SUBS * EVENTS, misordered, p50_ms: q(0.5), p99_ms: q(0.99), workerd_cpu_ms: cpu, per_process_cpu_ms: perProcess, deliveries_per_cpu_s: Math.round(lat.length / (cpu / 1000)) };
}

const runs = [];
for (let r = 1; r <= Number(opts.rounds); r++) {
  for (const [label, build] of [['a', opts.a], ['b', opts.b]]) {
    const result = { round: r, build: label, ...(await run(build)) };
    console.log(JSON.stringify(result));
    runs.push(result);
  }
}
const rows = runs.map((x) => `| ${x.round} | ${x.build} | ${x.deliveries} / ${x.expected} | ${x.misordered} | ${x.p50_ms} | ${x.p99_ms} | ${x.per_process_cpu_ms.join(' + ')} | ${x.deliveries_per_cpu_s} |`);
writeResult(
  opts.name,
  { when: new Date().toISOString(), a: opts.a, b: opts.b, subs: SUBS, events: EVENTS, runs },
  [
    `# Fan-out A/B under wrangler dev: ${SUBS} SSE subscribers, ${EVENTS} events of 64 B, 4/s`,
    '',
    `a: \`${opts.a}\`, b: \`${opts.b}\`. CPU per workerd process (dev proxy + runtime), ms.`,
    '',
    '| round | build | deliveries | out of order | p50 ms | p99 ms | workerd CPU ms | deliveries per CPU-s |',
    '|---|---|---:|---:|---:|---:|---|---:|',
    ...rows,
    '',
  ],
  opts.dir,
);
process.exit(0);
