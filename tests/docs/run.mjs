#!/usr/bin/env node
// Runs the shell commands of the documentation against a live gateway, so the docs never rot.
//
//   node tests/docs/run.mjs                 every ```sh / ```bash block of README.md and docs/*.md
//   node tests/docs/run.mjs --list          show the blocks and what would happen to each, run nothing
//   node tests/docs/run.mjs --files docs/getting-started.md,README.md
//
// The convention (a `<!-- doc-test: ... -->` comment right before a block) is described in
// tests/docs/README.md. The runner starts what the blocks need itself, only when some block
// needs it:
//   worker   `wrangler dev` on 127.0.0.1:8794 (built first with scripts/build-worker.sh, which
//            honours WORKER_BUILD_SKIP=1), API key dev-key-change-me
//   native   target/release/sse-gateway on 127.0.0.1:8089 (built first with
//            scripts/build-server.sh unless DOCS_NATIVE_BUILD_SKIP=1), single node, in memory
// and substitutes the addresses the docs use (127.0.0.1:8787 for the Worker, 127.0.0.1:8080 for
// the native server) and the API key in each block before running it. The docs stay as a reader
// copies them.
//
// Options:
//   --files a,b        only these files (paths relative to the repository)
//   --port N           port of the wrangler dev we start (default 8794)
//   --native-port N    port of the native node we start (default 8089)
//   --api-key KEY      key given to both gateways (default dev-key-change-me)
//   --list             parse only: print every block with its directives
//
// Writes test-results/docs.json and docs.md; the last line printed is "N passed, N failed,
// N skipped"; exit status 1 if anything failed.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  LOGS, NODE22_BIN, REPO, RESULTS, killAll, listening, offlineEnv, startNative as startNativeGateway, startWrangler,
  stopAll, stopGroup, tail,
} from '../lib/gateways.mjs';
import { parseArgs } from '../lib/args.mjs';
import { cell, totalsOf, writeResult } from '../lib/results.mjs';

// Addresses and key as written in the docs.
const DOC_WORKER = '127.0.0.1:8787';
const DOC_NATIVE = '127.0.0.1:8080';
const DOC_KEY = 'dev-key-change-me';
// The scoped publisher key docs/publishing.md uses, configured on both gateways as it says.
const DOC_SCOPED_KEYS = 'pk-orders-0123456789:publish:orders.*';

const RUN_LANGS = new Set(['sh', 'bash', 'shell']);
const DEFAULT_TIMEOUT_S = 60;
const BACKGROUND_SETTLE_MS = 500;
const EXPECT_WAIT_MS = 10_000;
// Short heartbeats, so that the subscribers of one file are gone before the next file runs
// (a connection leaves its topics within two heartbeat intervals).
const HEARTBEAT_MS = 1000;
// JSON keys whose values differ on every run: an expected value only has to have the same type.
const VOLATILE_KEYS = new Set([
  'connection_id', 'ts', 'connected_at', 'next_cursor', 'uptime_ms', 'node', 'events_sent',
  'message',
]);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- parsing ---------------------------------------------------------------------------------

/** Every fenced block of a Markdown file, with the doc-test directive written just before it. */
export function parseBlocks(file, text) {
  const lines = text.split('\n');
  const blocks = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([^\s`]*)(.*)$/.exec(lines[i]);
    if (!open) continue;
    const indent = open[1].length;
    const fence = open[2];
    const lang = open[3].toLowerCase();
    const body = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const close = /^(\s*)(`{3,}|~{3,})\s*$/.exec(lines[j]);
      if (close && close[2][0] === fence[0] && close[2].length >= fence.length) break;
      body.push(lines[j].slice(Math.min(indent, /^\s*/.exec(lines[j])[0].length)));
    }
    // the directive: the nearest non-blank line above the fence, if it is a doc-test comment
    let k = i - 1;
    while (k >= 0 && lines[k].trim() === '') k--;
    const dm = k >= 0 ? /^\s*<!--\s*doc-test:\s*(.*?)\s*-->\s*$/.exec(lines[k]) : null;
    blocks.push({
      file, line: i + 1, lang, body: body.join('\n'),
      directive: dm ? parseDirective(dm[1], `${file}:${k + 1}`) : null,
    });
    i = j;
  }
  return blocks;
}

