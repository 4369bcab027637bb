#!/usr/bin/env node
// Browser tests of the admin UI (/admin) and of private topics from a page (EventSource and
// WebSocket with ?token=): Debian's Chromium driven by playwright-core.
//
//   node tests/browser/run.mjs                          start `wrangler dev` on 127.0.0.1:8798, test it, stop it
//   node tests/browser/run.mjs --target native          start the native server (target/{release,debug}/sse-gateway)
//                                                       on 127.0.0.1:8797, test it, stop it
//   node tests/browser/run.mjs --target native --build-native   cargo build --release the native server first
//   node tests/browser/run.mjs --target native --base-url http://127.0.0.1:8080   an already running gateway
//
// Options (environment in brackets):
//   --target LABEL      wrangler-dev | native | deployed [BROWSER_TARGET] (default wrangler-dev)
//   --base-url URL      test this running gateway instead of starting one [BROWSER_BASE_URL]
//   --port N            port of the gateway we start (8798 for wrangler dev, 8797 for native)
//   --api-key KEY       [BROWSER_API_KEY] (default dev-key-change-me)
//   --native-bin PATH   the native binary [NATIVE_BIN] (default: the newer of target/release and target/debug)
//   --build-native      run `cargo build --release -p sse-gateway-server --bin sse-gateway` first
//   --files a,b         only these test files (served, ui, private)
//   --private-prefix P  topics starting with P are private [BROWSER_PRIVATE_PREFIX] (default browser-priv-)
//   --subscriber-secret S  an HS256 secret of SUBSCRIBER_TOKEN_SECRETS [BROWSER_SUBSCRIBER_SECRET]
//                       (default: the test secret below)
//
// A gateway this runner starts gets PRIVATE_TOPICS=<P>* and SUBSCRIBER_TOKEN_SECRETS=<S> (the
// admin UI tests use other, public, topics). A gateway given with --base-url is asked first:
// without those settings the private topic tests are skipped with the reason.
//
// Writes test-results/browser-<target>.json and .md (names and status only, so reruns diff
// cleanly) and test-results/screenshots/admin-*.png. The last line printed is
// `N passed, N failed`; the exit code is non-zero on any failure, including a gateway that
// cannot be started or that does not serve the current admin build.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as gateways from '../lib/gateways.mjs';
import { LOGS, healthy, offlineEnv, stopAll, stopGroup } from '../lib/gateways.mjs';
import { parseArgs } from '../lib/args.mjs';
import { runTestFiles } from '../lib/node-test.mjs';
import { cell, totalsOf, writeResult } from '../lib/results.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const RESULTS = path.join(REPO, 'test-results');
const FILE_ORDER = ['served', 'ui', 'private'];
// The settings of tests/browser/private.test.mjs (a test secret of 42 bytes; at least 32 needed).
const PRIVATE_DEFAULTS = { prefix: 'browser-priv-', secret: 'browser-subscriber-secret-0123456789abcdef' };
const HINT = 'stop it, pick another --port, or pass --base-url to test it';

/** The settings that make `<prefix>*` private with `secret` as the HS256 subscriber token secret. */
function privateSettings({ prefix, secret }) {
  return { PRIVATE_TOPICS: `${prefix}*`, SUBSCRIBER_TOKEN_SECRETS: secret };
}

function startWrangler({ port, apiKey, priv }) {
  // wrangler's [build] command builds the admin UI and the Worker (the Worker only when the
  // caller's environment does not say WORKER_BUILD_SKIP=1, as scripts/test.sh does after its build)
  return gateways.startWrangler({
    port, apiKey, vars: { HEARTBEAT_INTERVAL_MS: 1000, ...privateSettings(priv) }, build: 'wrangler', limitMs: 300_000,
    logFile: path.join(LOGS, 'wrangler-dev-browser.log'), hint: HINT,
  });
}

