#!/usr/bin/env node
// End-to-end runner.
//
//   node tests/e2e/run.mjs                         start `wrangler dev` on 127.0.0.1:8799 and test it
//   node tests/e2e/run.mjs --target native --base-url http://127.0.0.1:8080 --heartbeat-ms 1000
//   E2E_BASE_URL=https://x.workers.dev E2E_TARGET=deployed node tests/e2e/run.mjs
//
// Options (each also readable from the environment named in brackets):
//   --base-url URL        gateway to test [E2E_BASE_URL]; when absent, wrangler dev is started
//   --target LABEL        wrangler-dev | native | deployed [E2E_TARGET] (default wrangler-dev)
//   --heartbeat-ms N      HEARTBEAT_INTERVAL_MS of the target [E2E_HEARTBEAT_MS] (1000 when we start wrangler)
//   --api-key KEY         [E2E_API_KEY] (default dev-key-change-me)
//   --max-body-bytes N    [E2E_MAX_BODY_BYTES] (default 65536)
//   --port N              port for the wrangler dev we start (default 8799)
//   --files a,b           only these test files (names without .test.mjs)
//   --var KEY:VALUE       (repeatable) a setting of the target: passed to the wrangler dev we
//                         start (`--var`), and told to the tests as E2E_VARS (JSON) either way,
//                         e.g. --var MAX_CONNECTIONS_PER_NODE:20 for limits_conn_rate
//   --label NAME          results file suffix (default: the target)
//
// Writes test-results/e2e-<label>.json and .md; exits non-zero on any failure.
// Every response the tests get is checked against docs/openapi.yaml (tests/e2e/lib/openapi.mjs);
// which documented responses the run observed goes to test-results/openapi-<label>.json and .md,
// and openapi.json / .md merge every openapi-<label>.json present. A response with an
// undocumented status, or that does not match its documentation, fails the run.

import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import * as gateways from '../lib/gateways.mjs';
import { RESULTS, healthy, stopAll, stopGroup } from '../lib/gateways.mjs';
import { parseArgs, settings } from '../lib/args.mjs';
import { runTestFiles } from '../lib/node-test.mjs';
import { cell, totalsOf, writeResult } from '../lib/results.mjs';
import { coverage, coverageMarkdown, mergeCoverage, readObservations } from './lib/openapi.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');

// Fixed order: cheap checks first, the 1,200-connection test last.
const FILE_ORDER = [
  'openapi', 'routing', 'subscribe', 'publish', 'framing', 'envelope_ws', 'auth', 'validation', 'limits',
  'admin', 'lifecycle', 'replay', 'pagination',
];

/** Start wrangler dev (tests/lib/gateways.mjs); resolves once /healthz answers. */
function startWrangler({ port, apiKey, heartbeatMs, vars = {} }) {
  return gateways.startWrangler({
    port,
    // the suite's key, so the run does not depend on a local .dev.vars
    apiKey,
    vars: { HEARTBEAT_INTERVAL_MS: heartbeatMs, QUEUE_CAPACITY: 1024, ...vars },
    // wrangler's [build] command rebuilds unless the caller sets WORKER_BUILD_SKIP=1 (make e2e does)
    build: 'wrangler',
    logFile: path.join(RESULTS, 'logs', 'wrangler-dev.log'),
    limitMs: 180_000,
    pollMs: 1000,
    tailLines: 40,
    hint: 'stop it or pass --base-url to test it',
  });
}

/** SIGTERM the whole process group, then SIGKILL whatever is left. */
async function stopWrangler(handle) {
  if (await stopGroup(handle)) console.log('wrangler dev stopped');
}

function firstLines(s, n = 6) {
  return String(s ?? '').split('\n').map((l) => l.trimEnd()).filter(Boolean).slice(0, n).join(' | ').slice(0, 600);
}

/** Replace the random parts of test topics and ids so reasons diff cleanly between runs. */
function stable(text) {
  return String(text)
    .replace(/(e2e-[A-Za-z0-9_.:]+(?:-[A-Za-z0-9_.:]+)*?)-[0-9a-f]{16}/g, '$1-<rand>')
    .replace(/\b([A-Za-z0-9]+)-[0-9a-f]{12}\b/g, '$1-<rand>');
}

function failureReason(error) {
  return stable(rawFailureReason(error));
}

function rawFailureReason(error) {
  if (!error) return 'failed';
  const cause = error.cause ?? error;
  if (error.failureType === 'testTimeoutFailure') return firstLines(error.message);
  if (error.failureType === 'hookFailed') return `hook failed: ${firstLines(cause?.message ?? error.message)}`;
  return firstLines(cause?.message ?? error.message) || 'failed';
}

