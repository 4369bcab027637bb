#!/usr/bin/env node
// The examples, end to end: every language's subscriber against every language's publisher.
//
//   node tests/examples/run.mjs                              start `wrangler dev` on :8796, run the matrix
//   node tests/examples/run.mjs --target native-cluster      the three-node native cluster (as `make cluster` starts it)
//   node tests/examples/run.mjs --target native-cluster --node-urls http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083
//   node tests/examples/run.mjs --target deployed --base-url https://sse.example.workers.dev   (EXAMPLES_API_KEY=...)
//
// What it does: builds the examples (Go binaries, the Rust crate; checks the Python venv and
// Node 22), starts every subscriber (TypeScript, Python, Go, Rust, and the browser page in
// headless Chromium) on two topics unique to the run, waits until all are connected, runs every
// publisher one after another (N events each, distinct id prefixes), then checks that every
// subscriber printed every publisher's events exactly once, in order, byte-exact (via the JSON
// envelope). On the cluster, subscribers sit on nodes 1 and 3 and the publishers on node 2.
// Before that, each subscriber's reconnect behaviour (backoff, retry-after, Last-Event-ID,
// `event: reconnect`) is checked against a scripted SSE server (reconnect.mjs), and so is its
// handling of an expired subscriber token (`event: reconnect` with reason token_expired: with
// --token-command it reconnects at once with a fresh token, without one it exits 1).
//
// Private topics: the gateway we start gets PRIVATE_ENV below (PRIVATE_TOPICS=ex-*-private, a
// test secret in SUBSCRIBER_TOKEN_SECRETS, a test Ed25519 key in SUBSCRIBER_TOKEN_PUBLIC_KEYS).
// Each language's publisher mints a token (`publisher mint-token`, HS256), checked here; then
// every subscriber (the browser too) also subscribes to a private topic `ex-<run>-private` with a
// token minted by another language's publisher (given as --token, SSE_TOKEN, SSE_TOKEN_COMMAND,
// or ?token= for the browser; the browser's is EdDSA, minted by the TypeScript publisher), the
// publishers publish to it too, and each must receive every publisher's events exactly once, in
// order. A subscriber of each language without a token must be refused (401 token_required).
//
// Options (environment in brackets):
//   --target LABEL       wrangler-dev (default) | native-cluster | deployed | any label with --base-url
//   --base-url URL       an already running gateway for subscribers and publishers [EXAMPLES_BASE_URL]
//   --node-urls A,B,C    native cluster nodes; subscribers on A and C, publishers on B [EXAMPLES_NODE_URLS]
//   --api-key KEY        [EXAMPLES_API_KEY] (default dev-key-change-me)
//   --count N            events per publisher (default 20)
//   --langs a,b          only these languages (typescript,python,go,rust)
//   --no-browser         skip the browser cell
//   --private            with --base-url / --node-urls: the gateway runs with PRIVATE_ENV, so run the
//                        private-topic cells (a gateway we start always gets it)
//   --no-private         skip the private-topic cells
//   --print-private-env  print PRIVATE_ENV as KEY=VALUE lines and exit (to start a gateway with it)
//   --port N             port of the wrangler dev we start (default 8796)
//   --chaos              instead of the matrix: at-least-once under cut connections (wrangler-dev or
//                        native-cluster). Starts the gateway with RETENTION=chaos-*=1000/300s, puts a
//                        TCP proxy of ours between each subscriber and the gateway (on the cluster each
//                        new connection goes to the next of nodes 1 and 3), publishes --count (default
//                        300) events chaos-1..N at ~100/s on one retained topic while destroying each
//                        subscriber's proxied connections every 0.5-1 s, then checks that every
//                        subscriber, de-duplicated by id, has every event exactly once, in order.
//                        Writes test-results/examples-chaos-<target>.json and .md.
//
// Writes test-results/examples-<target>.json and .md (logs in test-results/logs/examples-<target>/).
// The last line printed is `N passed, N failed`; the exit code is non-zero on any failure.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

import * as gateways from '../lib/gateways.mjs';
import { NODE22_BIN, REPO, RESULTS, healthy, stopAll } from '../lib/gateways.mjs';
import { parseArgs } from '../lib/args.mjs';
import { cell as esc, writeResult } from '../lib/results.mjs';
import { checkSubscriber, parseLines, sampleEvent } from './check.mjs';
import { judgeReconnect, judgeTokenRefresh, signHs256, startScriptedServer, startTokenServer, verifyHs256 } from './reconnect.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const LANGS = ['typescript', 'python', 'go', 'rust'];
const BROWSER = 'browser';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Private topics: the gateway's settings, and the test secret and key the tokens are signed with

/** Topics `ex-<run>-private` are private; the matrix's two other topics stay public. */
const PRIVATE_PATTERN = 'ex-*-private';
/** The HS256 secret every example publisher signs with (SUBSCRIBER_TOKEN_SECRET): a test value. */
const TOKEN_SECRET = 'examples-test-subscriber-secret-0123456789';
/** A fixed Ed25519 test key (from a published seed): the TypeScript publisher mints EdDSA with it. */
const ED25519_KEY = crypto.createPrivateKey({
  key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), crypto.createHash('sha256').update('sse-gateway examples test key').digest()]),
  format: 'der',
  type: 'pkcs8',
});
const TOKEN_KID = 'examples';
const PRIVATE_ENV = {
  PRIVATE_TOPICS: PRIVATE_PATTERN,
  SUBSCRIBER_TOKEN_SECRETS: TOKEN_SECRET,
  SUBSCRIBER_TOKEN_PUBLIC_KEYS: `${TOKEN_KID}:EdDSA:${crypto.createPublicKey(ED25519_KEY).export({ type: 'spki', format: 'der' }).toString('base64')}`,
};
/** What the publishers' mint-token reads: the secret, and the private key for --alg EdDSA. */
const MINT_ENV = { SUBSCRIBER_TOKEN_SECRET: TOKEN_SECRET, SUBSCRIBER_TOKEN_PRIVATE_KEY: ED25519_KEY.export({ type: 'pkcs8', format: 'pem' }) };

/** The claims of an EdDSA JWT that the test key verifies; null for anything else. */
function verifyEdDsa(token) {
  const [h, p, sig] = String(token).split('.');
  try {
    const header = JSON.parse(Buffer.from(h, 'base64url'));
    if (header.alg !== 'EdDSA' || header.kid !== TOKEN_KID) return null;
    if (!crypto.verify(null, Buffer.from(`${h}.${p}`), crypto.createPublicKey(ED25519_KEY), Buffer.from(sig, 'base64url'))) return null;
    return JSON.parse(Buffer.from(p, 'base64url'));
  } catch {
    return null;
  }
}

/** One word for sh -c. */
const shellQuote = (s) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

// ---------------------------------------------------------------------------------------------
// Processes

/** Run a command to completion; resolves {code, out} (stdout+stderr, also appended to log). */
function run(cmd, args, { cwd = REPO, env = process.env, log, timeoutMs = 900_000 } = {}) {
  return new Promise((resolve) => {
    let out = '';
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const onData = (d) => { out += d; if (log) fs.appendFileSync(log, d); };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL'); } catch {} }, timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); resolve({ code: -1, out: `${out}${e.message}` }); });
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code: code ?? (signal ? 128 : -1), out }); });
  });
}

/** A long-running example process: stdout and stderr kept in memory and in files. */
function startProcess(name, cmd, args, { env, logDir }) {
  const outFile = path.join(logDir, `${name}.out`);
  const errFile = path.join(logDir, `${name}.err`);
  fs.writeFileSync(outFile, '');
  fs.writeFileSync(errFile, `$ ${cmd} ${args.join(' ')}\n`);
  const p = { name, stdout: '', stderr: '', exit: null, listeners: [] };
  const child = spawn(cmd, args, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  p.child = child;
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => { p.stdout += d; fs.appendFileSync(outFile, d); });
  child.stderr.on('data', (d) => { p.stderr += d; fs.appendFileSync(errFile, d); p.listeners.forEach((f) => f()); });
  child.on('error', (e) => { p.exit = { code: -1, error: e.message }; p.listeners.forEach((f) => f()); });
  child.on('close', (code, signal) => { p.exit = { code, signal }; p.listeners.forEach((f) => f()); });
  return p;
}