function findNativeBin(explicit) {
  if (explicit) {
    if (!fs.existsSync(explicit)) throw new Error(`native server binary ${explicit} does not exist`);
    return explicit;
  }
  const candidates = ['release', 'debug']
    .map((p) => path.join(REPO, 'target', p, 'sse-gateway'))
    .filter((f) => fs.existsSync(f))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  if (!candidates.length) {
    throw new Error('NATIVE SERVER NOT FOUND: neither target/release/sse-gateway nor target/debug/sse-gateway exists. Build it with `cargo build --release -p sse-gateway-server --bin sse-gateway` (or pass --build-native / --native-bin PATH / --base-url URL)');
  }
  return candidates[0];
}

function buildNative() {
  const env = offlineEnv();
  console.log('building the admin UI and the native server: bash admin/build.sh && cargo build --release -p sse-gateway-server --bin sse-gateway');
  for (const [cmd, args] of [['bash', ['admin/build.sh']], ['cargo', ['build', '--release', '-p', 'sse-gateway-server', '--bin', 'sse-gateway']]]) {
    const r = spawnSync(cmd, args, { cwd: REPO, env, stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal ?? r.error?.message})`);
  }
  return path.join(REPO, 'target', 'release', 'sse-gateway');
}

function startNative({ port, apiKey, bin, priv }) {
  return gateways.startNative({
    port, bin, name: 'native server', logFile: path.join(LOGS, 'native-browser.log'), limitMs: 30_000, hint: HINT,
    env: { API_KEYS: apiKey, HEARTBEAT_INTERVAL_MS: '1000', ...privateSettings(priv), RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
}

/** The gateway must serve the admin UI that admin/dist holds now; say loudly what is wrong if not. */
async function checkAdminServed(base, target) {
  const distIndex = path.join(REPO, 'admin', 'dist', 'index.html');
  if (!fs.existsSync(distIndex)) throw new Error('admin/dist/index.html missing: build the admin UI with `bash admin/build.sh`');
  const built = fs.readFileSync(distIndex, 'utf8');
  if (!built.includes('/admin/assets/')) throw new Error('admin/dist holds no Vite build (placeholder page?): run `bash admin/build.sh`');
  let r;
  try {
    r = await fetch(`${base}/admin/`, { signal: AbortSignal.timeout(10_000) });
  } catch (e) {
    throw new Error(`GET ${base}/admin/ failed: ${e.message}`);
  }
  const body = await r.text();
  const hint = target === 'native'
    ? 'rebuild the native server after building the admin UI: `bash admin/build.sh && cargo build --release -p sse-gateway-server` (or run with --build-native)'
    : 'run `bash admin/build.sh` (scripts/build-worker.sh does it before wrangler starts)';
  if (r.status !== 200) throw new Error(`THE GATEWAY DOES NOT SERVE THE ADMIN UI: GET ${base}/admin/ answered ${r.status} (${body.slice(0, 120)}); ${hint}`);
  if (!body.includes('/admin/assets/')) throw new Error(`THE GATEWAY DOES NOT SERVE THE ADMIN UI: GET ${base}/admin/ is a placeholder page (${body.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 160)}); ${hint}`);
  if (body !== built) throw new Error(`THE GATEWAY SERVES AN OLDER ADMIN BUILD: ${base}/admin/ differs from admin/dist/index.html; ${hint}`);
  for (const [, asset] of built.matchAll(/(?:src|href)="(\/admin\/assets\/[^"]+)"/g)) {
    const a = await fetch(`${base}${asset}`, { signal: AbortSignal.timeout(10_000) });
    await a.arrayBuffer();
    if (a.status !== 200) {
      throw new Error(`THE GATEWAY DOES NOT SERVE THE CURRENT ADMIN ASSETS: GET ${asset} answered ${a.status}${target === 'wrangler-dev' ? ' (a wrangler dev started before admin/dist was rebuilt keeps its old asset list: restart it)' : ''}; ${hint}`);
    }
  }
}

function firstLine(s) {
  return String(s ?? '').split('\n').map((l) => l.trim()).filter(Boolean).slice(0, 3).join(' | ').slice(0, 400) || 'failed';
}

/** A failed test's one-line reason (a hook's failure says so). */
function failureReason(err) {
  return firstLine(err?.failureType === 'hookFailed' ? `hook failed: ${err?.cause?.message ?? err?.message}` : err?.cause?.message ?? err?.message);
}

function writeResults({ target, baseUrl, results, setupError, screenshots }) {
  const totals = totalsOf(results);
  totals.total = totals.passed + totals.failed + totals.skipped;
  // stable: no timings, no random topic names (they only appear inside failure reasons)
  const stable = (s) => String(s).replace(/-[0-9a-f]{4}\b/g, '-<run>');
  const tests = results.map((t) => ({ name: t.name, file: t.file, status: t.status, ...(t.reason ? { reason: stable(t.reason) } : {}) }));
  const json = { suite: 'browser', target, base_url: baseUrl, browser: 'Debian chromium + playwright-core', totals, ...(setupError ? { setup_error: setupError } : {}), screenshots, tests };
  const esc = cell;
  const md = [
    `# Browser tests of the admin UI and private topics — ${target}`,
    '',
    `Target \`${baseUrl || '(not started)'}\`, Chromium (Debian) driven by playwright-core. **${totals.passed} passed, ${totals.failed} failed${totals.skipped ? `, ${totals.skipped} skipped` : ''}**.`,
    '',
  ];
  if (setupError) md.push(`**Setup failed:** ${esc(setupError)}`, '');
  md.push('| test | file | status | note |', '|---|---|---|---|');
  for (const t of tests) md.push(`| ${esc(t.name)} | ${esc(path.basename(t.file))} | ${t.status} | ${esc(t.reason ?? '')} |`);
  if (screenshots.length) md.push('', `Screenshots: ${screenshots.map((s) => `[${path.basename(s)}](${s.replace(/^test-results\//, '')})`).join(', ')}`);
  md.push('');
  return { totals, ...writeResult(`browser-${target}`, json, md) };
}

async function main() {
  const args = parseArgs(process.argv.slice(2), {
    runner: 'tests/browser/run.mjs',
    values: ['target', 'base-url', 'port', 'api-key', 'native-bin', 'files', 'private-prefix', 'subscriber-secret'],
    flags: ['build-native'],
  });
  const target = args.target ?? process.env.BROWSER_TARGET ?? 'wrangler-dev';
  if (!/^[a-z0-9-]+$/.test(target)) throw new Error(`bad --target ${target}`);
  let baseUrl = (args['base-url'] ?? process.env.BROWSER_BASE_URL ?? '').replace(/\/+$/, '');
  const apiKey = args['api-key'] ?? process.env.BROWSER_API_KEY ?? 'dev-key-change-me';
  if (!baseUrl && !['wrangler-dev', 'native'].includes(target)) throw new Error(`--target ${target} needs --base-url`);
  const port = Number(args.port ?? (target === 'native' ? 8797 : 8798));
  const priv = {
    prefix: args['private-prefix'] ?? process.env.BROWSER_PRIVATE_PREFIX ?? PRIVATE_DEFAULTS.prefix,
    secret: args['subscriber-secret'] ?? process.env.BROWSER_SUBSCRIBER_SECRET ?? PRIVATE_DEFAULTS.secret,
  };
  if (!/^[A-Za-z0-9_.:-]{1,100}$/.test(priv.prefix)) throw new Error(`bad --private-prefix ${priv.prefix} (topic characters A-Z a-z 0-9 _ - . : only)`);
  if (Buffer.byteLength(priv.secret) < 32 || /[,\s]/.test(priv.secret)) throw new Error('--subscriber-secret must be at least 32 bytes, without commas or whitespace');
  let files = FILE_ORDER;
  if (args.files) {
    const wanted = args.files.split(',').map((s) => s.trim().replace(/\.test\.mjs$/, ''));
    for (const w of wanted) if (!FILE_ORDER.includes(w)) throw new Error(`unknown test file ${w}`);
    files = FILE_ORDER.filter((f) => wanted.includes(f));
  }

  let gateway = null;
  const onSignal = async (sig) => {
    console.error(`\n${sig}: stopping`);
    await stopAll(); // also a gateway still starting
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let results = [];
  let setupError = null;
  const shotsDir = path.join(RESULTS, 'screenshots');
  const shotsBefore = new Map(fs.existsSync(shotsDir) ? fs.readdirSync(shotsDir).map((f) => [f, fs.statSync(path.join(shotsDir, f)).mtimeMs]) : []);
  try {
    if (!fs.existsSync(process.env.CHROMIUM_BIN || '/usr/bin/chromium')) {
      throw new Error('Chromium not found at /usr/bin/chromium: run `bash scripts/setup.sh --with-chromium`');
    }
    if (!baseUrl) {
      try {
        if (target === 'native') {
          const bin = args['build-native'] ? buildNative() : findNativeBin(args['native-bin'] ?? process.env.NATIVE_BIN);
          gateway = await startNative({ port, apiKey, bin, priv });
        } else {
          gateway = await startWrangler({ port, apiKey, priv });
        }
      } catch (e) {
        gateway = e.handle ?? null;
        throw e;
      }
      baseUrl = gateway.base;
    } else if (!(await healthy(baseUrl))) {
      throw new Error(`${baseUrl}/healthz does not answer 200`);
    }
    // the private topic tests need no admin UI
    if (files.some((f) => f !== 'private')) await checkAdminServed(baseUrl, target);
    Object.assign(process.env, {
      BROWSER_BASE_URL: baseUrl, BROWSER_TARGET: target, BROWSER_API_KEY: apiKey,
      BROWSER_PRIVATE_PREFIX: priv.prefix, BROWSER_SUBSCRIBER_SECRET: priv.secret,
      // a gateway started here has the settings: private.test.mjs fails (never skips) without them
      BROWSER_PRIVATE_CONFIGURED: gateway ? '1' : '0',
    });
    console.log(`browser: target=${target} base=${baseUrl} files=${files.join(',')}`);
    ({ results } = await runTestFiles(files.map((f) => path.join(HERE, `${f}.test.mjs`)), { timeoutMs: 180_000, reason: failureReason }));
  } catch (e) {
    setupError = e.message;
    console.error(`\nBROWSER TESTS NOT RUN (${target}): ${e.message}\n`);
    results.push({ name: `(setup) gateway started${files.some((f) => f !== 'private') ? ' and serving the current admin UI at /admin' : ''}`, file: 'tests/browser/run.mjs', status: 'failed', reason: firstLine(e.message) });
  } finally {
    if (await stopGroup(gateway)) console.log(`${gateway.name} stopped`);
  }

  const screenshots = fs.existsSync(shotsDir)
    ? fs.readdirSync(shotsDir).filter((f) => f.startsWith('admin-') && f.endsWith('.png') && fs.statSync(path.join(shotsDir, f)).mtimeMs !== shotsBefore.get(f)).sort().map((f) => `test-results/screenshots/${f}`)
    : [];
  const { totals, jsonFile, mdFile } = writeResults({ target, baseUrl, results, setupError, screenshots });
  console.log(`results: ${path.relative(REPO, jsonFile)}, ${path.relative(REPO, mdFile)}${screenshots.length ? `; screenshots: ${screenshots.length} in test-results/screenshots/` : ''}`);
  if (setupError) console.log(`SETUP FAILED: ${setupError.split('\n')[0]}`);
  console.log(`${totals.passed} passed, ${totals.failed} failed${totals.skipped ? `, ${totals.skipped} skipped` : ''}`);
  process.exit(totals.failed > 0 || setupError || totals.total === 0 ? 1 : 0);
}

main().catch((e) => {
  console.error(e.stack ?? String(e));
  console.log('0 passed, 1 failed');
  process.exit(1);
});