function writeResults({ target, label = target, vars = {}, baseUrl, heartbeatMs, results, durationS, notTested, setupError, warnings }) {
  const tests = [...results].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.file.localeCompare(b.file)));
  const totals = totalsOf(tests);
  totals.total = totals.passed + totals.failed + totals.skipped;
  const json = {
    suite: 'e2e',
    target,
    base_url: baseUrl,
    heartbeat_ms: heartbeatMs,
    ...(Object.keys(vars).length ? { vars } : {}),
    totals,
    duration_s_rounded: Math.round(durationS / 10) * 10,
    ...(setupError ? { setup_error: setupError } : {}),
    ...(warnings.length ? { warnings } : {}),
    not_tested: notTested,
    tests,
  };
  const esc = cell;
  const md = [
    `# End-to-end tests — ${label}`,
    '',
    `Target \`${baseUrl || '(none)'}\`, heartbeat ${heartbeatMs} ms` +
      `${Object.keys(vars).length ? `, ${Object.entries(vars).map(([k, v]) => `${k}=${v}`).join(', ')}` : ''}. ` +
      `**${totals.passed} passed, ${totals.failed} failed${totals.skipped ? `, ${totals.skipped} skipped` : ''}** ` +
      `(about ${json.duration_s_rounded} s).`,
    '',
  ];
  if (setupError) md.push(`Setup failed: ${esc(setupError)}`, '');
  for (const w of warnings) md.push(`Warning: ${esc(w)}`, '');
  for (const n of notTested) md.push(`NOT TESTED: ${n}`, '');
  md.push('| test | file | status | note |', '|---|---|---|---|');
  for (const t of tests) md.push(`| ${esc(t.name)} | ${esc(path.basename(t.file))} | ${t.status} | ${esc(t.reason ?? '')} |`);
  md.push('');
  return { totals, ...writeResult(`e2e-${label}`, json, md) };
}

/**
 * The OpenAPI coverage of this run (test-results/openapi-<label>.*) and of every run whose report
 * is present (test-results/openapi.*). Returns the synthetic test result for the run's mismatches.
 */
function writeOpenApi({ target, label, obsFile }) {
  const cov = coverage(readObservations(obsFile), { clean: stable });
  const report = { suite: 'openapi', target, label, spec: 'docs/openapi.yaml', ...cov };
  writeResult(`openapi-${label}`, report, coverageMarkdown(label, cov));
  const reports = fs.readdirSync(RESULTS)
    .filter((f) => /^openapi-[a-z0-9-]+\.json$/.test(f))
    .map((f) => { try { return JSON.parse(fs.readFileSync(path.join(RESULTS, f), 'utf8')); } catch { return null; } })
    .filter((r) => r && r.suite === 'openapi' && r.label && Array.isArray(r.responses));
  const merged = mergeCoverage(reports);
  writeResult('openapi', merged.json, merged.md);
  const t = cov.totals;
  console.log(`openapi: ${t.observed} of ${t.documented} documented responses observed, ${t.undocumented} undocumented, ${t.mismatched} mismatched (test-results/openapi-${label}.md)`);
  const bad = cov.mismatches;
  return {
    name: '(openapi) every response matches docs/openapi.yaml',
    file: 'tests/e2e/run.mjs',
    status: bad.length ? 'failed' : 'passed',
    ...(bad.length ? { reason: firstLines(bad.map((m) => `${m.undocumented ? 'undocumented' : 'mismatch'} ${m.key}: ${m.errors[0]}`).join('\n'), 4) } : {}),
  };
}