function parseDirective(s, where) {
  const d = {};
  let rest = s;
  const skip = /^skip\s*\((.*)\)\s*$/.exec(rest);
  if (skip) return { skip: skip[1].trim() || 'skipped' };
  if (/^skip\b/.test(rest)) throw new Error(`${where}: write the reason: <!-- doc-test: skip (why) -->`);
  for (const tok of rest.split(/\s+/).filter(Boolean)) {
    const kv = /^([a-z-]+)(?:=(.+))?$/.exec(tok);
    if (!kv) throw new Error(`${where}: bad doc-test directive "${tok}"`);
    const [, key, value] = kv;
    switch (key) {
      case 'background': d.background = true; break;
      case 'native': d.gateway = 'native'; break;
      case 'no-gateway': d.gateway = 'none'; break;
      case 'expect': d.expect = true; break;
      case 'name': d.name = value; break;
      case 'from': d.from = value; break;
      case 'timeout': d.timeout = Number(value); break;
      default: throw new Error(`${where}: unknown doc-test directive "${key}"`);
    }
    if ((key === 'name' || key === 'from' || key === 'timeout') && !value) throw new Error(`${where}: ${key}= needs a value`);
  }
  return d;
}

/** What the runner does with a block: run | background | expect | skip | ignore. */
function classify(b) {
  const d = b.directive ?? {};
  if (d.skip) return RUN_LANGS.has(b.lang) ? 'skip' : 'ignore';
  if (d.expect) return RUN_LANGS.has(b.lang) ? 'bad' : 'expect';
  if (!RUN_LANGS.has(b.lang)) return b.directive ? 'bad' : 'ignore';
  return d.background ? 'background' : 'run';
}

// --- gateways --------------------------------------------------------------------------------

/** The build scripts' environment: offline, Node 22 then the npm binaries first on PATH. */
function toolEnv() {
  return offlineEnv({ PATH: `${NODE22_BIN}${path.delimiter}${path.join(REPO, 'node_modules', '.bin')}${path.delimiter}${process.env.PATH ?? ''}` });
}

function build(script, logName) {
  const logFile = path.join(LOGS, logName);
  fs.mkdirSync(LOGS, { recursive: true });
  console.log(`building: bash ${script}  (log: ${path.relative(REPO, logFile)})`);
  const r = spawnSync('bash', [script], { cwd: REPO, env: toolEnv(), encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  fs.writeFileSync(logFile, `${r.stdout ?? ''}${r.stderr ?? ''}`);
  if (r.status !== 0) throw new Error(`bash ${script} failed (exit ${r.status}); last log lines:\n${tail(logFile)}`);
}

async function startWorker({ port, apiKey }) {
  const hint = 'stop it or use --port';
  if (await listening(`http://127.0.0.1:${port}`)) throw new Error(`something already answers on http://127.0.0.1:${port}; ${hint}`);
  build('scripts/build-worker.sh', 'docs-build-worker.log');
  // built above: wrangler's [build] command must not build again
  return startWrangler({
    port, apiKey, vars: { HEARTBEAT_INTERVAL_MS: HEARTBEAT_MS, SCOPED_API_KEYS: DOC_SCOPED_KEYS }, build: 'skip', env: { PATH: toolEnv().PATH },
    logFile: path.join(LOGS, 'docs-wrangler-dev.log'), limitMs: 180_000, hint,
  });
}

async function startNative({ port, apiKey }) {
  const hint = 'stop it or use --native-port';
  if (await listening(`http://127.0.0.1:${port}`)) throw new Error(`something already answers on http://127.0.0.1:${port}; ${hint}`);
  if (process.env.DOCS_NATIVE_BUILD_SKIP !== '1') build('scripts/build-server.sh', 'docs-build-server.log');
  return startNativeGateway({
    port, env: { API_KEYS: apiKey, SCOPED_API_KEYS: DOC_SCOPED_KEYS, NODE_ID: 'docs', REDIS_URL: '', HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_MS) },
    logFile: path.join(LOGS, 'docs-native.log'), limitMs: 30_000, hint,
  });
}

/** Wait until a gateway lists no connection (the previous file's subscribers have left). */
async function waitIdle(g, apiKey) {
  const deadline = Date.now() + 30 * HEARTBEAT_MS;
  let total = null;
  let last = [];
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`${g.base}/admin/api/connections?limit=1`, { headers: { authorization: `Bearer ${apiKey}` }, signal: AbortSignal.timeout(2000) });
      const j = await r.json();
      total = j.total;
      if (total === 0) return;
      last = j.connections;
    } catch { /* retry */ }
    await sleep(250);
  }
  console.log(`warning: ${g.base} still lists ${total} connection(s) after the file's subscribers were stopped, e.g. ${JSON.stringify(last)}`);
}