async function waitFor(p, predicate, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (predicate()) return true;
    if (p.exit) return predicate();
    await new Promise((r) => { p.listeners.push(r); setTimeout(r, 200); });
    p.listeners = [];
  }
  return predicate();
}

async function stopProcess(p, graceMs = 3000) {
  if (!p?.child?.pid || p.exit) return;
  const signal = (sig) => { try { process.kill(-p.child.pid, sig); } catch {} };
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (!p.exit && Date.now() < deadline) await sleep(50);
  signal('SIGKILL');
}

const lastLines = (s, n = 3) => String(s).trim().split('\n').filter(Boolean).slice(-n).join(' | ').slice(0, 400);

// ---------------------------------------------------------------------------------------------
// The gateway under test

/** wrangler dev in its own process group (tests/lib/gateways.mjs); resolves once /healthz answers. */
function startWrangler({ port, apiKey, logDir, vars = {} }) {
  // A build already there is used as is (scripts/test.sh builds it first); otherwise wrangler
  // runs the [build] command.
  return gateways.startWrangler({
    port, apiKey, vars, build: 'auto', logFile: path.join(logDir, 'wrangler-dev.log'), limitMs: 180_000,
    hint: 'stop it or pass --base-url',
  });
}

/**
 * The native cluster (tests/lib/gateways.mjs startCluster, as `make cluster` starts it): Redis on
 * 127.0.0.1:6390 and three nodes on 127.0.0.1:8081-8083, after installing redis-server if
 * missing and building the release binary; resolves once all answer.
 */
async function startCluster({ apiKey, logDir, env: extraEnv = {} }) {
  const log = path.join(logDir, 'cluster.log');
  fs.writeFileSync(log, '');
  for (const script of [['scripts/setup.sh', '--with-redis'], ['scripts/build-server.sh']]) {
    console.log(`running: bash ${script.join(' ')}  (log: ${path.relative(REPO, log)})`);
    const r = await run('bash', script, { log, timeoutMs: 1_200_000 });
    if (r.code !== 0) throw new Error(`bash ${script.join(' ')} failed (exit ${r.code}): ${lastLines(r.out, 3)}`);
  }
  return gateways.startCluster({ env: { API_KEYS: apiKey, ...extraEnv }, logDir });
}

const stopCluster = gateways.stopCluster;

/** Poll the admin API until `topic` has at least `want` connections; false on timeout. */
async function waitForConnections(base, apiKey, topic, want, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let seen = -1;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`${base}/admin/api/connections?topic=${encodeURIComponent(topic)}&limit=500`, {
        headers: { authorization: `Bearer ${apiKey}` },
        signal: AbortSignal.timeout(5000),
      });
      const body = await r.json();
      seen = body.total ?? body.connections?.length ?? -1;
      if (r.status === 200 && seen >= want) return { ok: true, seen };
    } catch {}
    await sleep(250);
  }
  return { ok: false, seen };
}

// ---------------------------------------------------------------------------------------------
// The examples: how to build and run each language

function node22() {
  const [maj, min] = process.versions.node.split('.').map(Number);
  if (maj > 22 || (maj === 22 && min >= 18)) return process.execPath;
  return path.join(NODE22_BIN, 'node');
}

const TARGET_DIR = process.env.CARGO_TARGET_DIR ? path.resolve(REPO, process.env.CARGO_TARGET_DIR) : path.join(REPO, 'target');
const GO_BIN_DIR = path.join(TARGET_DIR, 'examples-go');
const VENV_PY = path.join(REPO, '.venv', 'bin', 'python');

const EXAMPLES = {
  typescript: {
    async build(log) {
      const node = node22();
      const r = await run(node, ['-e', 'process.exit(typeof fetch === "function" && process.features.typescript ? 0 : 1)'], { log });
      if (r.code !== 0) throw new Error(`${node} cannot run .ts files (Node >= 22.18 needed; run scripts/setup.sh)`);
      if (!fs.existsSync(path.join(REPO, 'examples', 'typescript', 'node_modules', 'jose', 'package.json'))) {
        throw new Error('examples/typescript/node_modules/jose missing (npm ci in examples/typescript; `bash scripts/setup.sh --with-examples`)');
      }
    },
    subscriber: (a) => [node22(), ['examples/typescript/subscriber.ts', ...a]],
    publisher: (a) => [node22(), ['examples/typescript/publisher.ts', ...a]],
  },
  python: {
    async build(log) {
      if (!fs.existsSync(VENV_PY)) throw new Error('.venv/bin/python missing: run `bash scripts/setup.sh --with-examples`');
      const r = await run(VENV_PY, ['-c', 'import httpx, httpx_sse, jwt'], { log });
      if (r.code !== 0) throw new Error(`httpx / httpx-sse / PyJWT not importable in .venv: run \`bash scripts/setup.sh --with-examples\` (${lastLines(r.out, 1)})`);
    },
    subscriber: (a) => [VENV_PY, ['examples/python/subscriber.py', ...a]],
    publisher: (a) => [VENV_PY, ['examples/python/publisher.py', ...a]],
  },
  go: {
    async build(log) {
      const env = { ...process.env, GOPROXY: 'off', GOTOOLCHAIN: 'local', GOFLAGS: '', CGO_ENABLED: '0' };
      fs.mkdirSync(GO_BIN_DIR, { recursive: true });
      const r = await run('go', ['build', '-o', `${GO_BIN_DIR}${path.sep}`, './...'], { cwd: path.join(REPO, 'examples', 'go'), env, log });
      // The one module it needs (golang-jwt) is vendored: no module proxy.
      if (r.code !== 0) throw new Error(`go build failed (exit ${r.code}; \`bash scripts/setup.sh --with-examples\` installs Go): ${lastLines(r.out, 2)}`);
    },
    subscriber: (a) => [path.join(GO_BIN_DIR, 'subscriber'), a],
    publisher: (a) => [path.join(GO_BIN_DIR, 'publisher'), a],
  },
  rust: {
    async build(log) {
      const r = await run('cargo', ['build', '-p', 'sse-gateway-examples', '--bins'], { log });
      if (r.code !== 0) throw new Error(`cargo build -p sse-gateway-examples failed (exit ${r.code}): ${lastLines(r.out, 2)}`);
    },
    subscriber: (a) => [path.join(TARGET_DIR, 'debug', 'subscriber'), a],
    publisher: (a) => [path.join(TARGET_DIR, 'debug', 'publisher'), a],
  },
};

/** The shell command that runs `lang`'s publisher with `args` (for --token-command). */
function commandLine(lang, args) {
  const [cmd, argv] = EXAMPLES[lang].publisher(args);
  return [cmd, ...argv].map(shellQuote).join(' ');
}

/**
 * Mint a subscriber token with `lang`'s publisher (`publisher mint-token`, MINT_ENV), and check
 * it here: signature (HS256 with the test secret, or EdDSA with the test key), header, claims.
 * Resolves { token, claims } or { error }.
 */
async function mint(lang, { sub, topics, ttl = 600, alg = 'HS256', log }) {
  const args = ['mint-token', '--sub', sub, '--topics', topics.join(','), '--ttl', String(ttl), ...(alg === 'HS256' ? [] : ['--alg', alg, '--kid', TOKEN_KID])];
  const [cmd, argv] = EXAMPLES[lang].publisher(args);
  const t0 = Math.floor(Date.now() / 1000);
  const r = await run(cmd, argv, { env: { ...process.env, ...MINT_ENV }, log, timeoutMs: 30_000 });
  const t1 = Math.ceil(Date.now() / 1000);
  if (r.code !== 0) return { error: `mint-token exit ${r.code}: ${lastLines(r.out, 2)}` };
  const lines = r.out.trim().split('\n');
  const token = lines[lines.length - 1].trim();
  const claims = alg === 'HS256' ? verifyHs256(token, TOKEN_SECRET) : verifyEdDsa(token);
  if (!claims) return { error: `mint-token printed no ${alg} token that verifies: ${token.slice(0, 80)}` };
  const problems = [];
  if (claims.sub !== sub) problems.push(`sub ${JSON.stringify(claims.sub)}`);
  if (JSON.stringify(claims.topics) !== JSON.stringify(topics)) problems.push(`topics ${JSON.stringify(claims.topics)}`);
  if (!(claims.iat >= t0 - 1 && claims.iat <= t1 + 1)) problems.push(`iat ${claims.iat} not now`);
  if (claims.exp - claims.iat !== ttl) problems.push(`exp - iat = ${claims.exp - claims.iat}, want ${ttl}`);
  return problems.length ? { error: `mint-token: ${problems.join(', ')}` } : { token, claims };
}