async function main() {
  const args = parseArgs(process.argv.slice(2), {
    runner: 'tests/e2e/run.mjs',
    values: ['base-url', 'target', 'heartbeat-ms', 'api-key', 'max-body-bytes', 'port', 'files', 'label'],
    repeatable: ['var'],
  });
  let baseUrl = (args['base-url'] ?? process.env.E2E_BASE_URL ?? '').replace(/\/+$/, '');
  const startOwn = !baseUrl;
  const target = args.target ?? process.env.E2E_TARGET ?? 'wrangler-dev';
  if (!/^[a-z0-9-]+$/.test(target)) throw new Error(`bad --target ${target}`);
  if (startOwn && target !== 'wrangler-dev') throw new Error(`--target ${target} needs --base-url (only wrangler dev is started automatically)`);
  const apiKey = args['api-key'] ?? process.env.E2E_API_KEY ?? 'dev-key-change-me';
  const heartbeatMs = Number(args['heartbeat-ms'] ?? (startOwn ? 1000 : process.env.E2E_HEARTBEAT_MS ?? 15000));
  const maxBody = args['max-body-bytes'] ?? process.env.E2E_MAX_BODY_BYTES;
  const port = Number(args.port ?? 8799);
  const vars = settings(args.var);
  const label = args.label ?? target;
  if (!/^[a-z0-9-]+$/.test(label)) throw new Error(`bad --label ${label}`);

  let files = FILE_ORDER;
  if (args.files) {
    const wanted = args.files.split(',').map((s) => s.trim().replace(/\.test\.mjs$/, ''));
    for (const w of wanted) if (!fs.existsSync(path.join(HERE, `${w}.test.mjs`))) throw new Error(`unknown test file ${w}`);
    files = [...FILE_ORDER.filter((f) => wanted.includes(f)), ...wanted.filter((w) => !FILE_ORDER.includes(w)).sort()];
  }
  const extra = fs.readdirSync(HERE).filter((f) => f.endsWith('.test.mjs') && !FILE_ORDER.includes(f.slice(0, -9)));
  if (extra.length && !args.files) files = [...files, ...extra.map((f) => f.slice(0, -9)).sort()];
  const filePaths = files.map((f) => path.join(HERE, `${f}.test.mjs`));

  const notTested = [];
  if (target !== 'deployed') {
    notTested.push('a real Cloudflare deployment (set E2E_BASE_URL and E2E_TARGET=deployed to run this suite against one)');
  }

  let wrangler = null;
  let stopping = false;
  const onSignal = async (sig) => {
    if (stopping) return;
    stopping = true;
    console.error(`\n${sig}: stopping`);
    await stopAll(); // also a wrangler dev still starting
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const obsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-openapi-'));
  const obsFile = path.join(obsDir, 'observations.jsonl');
  let results = [];
  let durationS = 0;
  let setupError = null;
  const warnings = [];
  try {
    if (startOwn) {
      try {
        wrangler = await startWrangler({ port, apiKey, heartbeatMs, vars });
      } catch (e) {
        wrangler = e.handle ?? null;
        throw e;
      }
      baseUrl = wrangler.base;
    } else if (!(await healthy(baseUrl))) {
      throw new Error(`${baseUrl}/healthz does not answer 200`);
    }
    process.env.E2E_BASE_URL = baseUrl;
    process.env.E2E_TARGET = target;
    process.env.E2E_HEARTBEAT_MS = String(heartbeatMs);
    process.env.E2E_API_KEY = apiKey;
    if (maxBody) process.env.E2E_MAX_BODY_BYTES = String(maxBody);
    process.env.E2E_VARS = JSON.stringify(vars);
    process.env.E2E_LABEL = label;
    process.env.E2E_OPENAPI_OBS = obsFile;
    console.log(`e2e: target=${target} base=${baseUrl} heartbeat=${heartbeatMs}ms files=${files.join(',')}`);
    const logOffset = wrangler ? fs.statSync(wrangler.logFile).size : 0;
    ({ results, durationS } = await runTestFiles(filePaths, { timeoutMs: 300_000, reason: failureReason }));
    if (wrangler) {
      // wrangler dev rebuilds and reloads the Worker when src/ changes under it
      const fd = fs.openSync(wrangler.logFile, 'r');
      const size = fs.fstatSync(fd).size;
      const buf = Buffer.alloc(Math.max(0, size - logOffset));
      fs.readSync(fd, buf, 0, buf.length, logOffset);
      fs.closeSync(fd);
      const reloads = (buf.toString('utf8').match(/Reloading local server/g) ?? []).length;
      if (reloads) warnings.push(`wrangler dev rebuilt and reloaded the Worker ${reloads} time(s) during the run (sources changed); Durable Object state was reset and requests in flight may have failed`);
    }
  } catch (e) {
    setupError = e.message;
    console.error(`e2e setup failed: ${e.message}`);
    results.push({ name: '(setup) gateway started and /healthz answered', file: 'tests/e2e/run.mjs', status: 'failed', reason: firstLines(e.message, 1) });
  } finally {
    await stopWrangler(wrangler);
  }
  if (!setupError && results.length) {
    try {
      const r = writeOpenApi({ target, label, obsFile });
      console.log(`${r.status === 'passed' ? 'ok  ' : 'FAIL'} ${r.name}${r.reason ? `  — ${r.reason}` : ''}`);
      results.push(r);
    } catch (e) {
      results.push({ name: '(openapi) every response matches docs/openapi.yaml', file: 'tests/e2e/run.mjs', status: 'failed', reason: firstLines(`coverage report failed: ${e.message}`, 2) });
    }
  }
  fs.rmSync(obsDir, { recursive: true, force: true });

  const { totals, jsonFile, mdFile } = writeResults({ target, label, vars, baseUrl, heartbeatMs, results, durationS, notTested, setupError, warnings });
  console.log(`results: ${path.relative(REPO, jsonFile)}, ${path.relative(REPO, mdFile)}`);
  for (const n of notTested) console.log(`NOT TESTED: ${n}`);
  if (setupError) console.log(`SETUP FAILED: ${setupError.split('\n')[0]}`);
  for (const w of warnings) console.log(`WARNING: ${w}`);
  const line = `${totals.passed} passed, ${totals.failed} failed${totals.skipped ? `, ${totals.skipped} skipped` : ''}`;
  console.log(line);
  process.exit(totals.failed > 0 || setupError || totals.total === 0 ? 1 : 0);
}

main().catch((e) => {
  console.error(e.stack ?? String(e));
  console.log('0 passed, 1 failed');
  process.exit(1);
});