// --- running blocks --------------------------------------------------------------------------

/** The environment blocks run in: the caller's shell, as before `. scripts/env.sh`. */
function blockEnv() {
  const env = { ...process.env };
  if (env.SSE_ORIG_PATH) env.PATH = env.SSE_ORIG_PATH;
  // wrangler commands in the docs must not rebuild what the runner built
  env.WORKER_BUILD_SKIP = '1';
  return env;
}

function substitute(script, gateway, ctx) {
  let s = script;
  if (gateway === 'worker') {
    s = s.replaceAll(DOC_WORKER, ctx.worker.base.replace(/^https?:\/\//, ''))
      .replaceAll('localhost:8787', ctx.worker.base.replace(/^https?:\/\//, ''));
  } else if (gateway === 'native') {
    s = s.replaceAll(DOC_NATIVE, ctx.native.base.replace(/^https?:\/\//, ''))
      .replaceAll('localhost:8080', ctx.native.base.replace(/^https?:\/\//, ''));
  }
  return s.replaceAll(DOC_KEY, ctx.apiKey);
}

const liveBlocks = new Set();

function startProcess(script) {
  const child = spawn('bash', ['--noprofile', '--norc', '-e', '-o', 'pipefail', '-c', script], {
    cwd: REPO, env: blockEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true,
  });
  const p = { child, stdout: '', stderr: '', exited: null };
  child.stdout.on('data', (d) => { p.stdout += d; });
  child.stderr.on('data', (d) => { p.stderr += d; });
  liveBlocks.add(child.pid);
  p.done = new Promise((resolve) => {
    child.on('close', (code, signal) => { liveBlocks.delete(child.pid); p.exited = { code, signal }; resolve(p.exited); });
    child.on('error', (e) => { p.exited = { code: 127, error: e.message }; resolve(p.exited); });
  });
  return p;
}

function killProcess(p, sig = 'SIGTERM') {
  try { process.kill(-p.child.pid, sig); } catch { /* gone */ }
}

function lastLine(s, max = 200) {
  const l = String(s ?? '').split('\n').map((x) => x.trim()).filter(Boolean);
  return (l[l.length - 1] ?? '').slice(0, max);
}

async function runForeground(script, timeoutS) {
  const p = startProcess(script);
  const timer = setTimeout(() => { p.timedOut = true; killProcess(p); setTimeout(() => killProcess(p, 'SIGKILL'), 3000); }, timeoutS * 1000);
  await p.done;
  clearTimeout(timer);
  return p;
}

// --- expected output -------------------------------------------------------------------------

function sameShape(expected, actual) {
  if (expected === null || actual === null) return expected === actual;
  if (Array.isArray(expected)) {
    return Array.isArray(actual) && expected.every((e) => actual.some((a) => jsonSubset(e, a)));
  }
  return typeof expected === typeof actual;
}

/** expected ⊆ actual: every key of expected is in actual with an equal value (volatile keys: same type). */
function jsonSubset(expected, actual, key = '') {
  if (VOLATILE_KEYS.has(key)) return sameShape(expected, actual) || (expected !== null && actual !== null && typeof actual === typeof expected);
  if (expected === null || typeof expected !== 'object') return expected === actual;
  if (Array.isArray(expected)) {
    return Array.isArray(actual) && expected.length === actual.length && expected.every((e, i) => jsonSubset(e, actual[i]));
  }
  if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return false;
  return Object.entries(expected).every(([k, v]) => k in actual && jsonSubset(v, actual[k], k));
}

function tryJson(s) {
  try { return { ok: true, v: JSON.parse(s) }; } catch { return { ok: false }; }
}

/** The expected lines of an output block that do not appear in the actual output. */
export function missingLines(expectedText, actualText) {
  const actualLines = actualText.split(/\r\n|\r|\n/).map((l) => l.trim()).filter(Boolean);
  const whole = tryJson(expectedText.trim());
  if (whole.ok && typeof whole.v === 'object' && whole.v !== null) {
    const candidates = [actualText.trim(), ...actualLines];
    if (candidates.some((c) => { const a = tryJson(c); return a.ok && jsonSubset(whole.v, a.v); })) return [];
    return [expectedText.trim().replace(/\s+/g, ' ').slice(0, 160)];
  }
  const missing = [];
  for (const raw of expectedText.split('\n')) {
    const line = raw.trim();
    if (!line || line.includes('…')) continue;
    if (actualLines.includes(line)) continue;
    const m = /^([A-Za-z_-]*:\s*)?([[{].*)$/.exec(line);
    const exp = m ? tryJson(m[2]) : { ok: false };
    if (exp.ok && actualLines.some((a) => {
      if (!a.startsWith(m[1] ?? '')) return false;
      const act = tryJson(a.slice((m[1] ?? '').length));
      return act.ok && jsonSubset(exp.v, act.v);
    })) continue;
    missing.push(line);
  }
  return missing;
}

// --- links -----------------------------------------------------------------------------------

function slug(heading) {
  return heading.trim().toLowerCase()
    .replace(/<[^>]+>/g, '')
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchorsOf(file, cache) {
  if (cache.has(file)) return cache.get(file);
  const set = new Set();
  const counts = new Map();
  let inFence = false;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) inFence = !inFence;
    if (inFence) continue;
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!h) continue;
    const base = slug(h[1].replace(/`/g, ''));
    const n = counts.get(base) ?? 0;
    counts.set(base, n + 1);
    set.add(n ? `${base}-${n}` : base);
  }
  for (const m of fs.readFileSync(file, 'utf8').matchAll(/<a\s+(?:name|id)="([^"]+)"/g)) set.add(m[1]);
  cache.set(file, set);
  return set;
}

/** Relative links of a Markdown file whose file or #anchor does not exist. */
function brokenLinks(rel, text, cache) {
  const broken = [];
  const stripped = text.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
  for (const m of stripped.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
    const target = m[1];
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // http:, mailto:, …
    const [p, anchor] = target.split('#');
    const file = p ? path.resolve(path.dirname(path.join(REPO, rel)), decodeURIComponent(p)) : path.join(REPO, rel);
    if (!fs.existsSync(file)) { broken.push(`${target} (no such file)`); continue; }
    if (anchor && file.endsWith('.md') && !anchorsOf(file, cache).has(anchor)) broken.push(`${target} (no such heading)`);
  }
  return broken;
}

// --- main ------------------------------------------------------------------------------------

function docFiles(only) {
  if (only) return only.split(',').map((s) => s.trim()).filter(Boolean);
  const docs = fs.readdirSync(path.join(REPO, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`);
  return ['README.md', ...docs];
}

function exampleReadmes() {
  const out = [];
  const walk = (dir) => {
    for (const e of fs.readdirSync(path.join(REPO, dir), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.isDirectory() && !['node_modules', 'target', '__pycache__'].includes(e.name)) walk(`${dir}/${e.name}`);
      else if (e.name === 'README.md') out.push(`${dir}/${e.name}`);
    }
  };
  walk('examples');
  return out;
}

function gatewayOf(b) {
  return b.directive?.gateway ?? 'worker';
}

async function main() {
  const args = parseArgs(process.argv.slice(2), {
    runner: 'tests/docs/run.mjs',
    values: ['files', 'port', 'native-port', 'api-key'],
    flags: ['list'],
  });
  const port = Number(args.port ?? 8794);
  const nativePort = Number(args['native-port'] ?? 8089);
  const apiKey = args['api-key'] ?? DOC_KEY;
  const files = docFiles(args.files);

  const all = [];
  for (const f of files) {
    const text = fs.readFileSync(path.join(REPO, f), 'utf8');
    for (const b of parseBlocks(f, text)) {
      b.kind = classify(b);
      if (b.kind !== 'ignore') all.push(b);
    }
  }
  if (args.list) {
    for (const b of all) {
      const d = b.directive ?? {};
      console.log(`${b.file}:${b.line} ${b.lang || '(text)'} ${b.kind}${b.kind === 'skip' ? ` (${d.skip})` : ''}` +
        `${['run', 'background'].includes(b.kind) ? ` gateway=${gatewayOf(b)}` : ''}${d.name ? ` name=${d.name}` : ''}${d.from ? ` from=${d.from}` : ''}`);
    }
    return;
  }

  const results = [];
  const record = (b, status, reason) => {
    const r = { file: b.file, line: b.line, kind: b.kind, status, ...(reason ? { reason } : {}) };
    results.push(r);
    const mark = status === 'passed' ? 'ok  ' : status === 'failed' ? 'FAIL' : 'SKIP';
    console.log(`${mark} ${b.file}:${b.line} ${b.kind}${b.kind === 'run' || b.kind === 'background' ? ` [${gatewayOf(b)}]` : ''}${reason ? `  — ${reason}` : ''}`);
  };

  fs.mkdirSync(LOGS, { recursive: true });
  fs.writeFileSync(path.join(LOGS, 'docs-blocks.log'), '');
  const ctx = { apiKey, worker: null, native: null };
  const setupErrors = {};
  const needs = new Set(all.filter((b) => b.kind === 'run' || b.kind === 'background').map(gatewayOf));
  const gateways = [];
  let stopping = false;
  const cleanup = async () => { for (const g of gateways) await stopGroup(g); };
  const onSignal = async (sig) => {
    if (stopping) return;
    stopping = true;
    console.error(`${sig}: stopping`);
    await stopAll(); // also a gateway still starting
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // whatever happens (a crash, a closed stdout), leave no gateway or block running behind
  process.on('exit', () => {
    killAll();
    for (const pid of liveBlocks) {
      try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
    }
  });
  process.stdout.on('error', () => {});

  try {
    if (needs.has('worker')) {
      try { ctx.worker = await startWorker({ port, apiKey }); gateways.push(ctx.worker); } catch (e) { setupErrors.worker = e.message; console.error(`worker: ${e.message}`); }
    }
    if (needs.has('native')) {
      try { ctx.native = await startNative({ port: nativePort, apiKey }); gateways.push(ctx.native); } catch (e) { setupErrors.native = e.message; console.error(`native: ${e.message}`); }
    }

    for (const file of files) {
      const blocks = all.filter((b) => b.file === file);
      const named = new Map();
      const background = [];
      let previous = null; // the last block that ran (foreground or background), for `expect`
      for (const b of blocks) {
        const d = b.directive ?? {};
        if (b.kind === 'bad') { record(b, 'failed', `doc-test directive on a ${b.lang || 'text'} block (expect goes on output blocks, the others on sh/bash blocks)`); continue; }
        if (b.kind === 'skip') { record(b, 'skipped', d.skip); previous = null; continue; }
        if (b.kind === 'expect') {
          const src = d.from ? named.get(d.from) : previous;
          if (!src) { record(b, d.from ? 'failed' : 'skipped', d.from ? `no block named ${d.from} ran before` : 'the block before it did not run'); continue; }
          if (src.status === 'skipped') { record(b, 'skipped', 'its command did not run'); continue; }
          let missing = missingLines(b.body, src.proc.stdout);
          const deadline = Date.now() + EXPECT_WAIT_MS;
          while (missing.length && !src.proc.exited && Date.now() < deadline) {
            await sleep(200);
            missing = missingLines(b.body, src.proc.stdout);
          }
          record(b, missing.length ? 'failed' : 'passed', missing.length ? `not in the output of line ${src.block.line}: ${missing.slice(0, 3).join(' | ')}` : undefined);
          continue;
        }
        const gw = gatewayOf(b);
        if (gw !== 'none' && !ctx[gw]) {
          record(b, 'failed', `the ${gw} gateway did not start: ${lastLine(setupErrors[gw]?.split('\n')[0])}`);
          previous = null;
          continue;
        }
        const script = substitute(b.body, gw, ctx);
        if (b.kind === 'background') {
          const proc = startProcess(script);
          const entry = { block: b, proc, status: 'running' };
          background.push(entry);
          if (d.name) named.set(d.name, entry);
          previous = entry;
          // wait for its first output (a subscriber's connected block), at most 10 s, then a
          // moment more; a command that fails at once fails the block now
          const first = Date.now() + EXPECT_WAIT_MS;
          while (!proc.exited && !proc.stdout && !proc.stderr && Date.now() < first) await sleep(50);
          const settle = Date.now() + BACKGROUND_SETTLE_MS;
          while (!proc.exited && Date.now() < settle) await sleep(100);
          if (proc.exited && proc.exited.code !== 0) {
            entry.status = 'failed';
            record(b, 'failed', `exited ${proc.exited.code ?? proc.exited.signal} at once: ${lastLine(proc.stderr || proc.stdout)}`);
          }
          continue;
        }
        const proc = await runForeground(script, d.timeout ?? DEFAULT_TIMEOUT_S);
        const entry = { block: b, proc, status: 'ran' };
        if (d.name) named.set(d.name, entry);
        previous = entry;
        if (proc.timedOut) record(b, 'failed', `timed out after ${d.timeout ?? DEFAULT_TIMEOUT_S} s: ${lastLine(proc.stderr || proc.stdout)}`);
        else if (proc.exited.code !== 0) record(b, 'failed', `exit ${proc.exited.code ?? proc.exited.signal}: ${lastLine(proc.stderr || proc.stdout)}`);
        else record(b, 'passed');
        fs.appendFileSync(path.join(LOGS, 'docs-blocks.log'), `=== ${b.file}:${b.line}\n$ ${script}\n${proc.stdout}${proc.stderr}\n`);
      }
      // end of the file: stop its background blocks; one still running (or ended with 0) passed
      for (const e of background) {
        if (e.status === 'failed') continue;
        const stillRunning = !e.proc.exited;
        if (stillRunning) { killProcess(e.proc); await Promise.race([e.proc.done, sleep(3000)]); killProcess(e.proc, 'SIGKILL'); }
        fs.appendFileSync(path.join(LOGS, 'docs-blocks.log'), `=== ${e.block.file}:${e.block.line} (background)\n${e.proc.stdout}${e.proc.stderr}\n`);
        if (stillRunning || e.proc.exited.code === 0) record(e.block, 'passed');
        else record(e.block, 'failed', `exited ${e.proc.exited.code ?? e.proc.exited.signal}: ${lastLine(e.proc.stderr || e.proc.stdout)}`);
      }
      if (background.length) for (const g of gateways) await waitIdle(g, apiKey);
    }
  } finally {
    await cleanup();
  }

  // relative links and their #anchors, one check per file (also the examples' READMEs)
  const anchorCache = new Map();
  for (const f of args.files ? files : [...files, ...exampleReadmes()]) {
    const broken = brokenLinks(f, fs.readFileSync(path.join(REPO, f), 'utf8'), anchorCache);
    const b = { file: f, line: 0, kind: 'links' };
    record(b, broken.length ? 'failed' : 'passed', broken.length ? `broken: ${broken.join(', ')}` : undefined);
  }

  writeResults({ results, files, port, nativePort, setupErrors });
}

function writeResults({ results, files, port, nativePort, setupErrors }) {
  const order = new Map([...files, ...exampleReadmes()].map((f, i) => [f, i]));
  const sorted = [...results].sort((a, b) => (order.get(a.file) - order.get(b.file)) || (a.line - b.line) || a.kind.localeCompare(b.kind));
  const count = (pred) => sorted.filter(pred).length;
  const totals = totalsOf(sorted);
  const commands = sorted.filter((r) => r.kind === 'run' || r.kind === 'background' || r.kind === 'skip');
  const byKind = {
    commands: totalsOf(commands),
    expected_outputs: { passed: count((r) => r.kind === 'expect' && r.status === 'passed'), failed: count((r) => r.kind === 'expect' && r.status === 'failed'), skipped: count((r) => r.kind === 'expect' && r.status === 'skipped') },
    link_checks: { passed: count((r) => r.kind === 'links' && r.status === 'passed'), failed: count((r) => r.kind === 'links' && r.status === 'failed') },
  };
  const json = {
    suite: 'docs',
    gateways: { worker: `wrangler dev on 127.0.0.1:${port} (docs say ${DOC_WORKER})`, native: `target/release/sse-gateway on 127.0.0.1:${nativePort} (docs say ${DOC_NATIVE})` },
    totals,
    by_kind: byKind,
    ...(Object.keys(setupErrors).length ? { setup_errors: Object.fromEntries(Object.entries(setupErrors).map(([k, v]) => [k, v.split('\n')[0]])) } : {}),
    checks: sorted,
  };
  const esc = (s) => cell(s ?? '');
  const md = [
    '# Documentation checks',
    '',
    'The shell blocks of README.md and docs/*.md run against a live gateway (`node tests/docs/run.mjs`;',
    'conventions in tests/docs/README.md), the output blocks marked `expect` compared with what they',
    'printed, and every relative link and #anchor resolved.',
    '',
    `**${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped** — commands: ` +
      `${byKind.commands.passed} passed, ${byKind.commands.failed} failed, ${byKind.commands.skipped} skipped; ` +
      `expected outputs: ${byKind.expected_outputs.passed} passed, ${byKind.expected_outputs.failed} failed, ${byKind.expected_outputs.skipped} skipped; ` +
      `link checks: ${byKind.link_checks.passed} files passed, ${byKind.link_checks.failed} failed.`,
    '',
  ];
  for (const [k, v] of Object.entries(setupErrors)) md.push(`Setup failed (${k}): ${esc(v.split('\n')[0])}`, '');
  md.push('| block | kind | status | reason |', '|---|---|---|---|');
  for (const r of sorted) md.push(`| ${r.file}${r.line ? `:${r.line}` : ''} | ${r.kind} | ${r.status} | ${esc(r.reason)} |`);
  md.push('');
  writeResult('docs', json, md);
  console.log('results: test-results/docs.json, test-results/docs.md');
  console.log(`commands: ${byKind.commands.passed} passed, ${byKind.commands.failed} failed, ${byKind.commands.skipped} skipped; ` +
    `expected outputs: ${byKind.expected_outputs.passed} passed, ${byKind.expected_outputs.failed} failed, ${byKind.expected_outputs.skipped} skipped`);
  console.log(`${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
  process.exitCode = totals.failed > 0 ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(e.stack ?? String(e));
    console.log('0 passed, 1 failed, 0 skipped');
    process.exit(1);
  });
}