// ---------------------------------------------------------------------------------------------
// The browser subscriber: examples/browser/index.html served on loopback, in headless Chromium

function serveDirectory(dir) {
  const server = http.createServer((req, res) => {
    const file = path.join(dir, decodeURIComponent(new URL(req.url, 'http://x').pathname).replace(/^\/+/, '') || 'index.html');
    if (!file.startsWith(dir) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': file.endsWith('.html') ? 'text/html; charset=utf-8' : 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** Headless Chromium and a loopback server of examples/browser; resolves { browser, server }. */
async function launchBrowser() {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: run \`bash scripts/setup.sh --with-chromium\``);
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (e) {
    throw new Error(`playwright-core not installed (npm ci at the repository root): ${e.message}`);
  }
  const server = await serveDirectory(path.join(REPO, 'examples', 'browser'));
  try {
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    return { browser, server };
  } catch (e) {
    server.close();
    throw e;
  }
}

/**
 * Open the page on `topics` (with `token`, if any) in a new tab; resolves { page, logFile } once
 * its status line says it connected (want 'open') or was refused (want 'refused').
 */
async function openPage(ctx, { name, gateway, topics, token, logDir, want = 'open' }) {
  const logFile = path.join(logDir, `browser-${name}.log`);
  fs.writeFileSync(logFile, '');
  const page = await ctx.browser.newPage();
  page.on('console', (m) => fs.appendFileSync(logFile, `console.${m.type()}: ${m.text()}\n`));
  page.on('pageerror', (e) => fs.appendFileSync(logFile, `pageerror: ${e.message}\n`));
  const q = new URLSearchParams({ url: gateway, topics: topics.join(','), ...(token ? { token } : {}) });
  const pageUrl = `http://127.0.0.1:${ctx.server.address().port}/index.html?${q}`;
  fs.appendFileSync(logFile, `open ${token ? pageUrl.replace(token, '<token>') : pageUrl}\n`);
  await page.goto(pageUrl);
  const status = () => page.textContent('#status').catch(() => '?');
  if (want === 'open') {
    try {
      await page.waitForSelector('#status.open', { timeout: 30_000 });
    } catch {
      throw new Error(`the page did not connect within 30 s: ${await status()}`);
    }
  } else {
    // A refused EventSource is CLOSED: the page says "Refused ..." and stays so.
    const closed = await page.waitForFunction(() => /^Refused/.test(document.getElementById('status').textContent), null, { timeout: 15_000 }).then(() => true, () => false);
    if (!closed) throw new Error(`the page was not refused within 15 s: ${await status()}`);
  }
  fs.appendFileSync(logFile, `${await status()}\n`);
  return { page, logFile };
}

async function stopBrowser(ctx) {
  if (!ctx) return;
  await ctx.browser?.close().catch(() => {});
  ctx.server?.close();
}

// ---------------------------------------------------------------------------------------------
// Results

function writeResults(r) {
  const cell = (c) => (!c ? '—' : c.status === 'passed' ? '✅' : c.status === 'failed' ? `❌ ${esc(c.reason ?? '')}` : `⏭ ${esc(c.reason ?? '')}`);
  const md = [
    `# Examples matrix — ${r.target}`,
    '',
    `Subscribers ${r.subscribe_urls.length ? r.subscribe_urls.map((u) => `\`${u}\``).join(', ') : '(none)'}; ` +
      `publishers \`${r.publish_url || '(none)'}\`. Each publisher sent ${r.events_per_publisher} events to 2 public topics ` +
      `(one POST per event); each cell checks that the subscriber printed all ${r.events_per_publisher * 2} of them ` +
      'exactly once, in order, with event type and data byte-exact.',
    '',
    `**${r.totals.passed} passed, ${r.totals.failed} failed${r.totals.skipped ? `, ${r.totals.skipped} skipped` : ''}**`,
    '',
  ];
  if (r.setup_error) md.push(`**Setup failed:** ${esc(r.setup_error)}`, '');
  for (const w of r.warnings) md.push(`Warning: ${esc(w)}`, '');
  for (const n of r.not_tested) md.push(`NOT TESTED: ${esc(n)}`, '');
  md.push(`| subscriber ↓ / publisher → | ${r.publishers.join(' | ')} |`, `|---|${r.publishers.map(() => '---').join('|')}|`);
  const multiNode = r.subscribe_urls.length > 1;
  for (const sub of r.subscribers) {
    const where = multiNode && r.placement[sub] ? ` (${r.placement[sub].replace(/^https?:\/\//, '')})` : '';
    md.push(`| **${sub}**${where} | ${r.publishers.map((pub) => cell(r.matrix.find((c) => c.subscriber === sub && c.publisher === pub))).join(' | ')} |`);
  }
  const pv = r.private;
  if (pv) {
    md.push('', '## Private topic', '',
      `\`PRIVATE_TOPICS=${pv.settings.PRIVATE_TOPICS}\`; topic \`${pv.topic}\`, published to in the same POSTs. Each subscriber ` +
        'opened it with a subscriber token minted by another language\'s publisher (`publisher mint-token`), and must print ' +
        `every publisher's ${r.events_per_publisher} events on it exactly once, in order, byte-exact. Without a token, each ` +
        'must be refused (401 `token_required`).', '',
      `| subscriber ↓ / publisher → | ${r.publishers.join(' | ')} | token: minted by, given as | without a token |`,
      `|---|${r.publishers.map(() => '---').join('|')}|---|---|`);
    for (const sub of pv.subscribers) {
      const t = pv.tokens[sub];
      const where = r.subscribe_urls.length > 1 && pv.placement[sub] ? ` (${pv.placement[sub].replace(/^https?:\/\//, '')})` : '';
      const refused = pv.refused[sub];
      md.push(`| **${sub}**${where} | ${r.publishers.map((pub) => cell(pv.matrix.find((c) => c.subscriber === sub && c.publisher === pub))).join(' | ')} | ` +
        `${t ? `${t.minted_by} (${t.alg}), \`${t.given_as}\`` : '—'} | ${cell(refused)} |`);
    }
  }
  md.push('', '| language | build | subscriber reconnects¹ | expired token² | mint-token³ | subscriber | private subscriber | publisher |', '|---|---|---|---|---|---|---|---|');
  for (const [lang, l] of Object.entries(r.languages)) {
    md.push(`| ${lang} | ${esc(l.build)} | ${esc(l.reconnect ?? '—')} | ${esc(l.token_expiry ?? '—')} | ${esc(l.mint ?? '—')} | ${esc(l.subscriber ?? '—')} | ${esc(l.private_subscriber ?? '—')} | ${esc(l.publisher ?? '—')} |`);
  }
  md.push('', '¹ Against a scripted SSE server (tests/examples/reconnect.mjs): backoff after a closed stream, ' +
    '`retry-after` on a 503, `Last-Event-ID` on every reconnect, at once on `event: reconnect`.');
  md.push('', '² Against a scripted server that checks tokens (tests/examples/reconnect.mjs): `authorization: Bearer` with the ' +
    'token given; on `event: reconnect` with reason `token_expired`, with `--token-command` (the language\'s own mint-token) ' +
    'a reconnect at once with the fresh token and `Last-Event-ID`, without one exit 1 saying the token expired.');
  md.push('', '³ `publisher mint-token`, its token verified here: HS256 signature with the test secret, `sub`, `topics`, ' +
    '`iat` now, `exp` = `iat` + `--ttl` (TypeScript also EdDSA, with `--kid`).');
  md.push('', 'Logs (not committed): `test-results/logs/examples-' + r.target + '/`.', '');
  const { jsonFile, mdFile } = writeResult(`examples-${r.target}`, r, md);
  return [jsonFile, mdFile].map((f) => path.relative(REPO, f));
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const args = parseArgs(process.argv.slice(2), {
    runner: 'tests/examples/run.mjs',
    values: ['target', 'base-url', 'node-urls', 'api-key', 'count', 'langs', 'port'],
    flags: ['no-browser', 'chaos', 'private', 'no-private', 'print-private-env'],
  });
  if (args['print-private-env']) {
    for (const [k, v] of Object.entries(PRIVATE_ENV)) console.log(`${k}=${v}`);
    return;
  }
  if (args.chaos) return chaosMain(args);
  const target = args.target ?? process.env.EXAMPLES_TARGET ?? 'wrangler-dev';
  if (!/^[a-z0-9-]+$/.test(target)) throw new Error(`bad --target ${target}`);
  const apiKey = args['api-key'] ?? process.env.EXAMPLES_API_KEY ?? 'dev-key-change-me';
  const count = Number(args.count ?? 20);
  if (!Number.isInteger(count) || count < 1) throw new Error('--count must be a positive integer');
  const langs = args.langs ? args.langs.split(',').map((s) => s.trim()) : LANGS;
  for (const l of langs) if (!LANGS.includes(l)) throw new Error(`unknown language ${l} (${LANGS.join(', ')})`);
  const withBrowser = !args['no-browser'];
  const baseUrl = (args['base-url'] ?? process.env.EXAMPLES_BASE_URL ?? '').replace(/\/+$/, '');
  const nodeUrls = (args['node-urls'] ?? process.env.EXAMPLES_NODE_URLS ?? '').split(',').map((s) => s.trim().replace(/\/+$/, '')).filter(Boolean);
  if (nodeUrls.length && nodeUrls.length !== 3) throw new Error('--node-urls takes three URLs');
  if (!baseUrl && !nodeUrls.length && !['wrangler-dev', 'native-cluster'].includes(target)) {
    throw new Error(`--target ${target} needs --base-url (only wrangler dev and the native cluster are started here)`);
  }
  // Private-topic cells: on a gateway we start (it gets PRIVATE_ENV), or with --private.
  const withPrivate = !args['no-private'] && (args.private || (!baseUrl && !nodeUrls.length));

  const logDir = path.join(RESULTS, 'logs', `examples-${target}`);
  fs.rmSync(logDir, { recursive: true, force: true });
  fs.mkdirSync(logDir, { recursive: true });

  const runId = crypto.randomBytes(4).toString('hex');
  const topics = [`ex-${runId}-a`, `ex-${runId}-b`];
  const privTopic = `ex-${runId}-private`; // matches PRIVATE_PATTERN
  const result = {
    suite: 'examples',
    target,
    subscribe_urls: [],
    publish_url: '',
    placement: {},
    events_per_publisher: count,
    subscribers: [...langs, ...(withBrowser ? [BROWSER] : [])],
    publishers: [...langs],
    totals: { passed: 0, failed: 0, skipped: 0 },
    warnings: [],
    not_tested: [],
    languages: Object.fromEntries(langs.map((l) => [l, { build: 'not built' }])),
    matrix: [],
    private: withPrivate ? { topic: privTopic, settings: { PRIVATE_TOPICS: PRIVATE_PATTERN }, subscribers: [], tokens: {}, placement: {}, matrix: [], refused: {} } : null,
  };
  if (target === 'wrangler-dev') result.not_tested.push('a real Cloudflare deployment (run with --target deployed --base-url https://… to include one)');
  if (!withPrivate) {
    result.not_tested.push(args['no-private'] ? 'private topics (--no-private)' : 'private topics on this gateway (start it with the settings of --print-private-env and pass --private)');
  }

  let wrangler = null;
  let cluster = null;
  const subs = new Map(); // lang -> process
  const privSubs = new Map(); // lang -> process on the private topic
  let browser = null; // { browser, server } (launchBrowser)
  const pages = {}; // 'public' | 'private' -> { page, logFile }
  const pubOutcome = {}; // lang -> { ok, reason }
  const built = {}; // lang -> true | error message
  const subFailure = {}; // subscriber -> reason that fails its whole row
  const privFailure = {}; // subscriber -> reason that fails its whole private row
  const reconnect = {}; // lang -> problems found by the reconnect check
  const tokenRefresh = {}; // lang -> problems found by the expired-token check
  const minted = {}; // lang -> { token, claims } | { error } (the mint check)

  const cleanup = async () => {
    for (const p of [...subs.values(), ...privSubs.values()]) await stopProcess(p);
    await stopBrowser(browser);
    await stopAll(); // wrangler dev (tests/lib/gateways.mjs), also one still starting
    await stopCluster(cluster);
  };
  let stopping = false;
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, async () => {
      if (stopping) return;
      stopping = true;
      console.error(`\n${sig}: stopping`);
      await cleanup();
      process.exit(130);
    });
  }

  try {
    // 1. Build every example (in parallel) while the gateway starts.
    const buildLog = path.join(logDir, 'build.log');
    fs.writeFileSync(buildLog, '');
    const builds = Promise.all(langs.map(async (lang) => {
      const t0 = Date.now();
      try {
        await EXAMPLES[lang].build(buildLog);
        built[lang] = true;
        result.languages[lang].build = 'ok';
        console.log(`built ${lang} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      } catch (e) {
        built[lang] = e.message;
        result.languages[lang].build = `failed: ${e.message}`;
        console.log(`FAILED to build ${lang}: ${e.message}`);
      }
    }));

    // 2. The gateway.
    let subUrls;
    let pubUrl;
    try {
      if (nodeUrls.length) {
        subUrls = [nodeUrls[0], nodeUrls[2]];
        pubUrl = nodeUrls[1];
      } else if (baseUrl) {
        subUrls = [baseUrl];
        pubUrl = baseUrl;
      } else if (target === 'native-cluster') {
        try {
          cluster = await startCluster({ apiKey, logDir, env: PRIVATE_ENV });
        } catch (e) {
          cluster = e.cluster ?? null; // stop whatever half started
          throw e;
        }
        subUrls = ['http://127.0.0.1:8081', 'http://127.0.0.1:8083'];
        pubUrl = 'http://127.0.0.1:8082';
      } else {
        try {
          wrangler = await startWrangler({ port: Number(args.port ?? 8796), apiKey, logDir, vars: PRIVATE_ENV });
        } catch (e) {
          wrangler = e.handle ?? null;
          throw e;
        }
        subUrls = [wrangler.base];
        pubUrl = wrangler.base;
      }
      for (const u of new Set([...subUrls, pubUrl])) {
        if (!(await healthy(u))) throw new Error(`${u}/healthz does not answer 200`);
      }
    } finally {
      await builds;
    }
    const ready = langs.filter((l) => built[l] === true);
    const subEnv = { ...process.env, PYTHONUNBUFFERED: '1', PYTHONIOENCODING: 'utf-8' };
    delete subEnv.SSE_API_KEY; // subscribers are anonymous, or hold a subscriber token
    for (const k of ['SSE_TOKEN', 'SSE_TOKEN_COMMAND', 'SUBSCRIBER_TOKEN_SECRET', 'SUBSCRIBER_TOKEN_PRIVATE_KEY']) delete subEnv[k];
    const placement = {};
    [...langs, BROWSER].forEach((s, k) => { placement[s] = subUrls[k % subUrls.length]; });
    // Private subscribers sit on the other node (on the cluster) than their public twin.
    const privPlacement = {};
    [...langs, BROWSER].forEach((s, k) => { privPlacement[s] = subUrls[(k + 1) % subUrls.length]; });
    if (withBrowser) {
      try {
        browser = await launchBrowser();
      } catch (e) {
        subFailure[BROWSER] = `browser: ${e.message}`;
        privFailure[BROWSER] = subFailure[BROWSER];
      }
    }

    // Each subscriber against scripted servers (not the gateway): reconnects, and an expired
    // token; each publisher's mint-token, checked here; and, on the gateway, a subscriber of each
    // language without a token on the private topic, which must be refused. All at once.
    const refusal = async (lang) => {
      if (!withPrivate) return;
      let problem = '';
      if (lang === BROWSER) {
        if (!browser) problem = subFailure[BROWSER];
        else {
          try {
            await openPage(browser, { name: 'refused', gateway: privPlacement[BROWSER], topics: [privTopic], logDir, want: 'refused' });
          } catch (e) {
            problem = e.message;
          }
        }
      } else {
        const [cmd, argv] = EXAMPLES[lang].subscriber(['--url', privPlacement[lang], '--topics', privTopic, '--timeout', '15']);
        const p = startProcess(`${lang}-refused`, cmd, argv, { env: subEnv, logDir });
        await waitFor(p, () => p.exit !== null, 20_000);
        await stopProcess(p);
        if (p.exit?.code !== 1) problem = `exit ${p.exit?.code ?? 'none'}, want 1: ${lastLines(p.stderr, 1)}`;
        else if (!/\b401\b/.test(p.stderr) || !/token_required/.test(p.stderr)) problem = `refused, but not with 401 token_required: ${lastLines(p.stderr, 1)}`;
      }
      result.private.refused[lang] = problem ? { status: 'failed', reason: problem } : { status: 'passed' };
      console.log(`${problem ? 'FAIL' : 'ok  '} ${lang} subscriber without a token is refused${problem ? `: ${problem}` : ''}`);
    };
    await Promise.all([
      ...ready.map(async (lang) => {
        const server = await startScriptedServer();
        const [cmd, argv] = EXAMPLES[lang].subscriber(['--url', server.url, '--topics', 'rc-topic,rc-other', '--max', '3', '--timeout', '30']);
        const p = startProcess(`${lang}-reconnect`, cmd, argv, { env: subEnv, logDir });
        await waitFor(p, () => p.exit !== null, 35_000);
        await stopProcess(p);
        server.close();
        const problems = judgeReconnect({ requests: server.requests, stdout: p.stdout, exitCode: p.exit?.code });
        reconnect[lang] = problems;
        result.languages[lang].reconnect = problems.length ? `failed: ${problems.join('; ')}` : 'ok';
        console.log(`${problems.length ? 'FAIL' : 'ok  '} ${lang} subscriber reconnects${problems.length ? `: ${problems.join('; ')}` : ''}`);
      }),
      ...ready.map(async (lang) => {
        // With this language's own mint-token as the token command, then without one.
        const problems = [];
        for (const withCommand of [true, false]) {
          const server = await startTokenServer(TOKEN_SECRET);
          const now = Math.floor(Date.now() / 1000);
          const first = signHs256({ sub: 'first', topics: ['rc-private'], iat: now, exp: now + 600 }, TOKEN_SECRET);
          const a = ['--url', server.url, '--topics', 'rc-private', '--max', '2', '--timeout', '20', '--token', first];
          if (withCommand) a.push('--token-command', commandLine(lang, ['mint-token', '--sub', 'refreshed', '--topics', 'rc-private', '--ttl', '600']));
          const [cmd, argv] = EXAMPLES[lang].subscriber(a);
          const p = startProcess(`${lang}-token-${withCommand ? 'command' : 'none'}`, cmd, argv, { env: { ...subEnv, ...MINT_ENV }, logDir });
          await waitFor(p, () => p.exit !== null, 25_000);
          await stopProcess(p);
          server.close();
          const found = judgeTokenRefresh({ requests: server.requests, stdout: p.stdout, stderr: p.stderr, exitCode: p.exit?.code, withCommand });
          problems.push(...found.map((x) => `${withCommand ? 'with' : 'without'} --token-command: ${x}`));
        }
        tokenRefresh[lang] = problems;
        result.languages[lang].token_expiry = problems.length ? `failed: ${problems.join('; ')}` : 'ok';
        console.log(`${problems.length ? 'FAIL' : 'ok  '} ${lang} subscriber on an expired token${problems.length ? `: ${problems.join('; ')}` : ''}`);
      }),
      ...ready.map(async (lang) => {
        const log = path.join(logDir, `${lang}-mint.log`);
        minted[lang] = await mint(lang, { sub: `ex-mint-check-${lang}`, topics: [privTopic, 'user:42', 'team:7:*'], ttl: 3600, log });
        if (lang === 'typescript' && !minted[lang].error) {
          const ed = await mint(lang, { sub: 'ex-mint-check-eddsa', topics: [privTopic], ttl: 3600, alg: 'EdDSA', log });
          if (ed.error) minted[lang] = { error: `EdDSA: ${ed.error}` };
        }
        const e = minted[lang].error;
        result.languages[lang].mint = e ? `failed: ${e}` : `ok (${lang === 'typescript' ? 'HS256, EdDSA' : 'HS256'})`;
        console.log(`${e ? 'FAIL' : 'ok  '} ${lang} publisher mint-token${e ? `: ${e}` : ''}`);
      }),
      ...(withPrivate ? [...ready, ...(withBrowser ? [BROWSER] : [])].map(refusal) : []),
    ]);

    result.subscribe_urls = [...new Set(subUrls)];
    result.publish_url = pubUrl;

    // 3. Subscribers: every built language, plus the browser; nodes alternate on a cluster.
    const expected = ready.length * count * topics.length; // events each subscriber should print
    for (const s of result.subscribers) result.placement[s] = placement[s];
    for (const lang of ready) {
      const [cmd, argv] = EXAMPLES[lang].subscriber(['--url', placement[lang], '--topics', topics.join(','), '--max', String(expected), '--timeout', '300']);
      subs.set(lang, startProcess(`${lang}-subscriber`, cmd, argv, { env: subEnv, logDir }));
    }
    // The same on the private topic, each with a token minted by another language's publisher:
    // as --token, in SSE_TOKEN, or through SSE_TOKEN_COMMAND (that publisher's mint-token, run
    // by the subscriber), in turn; the browser's in ?token= (EdDSA, by the TypeScript publisher).
    const privExpected = ready.length * count;
    if (withPrivate && ready.length) {
      const privSubscribers = [...ready, ...(withBrowser ? [BROWSER] : [])];
      result.private.subscribers = privSubscribers;
      await Promise.all(privSubscribers.map(async (sub, k) => {
        const eddsa = sub === BROWSER && ready.includes('typescript');
        const minter = eddsa ? 'typescript' : ready[(k + 1) % ready.length];
        const how = sub === BROWSER ? '?token=' : ['--token', 'SSE_TOKEN', 'SSE_TOKEN_COMMAND'][k % 3];
        const mintArgs = { sub: `ex-${sub}`, topics: [privTopic], ttl: 600, ...(eddsa ? { alg: 'EdDSA' } : {}) };
        result.private.tokens[sub] = { minted_by: minter, alg: eddsa ? 'EdDSA' : 'HS256', given_as: how };
        result.private.placement[sub] = privPlacement[sub];
        if (sub === BROWSER) {
          if (privFailure[BROWSER]) return;
          const m = await mint(minter, { ...mintArgs, log: path.join(logDir, 'browser-private-mint.log') });
          if (m.error) { privFailure[sub] = `token not minted: ${m.error}`; return; }
          try {
            pages.private = await openPage(browser, { name: 'private-subscriber', gateway: privPlacement[sub], topics: [privTopic], token: m.token, logDir });
          } catch (e) {
            privFailure[sub] = `browser: ${e.message}`;
          }
          return;
        }
        const a = ['--url', privPlacement[sub], '--topics', privTopic, '--max', String(privExpected), '--timeout', '300'];
        const env = { ...subEnv };
        if (how === 'SSE_TOKEN_COMMAND') {
          env.SSE_TOKEN_COMMAND = commandLine(minter, ['mint-token', '--sub', mintArgs.sub, '--topics', privTopic, '--ttl', '600']);
          Object.assign(env, MINT_ENV);
        } else {
          const m = await mint(minter, { ...mintArgs, log: path.join(logDir, `${sub}-private-mint.log`) });
          if (m.error) { privFailure[sub] = `token not minted: ${m.error}`; return; }
          if (how === '--token') a.push('--token', m.token);
          else env.SSE_TOKEN = m.token;
        }
        const [cmd, argv] = EXAMPLES[sub].subscriber(a);
        privSubs.set(sub, startProcess(`${sub}-private-subscriber`, cmd, argv, { env, logDir }));
      }));
    }
    for (const [lang, p] of subs) {
      const ok = await waitFor(p, () => /^connected\b/m.test(p.stderr), 30_000);
      if (!ok) {
        subFailure[lang] = `subscriber did not connect within 30 s${p.exit ? ` (exit ${p.exit.code})` : ''}: ${lastLines(p.stderr, 2)}`;
        result.languages[lang].subscriber = subFailure[lang];
      }
    }
    for (const [lang, p] of privSubs) {
      const ok = await waitFor(p, () => /^connected\b/m.test(p.stderr), 30_000);
      if (!ok) privFailure[lang] = `private subscriber did not connect within 30 s${p.exit ? ` (exit ${p.exit.code})` : ''}: ${lastLines(p.stderr, 2)}`;
    }
    if (withBrowser && browser) {
      try {
        pages.public = await openPage(browser, { name: 'subscriber', gateway: placement[BROWSER], topics, logDir });
      } catch (e) {
        subFailure[BROWSER] = `browser: ${e.message}`;
      }
    }
    const connected = [...subs.keys()].filter((l) => !subFailure[l]).length + (withBrowser && !subFailure[BROWSER] ? 1 : 0);
    console.log(`${connected} subscriber(s) connected to ${topics.join(',')}; expecting ${expected} events each`);
    const privConnected = [...privSubs.keys()].filter((l) => !privFailure[l]).length + (pages.private && !privFailure[BROWSER] ? 1 : 0);
    if (withPrivate) console.log(`${privConnected} subscriber(s) connected to ${privTopic} with a token; expecting ${privExpected} events each`);

    // The gateway may register a connection a moment after it answered: wait until the publish
    // node sees them all (admin API), so no event is published before its subscribers exist.
    const want = new Map(topics.map((t) => [t, connected]));
    if (withPrivate) want.set(privTopic, privConnected);
    for (const [topic, n] of want) {
      const w = await waitForConnections(pubUrl, apiKey, topic, n, 20_000);
      if (!w.ok) result.warnings.push(`the admin API on the publish node saw ${w.seen} of ${n} connections on ${topic === privTopic ? 'the private topic' : 'a run topic'} after 20 s; published anyway`);
    }

    // 4. Publishers, one after another (to the private topic too, in the same POSTs).
    const pubTopics = [...want.keys()];
    const pubEnv = { ...process.env, SSE_API_KEY: apiKey };
    for (const lang of ready) {
      const [cmd, argv] = EXAMPLES[lang].publisher(['--url', pubUrl, '--topics', pubTopics.join(','), '--count', String(count), '--prefix', lang]);
      const log = path.join(logDir, `${lang}-publisher.log`);
      fs.writeFileSync(log, `$ ${cmd} ${argv.join(' ')}\n`);
      const r = await run(cmd, argv, { env: pubEnv, log, timeoutMs: 120_000 });
      let reason = r.code === 0 ? '' : `exit ${r.code}: ${lastLines(r.out, 2)}`;
      if (!reason) {
        const lines = r.out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
        const summary = [];
        for (const [ti, topic] of pubTopics.entries()) {
          const label = topic === privTopic ? 'private topic' : `topic ${ti + 1}`;
          const o = lines.find((x) => x.topic === topic);
          if (!o) { reason = `no outcome line for ${label}`; break; }
          summary.push(`${label}: published ${o.published}, delivered ${o.delivered}, dropped ${o.dropped}`);
          if (o.published !== count || o.dropped !== 0 || o.delivered !== count * want.get(topic)) {
            reason = `${label}: published ${o.published}/${count}, delivered ${o.delivered} (want ${count * want.get(topic)}), dropped ${o.dropped}`;
          }
        }
        result.languages[lang].publisher = reason || summary.join('; ');
      } else {
        result.languages[lang].publisher = `failed: ${reason}`;
      }
      pubOutcome[lang] = { ok: !reason, reason };
      console.log(`${reason ? 'FAIL' : 'ok  '} ${lang} publisher${reason ? `: ${reason}` : ''}`);
    }

    // 5. Wait for the subscribers to print everything (they exit at --max), then stop them.
    const deadline = Date.now() + 30_000;
    for (const [lang, p] of [...subs, ...privSubs]) {
      if (subFailure[lang] && subs.get(lang) === p) continue;
      if (privFailure[lang] && privSubs.get(lang) === p) continue;
      await waitFor(p, () => p.exit !== null, Math.max(0, deadline - Date.now()));
    }
    const pageEvents = async (handle, n) => {
      await handle.page.waitForFunction((k) => window.received.length >= k, n, { timeout: Math.max(1000, deadline - Date.now()) }).catch(() => {});
      const events = await handle.page.evaluate(() => window.received);
      fs.appendFileSync(handle.logFile, events.map((e) => JSON.stringify(e)).join('\n') + '\n');
      return events;
    };
    const browserEvents = pages.public && !subFailure[BROWSER] ? await pageEvents(pages.public, expected) : [];
    const browserPrivEvents = pages.private && !privFailure[BROWSER] ? await pageEvents(pages.private, privExpected) : [];
    for (const p of [...subs.values(), ...privSubs.values()]) await stopProcess(p);

    // 6. Check every subscriber against every publisher.
    const published = ready.filter((l) => pubOutcome[l]);
    /** The cells of one subscriber's row: its output (or a reason failing the row) against each publisher. */
    const row = (sub, { p, events, failure }, rowTopics) => {
      let rowReason = failure ?? (sub !== BROWSER && built[sub] !== true ? `not built: ${built[sub]}` : null);
      if (!rowReason && p) {
        const parsed = parseLines(p.stdout);
        events = parsed.events;
        if (parsed.bad.length) rowReason = `${parsed.bad.length} line(s) not of the form {topic,id,event,data}: ${parsed.bad[0]}`;
      }
      const { cells, extras } = rowReason ? { cells: {}, extras: [] } : checkSubscriber(events, published, rowTopics, count);
      if (!rowReason && extras.length) rowReason = `${extras.length} unexpected event(s), first ${JSON.stringify(extras[0]).slice(0, 120)}`;
      return result.publishers.map((pub) => {
        const c = { subscriber: sub, publisher: pub };
        if (built[pub] !== true) Object.assign(c, { status: 'failed', reason: 'publisher not built' });
        else if (rowReason) Object.assign(c, { status: 'failed', reason: rowReason });
        else if (!pubOutcome[pub]?.ok && cells[pub]?.length) Object.assign(c, { status: 'failed', reason: `publisher failed; ${cells[pub].join('; ')}` });
        else if (cells[pub]?.length) Object.assign(c, { status: 'failed', reason: cells[pub].join('; ') });
        else Object.assign(c, { status: 'passed' });
        return c;
      });
    };
    const exitSummary = (p) => {
      const n = parseLines(p.stdout).events.length;
      return p.exit?.code === 0 ? `exited 0 after ${n} events` : `${n} events; exit ${p.exit?.code ?? 'none (stopped)'}: ${lastLines(p.stderr, 1)}`;
    };
    for (const sub of result.subscribers) {
      const p = sub === BROWSER ? null : subs.get(sub);
      if (p && !subFailure[sub]) result.languages[sub].subscriber = exitSummary(p);
      result.matrix.push(...row(sub, { p, events: browserEvents, failure: subFailure[sub] }, topics));
    }
    if (withPrivate) {
      for (const sub of result.private.subscribers) {
        const p = sub === BROWSER ? null : privSubs.get(sub);
        const failure = privFailure[sub] ?? (sub !== BROWSER && !p ? 'not started' : undefined);
        if (p && !privFailure[sub]) result.languages[sub].private_subscriber = exitSummary(p);
        result.private.matrix.push(...row(sub, { p, events: browserPrivEvents, failure }, [privTopic]));
      }
    }
  } catch (e) {
    result.setup_error = e.message;
    console.error(`examples: setup failed: ${e.message}`);
    for (const sub of result.subscribers) {
      for (const pub of result.publishers) {
        if (!result.matrix.some((c) => c.subscriber === sub && c.publisher === pub)) {
          result.matrix.push({ subscriber: sub, publisher: pub, status: 'failed', reason: 'not run: setup failed' });
        }
      }
    }
  } finally {
    await cleanup();
  }

  // Publisher checks count too (exit status, per-topic outcome), and so do each language's
  // reconnects, expired-token handling and mint-token, and each refusal without a token.
  const checks = [
    ...result.matrix.map((c) => c.status),
    ...result.publishers.map((p) => (pubOutcome[p]?.ok ? 'passed' : 'failed')),
    ...langs.map((l) => (reconnect[l] && !reconnect[l].length ? 'passed' : 'failed')),
    ...langs.map((l) => (tokenRefresh[l] && !tokenRefresh[l].length ? 'passed' : 'failed')),
    ...langs.map((l) => (minted[l] && !minted[l].error ? 'passed' : 'failed')),
    ...(withPrivate ? result.private.matrix.map((c) => c.status) : []),
    ...(withPrivate ? result.subscribers.map((s) => result.private.refused[s]?.status ?? 'failed') : []),
  ];
  result.totals.passed = checks.filter((s) => s === 'passed').length;
  result.totals.failed = checks.filter((s) => s === 'failed').length;
  result.totals.skipped = checks.filter((s) => s === 'skipped').length;
  const order = (a, b) => result.subscribers.indexOf(a.subscriber) - result.subscribers.indexOf(b.subscriber) || result.publishers.indexOf(a.publisher) - result.publishers.indexOf(b.publisher);
  result.matrix.sort(order);
  result.private?.matrix.sort(order);

  for (const c of result.matrix) console.log(`${c.status === 'passed' ? 'ok  ' : 'FAIL'} ${c.subscriber} <- ${c.publisher}${c.reason ? `  — ${c.reason}` : ''}`);
  for (const c of result.private?.matrix ?? []) console.log(`${c.status === 'passed' ? 'ok  ' : 'FAIL'} ${c.subscriber} <- ${c.publisher} (private topic)${c.reason ? `  — ${c.reason}` : ''}`);
  const files = writeResults(result);
  console.log(`results: ${files.join(', ')}`);
  for (const n of result.not_tested) console.log(`NOT TESTED: ${n}`);
  for (const w of result.warnings) console.log(`WARNING: ${w}`);
  if (result.setup_error) console.log(`SETUP FAILED: ${result.setup_error}`);
  console.log(`${result.totals.passed} passed, ${result.totals.failed} failed`);
  process.exit(result.totals.failed || result.setup_error ? 1 : 0);
}

// ---------------------------------------------------------------------------------------------
// --chaos: at-least-once under cut connections. The gateway retains `chaos-*` topics (RETENTION);
// each subscriber talks to it through a TCP proxy of ours whose connections we destroy at random
// (every 0.5–1 s per subscriber) while a burst is published; every subscriber must end with
// every event exactly once, in order, after de-duplication by id. On the cluster each proxy
// connection goes to the next subscribe node in turn (8081, 8083, ...); publishing is on 8082.

const CHAOS_RETENTION = 'chaos-*=1000/300s';

/** A TCP proxy on 127.0.0.1:0; each accepted connection goes to the next of `upstreams`. */
function startProxy(upstreams) {
  const proxy = { conns: new Set(), accepted: 0, cuts: 0, upstreamsUsed: [] };
  let next = 0;
  proxy.server = net.createServer((client) => {
    const u = new URL(upstreams[next++ % upstreams.length]);
    proxy.accepted++;
    proxy.upstreamsUsed.push(u.host);
    const upstream = net.connect(Number(u.port), u.hostname);
    const pair = { client, upstream };
    proxy.conns.add(pair);
    const close = () => { proxy.conns.delete(pair); client.destroy(); upstream.destroy(); };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  proxy.cut = () => {
    let n = 0;
    for (const { client, upstream } of proxy.conns) {
      if (typeof client.resetAndDestroy === 'function') client.resetAndDestroy(); else client.destroy();
      upstream.destroy();
      n++;
    }
    proxy.conns.clear();
    proxy.cuts += n;
    return n;
  };
  proxy.close = () => { proxy.cut(); proxy.server.close(); };
  return new Promise((resolve) => proxy.server.listen(0, '127.0.0.1', () => {
    proxy.url = `http://127.0.0.1:${proxy.server.address().port}`;
    resolve(proxy);
  }));
}

/** De-duplicate one subscriber's events by id (first occurrence kept) and judge them. */
function judgeChaos(events, topic, count) {
  const problems = [];
  const seen = new Set();
  const unique = [];
  let duplicates = 0;
  for (const e of events) {
    if (e.topic !== topic) { problems.push(`event on unexpected topic ${e.topic}`); continue; }
    if (seen.has(e.id)) { duplicates++; continue; }
    seen.add(e.id);
    unique.push(e);
  }
  const want = Array.from({ length: count }, (_, k) => `chaos-${k + 1}`);
  const missing = want.filter((id) => !seen.has(id));
  const extra = unique.filter((e) => !want.includes(e.id));
  if (missing.length) problems.push(`${missing.length} of ${count} missing (first ${missing[0]})`);
  if (extra.length) problems.push(`${extra.length} unexpected id(s) (first ${extra[0].id})`);
  if (!missing.length && !extra.length) {
    const k = unique.findIndex((e, j) => e.id !== want[j]);
    if (k >= 0) problems.push(`out of order at position ${k + 1} (${unique[k].id} where ${want[k]} was due)`);
  }
  for (const e of unique) {
    const n = Number(String(e.id).slice(6));
    if (!Number.isInteger(n) || n < 1 || n > count) continue;
    const exp = sampleEvent(n);
    if (e.data !== exp.data || e.event !== exp.event) {
      problems.push(`${e.id}: ${JSON.stringify({ event: e.event, data: e.data })} != ${JSON.stringify(exp)}`);
      break;
    }
  }
  return { problems, received: events.length, unique: unique.length, duplicates };
}

async function chaosMain(args) {
  const t0 = Date.now();
  const base = args.target ?? process.env.EXAMPLES_TARGET ?? 'wrangler-dev';
  if (!['wrangler-dev', 'native-cluster'].includes(base)) throw new Error('--chaos runs against --target wrangler-dev or native-cluster (it sets RETENTION on the gateway it starts)');
  const target = `chaos-${base}`;
  const apiKey = args['api-key'] ?? process.env.EXAMPLES_API_KEY ?? 'dev-key-change-me';
  const count = Number(args.count ?? 300);
  if (!Number.isInteger(count) || count < 1 || count > 1000) throw new Error('--count must be 1..1000 with --chaos');
  const langs = args.langs ? args.langs.split(',').map((s) => s.trim()) : LANGS;
  for (const l of langs) if (!LANGS.includes(l)) throw new Error(`unknown language ${l} (${LANGS.join(', ')})`);
  const logDir = path.join(RESULTS, 'logs', `examples-${target}`);
  fs.rmSync(logDir, { recursive: true, force: true });
  fs.mkdirSync(logDir, { recursive: true });
  const topic = `chaos-${crypto.randomBytes(4).toString('hex')}`;
  const result = {
    suite: 'examples-chaos', target, topic, retention: CHAOS_RETENTION, events: count, rate_per_s: 100,
    cut_interval_ms: [500, 1000], subscribe_urls: [], publish_url: '',
    totals: { passed: 0, failed: 0 }, checks: [], subscribers: {}, warnings: [],
  };
  let wrangler = null;
  let cluster = null;
  const subs = new Map();
  const proxies = new Map();
  const timers = [];
  const cleanup = async () => {
    timers.forEach((t) => clearTimeout(t));
    for (const p of subs.values()) await stopProcess(p);
    for (const p of proxies.values()) p.close();
    await stopAll(); // wrangler dev (tests/lib/gateways.mjs), also one still starting
    await stopCluster(cluster);
  };
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, async () => { await cleanup(); process.exit(130); });

  try {
    const buildLog = path.join(logDir, 'build.log');
    fs.writeFileSync(buildLog, '');
    const built = {};
    const builds = Promise.all(langs.map(async (l) => {
      try { await EXAMPLES[l].build(buildLog); built[l] = true; } catch (e) { built[l] = e.message; }
    }));
    let subUrls;
    let pubUrl;
    try {
      if (base === 'native-cluster') {
        try { cluster = await startCluster({ apiKey, logDir, env: { RETENTION: CHAOS_RETENTION } }); } catch (e) { cluster = e.cluster ?? null; throw e; }
        subUrls = ['http://127.0.0.1:8081', 'http://127.0.0.1:8083'];
        pubUrl = 'http://127.0.0.1:8082';
      } else {
        try { wrangler = await startWrangler({ port: Number(args.port ?? 8796), apiKey, logDir, vars: { RETENTION: CHAOS_RETENTION } }); } catch (e) { wrangler = e.handle ?? null; throw e; }
        subUrls = [wrangler.base];
        pubUrl = wrangler.base;
      }
      for (const u of new Set([...subUrls, pubUrl])) if (!(await healthy(u))) throw new Error(`${u}/healthz does not answer 200`);
    } finally {
      await builds;
    }
    result.subscribe_urls = subUrls;
    result.publish_url = pubUrl;

    const subEnv = { ...process.env, PYTHONUNBUFFERED: '1', PYTHONIOENCODING: 'utf-8' };
    delete subEnv.SSE_API_KEY;
    for (const lang of langs) {
      if (built[lang] !== true) { result.subscribers[lang] = { problems: [`not built: ${built[lang]}`] }; continue; }
      const proxy = await startProxy(subUrls);
      proxies.set(lang, proxy);
      const [cmd, argv] = EXAMPLES[lang].subscriber(['--url', proxy.url, '--topics', topic, '--timeout', '300']);
      subs.set(lang, startProcess(`${lang}-subscriber`, cmd, argv, { env: subEnv, logDir }));
    }
    for (const [lang, p] of subs) {
      if (!(await waitFor(p, () => /^connected\b/m.test(p.stderr), 30_000))) {
        result.subscribers[lang] = { problems: [`did not connect within 30 s: ${lastLines(p.stderr, 2)}`] };
      }
    }
    const w = await waitForConnections(pubUrl, apiKey, topic, subs.size, 20_000);
    if (!w.ok) result.warnings.push(`the publish node saw ${w.seen} of ${subs.size} connections before the burst`);

    // Cut each subscriber's connections every 0.5–1 s, once it has an id to resume from
    // (a subscriber that printed nothing yet reconnects without Last-Event-ID, by design).
    let chaosOn = true;
    for (const [lang, proxy] of proxies) {
      const tick = () => {
        if (!chaosOn) return;
        if (/"id"/.test(subs.get(lang).stdout)) proxy.cut();
        timers.push(setTimeout(tick, 500 + Math.random() * 500));
      };
      timers.push(setTimeout(tick, 200 + Math.random() * 500));
    }

    // The burst: ~100 events/s, ids chaos-1..N, the shared sample bodies.
    const burstStart = Date.now();
    let publishErrors = 0;
    let firstPublishError = '';
    for (let i = 1; i <= count; i++) {
      const due = burstStart + (i - 1) * 10;
      if (due > Date.now()) await sleep(due - Date.now());
      const { event, data } = sampleEvent(i);
      try {
        const r = await fetch(`${pubUrl}/publish`, {
          method: 'POST',
          headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'text/plain; charset=utf-8', 'x-sse-topic': topic, 'x-sse-id': `chaos-${i}`, ...(event ? { 'x-sse-event': event } : {}) },
          body: data,
          signal: AbortSignal.timeout(10_000),
        });
        const text = await r.text();
        if (r.status !== 202) { publishErrors++; firstPublishError ||= `chaos-${i}: HTTP ${r.status} ${text.slice(0, 200)}`; }
      } catch (e) {
        publishErrors++;
        firstPublishError ||= `chaos-${i}: ${e.message}`;
      }
    }
    result.burst_seconds = Number(((Date.now() - burstStart) / 1000).toFixed(1));
    chaosOn = false;
    result.checks.push({ name: 'publish burst', status: publishErrors ? 'failed' : 'passed', ...(publishErrors ? { reason: `${publishErrors} failed; first ${firstPublishError}` } : {}) });
    console.log(`${publishErrors ? 'FAIL' : 'ok  '} published ${count} events to ${topic} in ${result.burst_seconds} s${publishErrors ? `: ${firstPublishError}` : ''}`);

    // Wait (at most 45 s) until every subscriber has every id, then stop them.
    const haveAll = (p) => { const ids = new Set(parseLines(p.stdout).events.map((e) => e.id)); for (let i = 1; i <= count; i++) if (!ids.has(`chaos-${i}`)) return false; return true; };
    const deadline = Date.now() + 45_000;
    while (Date.now() < deadline && [...subs.entries()].some(([l, p]) => !result.subscribers[l] && !p.exit && !haveAll(p))) await sleep(250);
    await sleep(500);
    for (const p of subs.values()) await stopProcess(p);

    for (const lang of langs) {
      const prior = result.subscribers[lang];
      const proxy = proxies.get(lang);
      let entry;
      if (prior) entry = prior;
      else {
        const p = subs.get(lang);
        const parsed = parseLines(p.stdout);
        const j = judgeChaos(parsed.events, topic, count);
        if (parsed.bad.length) j.problems.unshift(`${parsed.bad.length} unparsable line(s): ${parsed.bad[0]}`);
        entry = { ...j, exit: p.exit };
      }
      if (proxy) Object.assign(entry, { connections: proxy.accepted, cut: proxy.cuts, upstreams: [...new Set(proxy.upstreamsUsed)] });
      if (proxy && !prior && proxy.cuts === 0) entry.problems.push('no connection was cut during the burst (nothing tested)');
      result.subscribers[lang] = entry;
      const status = entry.problems.length ? 'failed' : 'passed';
      result.checks.push({ name: `${lang} subscriber`, status, ...(status === 'failed' ? { reason: entry.problems.join('; ') } : {}) });
      console.log(`${status === 'passed' ? 'ok  ' : 'FAIL'} ${lang}: ${entry.unique ?? 0}/${count} unique of ${entry.received ?? 0} received (${entry.duplicates ?? 0} duplicates), ${entry.connections ?? 0} connections, ${entry.cut ?? 0} cut${entry.problems.length ? ` — ${entry.problems.join('; ')}` : ''}`);
    }
  } catch (e) {
    result.setup_error = e.message;
    console.error(`examples --chaos: setup failed: ${e.message}`);
  } finally {
    await cleanup();
  }
  if (result.setup_error && !result.checks.length) result.checks.push({ name: 'setup', status: 'failed', reason: result.setup_error });
  result.totals.passed = result.checks.filter((c) => c.status === 'passed').length;
  result.totals.failed = result.checks.filter((c) => c.status === 'failed').length;
  result.seconds = Number(((Date.now() - t0) / 1000).toFixed(1));

  const md = [
    `# Examples under cut connections (at-least-once) — ${base}`, '',
    `Topic \`${result.topic}\` retained by \`RETENTION=${CHAOS_RETENTION}\`. ${count} events (ids chaos-1..${count}, ~100/s) published on ` +
      `\`${result.publish_url}\`; each subscriber connects through a TCP proxy of the runner that goes to ` +
      `${result.subscribe_urls.map((u) => `\`${u}\``).join(', ')}${result.subscribe_urls.length > 1 ? ' in turn, one node per connection' : ''}, ` +
      'and whose connections are destroyed every 0.5–1 s during the burst (once the subscriber has an id to resume from). ' +
      'Each subscriber must end with every event exactly once, in order, after de-duplication by id.', '',
    `**${result.totals.passed} passed, ${result.totals.failed} failed** (${result.seconds} s)`, '',
  ];
  if (result.setup_error) md.push(`**Setup failed:** ${esc(result.setup_error)}`, '');
  for (const w of result.warnings) md.push(`Warning: ${esc(w)}`, '');
  md.push('| subscriber | result | received | unique | duplicates | connections | cut | nodes |', '|---|---|---|---|---|---|---|---|');
  for (const [lang, s] of Object.entries(result.subscribers)) {
    md.push(`| ${lang} | ${s.problems.length ? `❌ ${esc(s.problems.join('; '))}` : '✅'} | ${s.received ?? '—'} | ${s.unique ?? '—'} | ${s.duplicates ?? '—'} | ${s.connections ?? '—'} | ${s.cut ?? '—'} | ${(s.upstreams ?? []).join(', ')} |`);
  }
  md.push('', `Logs (not committed): \`test-results/logs/examples-${target}/\`.`, '');
  writeResult(`examples-${target}`, result, md);
  console.log(`results: test-results/examples-${target}.json, .md`);
  if (result.setup_error) console.log(`SETUP FAILED: ${result.setup_error}`);
  console.log(`${result.totals.passed} passed, ${result.totals.failed} failed`);
  process.exit(result.totals.failed || result.setup_error ? 1 : 0);
}

main().catch((e) => {
  console.error(e.stack ?? String(e));
  console.log('0 passed, 1 failed');
  process.exit(1);
});
