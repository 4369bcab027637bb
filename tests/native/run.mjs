#!/usr/bin/env node
// Tests of the native runtime, in three parts (scripts/test-native.sh installs redis-server and,
// for e2e, builds the release binary, then runs this; scripts/test.sh runs each part as a step):
//
//   node tests/native/run.mjs unit      cargo tests of crates/server: unit tests, the Redis adapter
//                                       against a real redis-server, one node in process
//                                       (WebSocket, eviction, 408), the embedding example
//   node tests/native/run.mjs cluster   crates/server/tests/cluster.rs and redis_cluster.rs: three real nodes and a real
//                                       Redis (fan-out across nodes, drop path, SIGKILL, Redis
//                                       restart, graceful shutdown, retention and resume across
//                                       nodes, the at-least-once chaos test); also writes
//                                       test-results/faults.{json,md} from its FAULT-FIGURE lines
//   node tests/native/run.mjs e2e       tests/e2e against each node of a three-node cluster
//                                       (tests/lib/gateways.mjs startCluster: Redis on 6390, nodes
//                                       on 8081-8083, started with RETENTION and the private-topic
//                                       settings; replay.test.mjs on 8081, private_*.test.mjs on
//                                       8082), then against one node on 127.0.0.1:8080 (plain, with
//                                       the connection and rate limits, with RETENTION)
//
// Each part writes test-results/native-<part>.json and .md and ends with "N passed, N failed";
// the exit status is 1 when anything failed. Environment: E2E_TIMEOUT (seconds per e2e run,
// default 900).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { LOGS, REPO, healthy, killAll, startCluster, startNative, stopAll, stopCluster, stopGroup } from '../lib/gateways.mjs';
import { readResult, totalsOf, writeResult } from '../lib/results.mjs';

const KEY = 'dev-key-change-me';
// Retention for tests/e2e/replay.test.mjs (only topics e2e-rp-* / e2e-rpb-*, which no other test
// uses): on the cluster (Redis Streams) and on a node of its own (in-memory rings).
const RETENTION = 'e2e-rp-*=5/600s,e2e-rpb-*=2000/600s';
// The settings tests/e2e/private_*.test.mjs need (tests/e2e/lib/token_cases.mjs: the two test
// secrets, for rotation, and the scoped API keys).
const PRIVATE = {
  PRIVATE_TOPICS: 'e2e-priv-*',
  SUBSCRIBER_TOKEN_SECRETS: 'e2e-subscriber-secret-old-0123456789abcdef,e2e-subscriber-secret-new-0123456789abcdef',
  SCOPED_API_KEYS: 'e2e-scoped-publish-0123456789:publish:e2e-priv-*|e2e-scope-*,e2e-scoped-admin-0123456789:admin:e2e-scope-*',
  CREDENTIALED_ORIGINS: 'http://app.e2e.test',
};
const PRIVATE_FILES = 'private_topics,private_listing,private_cors';
const SINGLE_PORT = 8080;
const LIMITS = { MAX_CONNECTIONS_PER_NODE: '20', MAX_CONNECTIONS_PER_TOPIC: '5', PUBLISH_RATE_PER_KEY: '5', PUBLISH_BURST_PER_KEY: '5' };

/**
 * Run a command to completion with its output both shown and written to logFile (truncated);
 * a run longer than timeoutS is killed. Resolves the exit code (124 on a timeout).
 */
function runTee(cmd, args, { logFile, timeoutS } = {}) {
  fs.mkdirSync(path.dirname(logFile ?? LOGS), { recursive: true });
  const log = logFile ? fs.createWriteStream(logFile) : null;
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let timedOut = false;
    const timer = timeoutS ? setTimeout(() => { timedOut = true; child.kill('SIGTERM'); setTimeout(() => child.kill('SIGKILL'), 15_000).unref(); }, timeoutS * 1000) : null;
    for (const [from, to] of [[child.stdout, process.stdout], [child.stderr, process.stderr]]) {
      from.on('data', (d) => { to.write(d); log?.write(d); });
    }
    child.on('close', (code) => {
      if (timer) clearTimeout(timer);
      log?.end();
      resolve(timedOut ? 124 : code ?? 1);
    });
    child.on('error', (e) => { log?.end(`${e.message}\n`); resolve(127); });
  });
}

// --- cargo parts --------------------------------------------------------------------------------

/** native-<name>.{json,md} from cargo test logs ("test x ... ok"); returns the totals. */
function cargoReport(name, logs) {
  const tests = [];
  for (const log of logs) {
    const text = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
    for (const m of text.matchAll(/^test (\S+) \.\.\. (ok|FAILED|ignored)$/gm)) {
      tests.push({ name: m[1], status: m[2] === 'ok' ? 'passed' : m[2] === 'FAILED' ? 'failed' : 'skipped' });
    }
  }
  tests.sort((a, b) => a.name.localeCompare(b.name));
  const totals = totalsOf(tests);
  writeResult(`native-${name}`, { suite: `native-${name}`, totals, tests }, [
    `# Native runtime: ${name} tests`, '', `**${totals.passed} passed, ${totals.failed} failed**`, '', '| test | result |', '|---|---|',
    ...tests.map((t) => `| \`${t.name}\` | ${t.status} |`), '',
  ]);
  return totals;
}

/** faults.{json,md} from the "FAULT-FIGURE name ms what" lines the cluster tests print. */
function faultsReport(log) {
  const text = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
  const figures = {};
  for (const m of text.matchAll(/^FAULT-FIGURE (\S+) (\d+) (.*)$/gm)) figures[m[1]] = { ms: Number(m[2]), what: m[3] };
  const names = Object.keys(figures).sort();
  if (names.length === 0) {
    console.log('no fault figures in the log: test-results/faults.* left as they were');
    return;
  }
  writeResult('faults', {
    suite: 'faults-native-cluster', source: 'crates/server/tests/cluster.rs (bash scripts/test-native.sh cluster)',
    settings: { NODE_TTL_MS: 3000, NODE_REFRESH_MS: 500, HEARTBEAT_INTERVAL_MS: 1000, publish_probe_timeout_ms: 1000 },
    figures: Object.fromEntries(names.map((n) => [n, figures[n]])),
  }, [
    '# Faults: native cluster (measured)', '',
    'From `crates/server/tests/cluster.rs` (real redis-server, real nodes, debug build, 2 shared cores);',
    'NODE_TTL_MS 3000, NODE_REFRESH_MS 500, HEARTBEAT_INTERVAL_MS 1000; rounded to 100 ms.', '',
    '| figure | ms | what |', '|---|---:|---|', ...names.map((n) => `| \`${n}\` | ${figures[n].ms} | ${figures[n].what} |`), '',
  ]);
  console.log(`faults: ${names.length} figures written`);
}

async function partUnit() {
  const server = path.join(LOGS, 'native-unit-server.log');
  const example = path.join(LOGS, 'native-unit-example.log');
  const a = await runTee('cargo', ['test', '-p', 'sse-gateway-server', '--lib', '--bins', '--test', 'single_node'], { logFile: server });
  const b = await runTee('cargo', ['test', '-p', 'sse-gateway-embedded-example'], { logFile: example });
  return { ok: a === 0 && b === 0, totals: cargoReport('unit', [server, example]) };
}

async function partCluster() {
  const log = path.join(LOGS, 'native-cluster-tests.log');
  // crates/server/tests/cluster.rs (one Redis) and redis_cluster.rs (a three-shard Redis Cluster).
  const rc = await runTee('cargo', ['test', '-p', 'sse-gateway-server', '--test', 'cluster', '--test', 'redis_cluster', '--', '--nocapture'], { logFile: log });
  const totals = cargoReport('cluster', [log]);
  faultsReport(log);
  return { ok: rc === 0, totals };
}

// --- e2e part -----------------------------------------------------------------------------------

/** One run of tests/e2e (a child process); its results are kept as e2e-<label>.{json,md}. */
async function runE2e(runs, label, base, extra = []) {
  console.log(`==> e2e ${label} against ${base} ${extra.join(' ')}`);
  const args = ['tests/e2e/run.mjs', '--target', 'native', '--base-url', base, '--heartbeat-ms', '1000', '--label', label, ...extra];
  const rc = await runTee(process.execPath, args, { logFile: path.join(LOGS, `native-e2e-${label}.log`), timeoutS: Number(process.env.E2E_TIMEOUT ?? 900) });
  runs.push(label);
  return rc === 0;
}

/** A single node on SINGLE_PORT with env, the e2e run(s) against it, the node stopped. */
async function singleNode(runs, { id, logName, env, label, extra = [] }) {
  let node = null;
  try {
    node = await startNative({ port: SINGLE_PORT, name: `node ${id}`, logFile: path.join(LOGS, logName), env: { API_KEYS: KEY, NODE_ID: id, HEARTBEAT_INTERVAL_MS: '1000', ...env } });
  } catch (e) {
    console.error(e.message);
    await stopGroup(e.handle);
    runs.push(label);
    return false;
  }
  try {
    return await runE2e(runs, label, node.base, extra);
  } finally {
    await stopGroup(node);
  }
}

async function partE2e() {
  const runs = [];
  let ok = true;

  // The cluster first, then one node (results: e2e-<label>.*, badinput-<label>.*).
  let cluster = null;
  try {
    // With the private settings too: they touch only e2e-priv-* topics, the scoped keys and
    // listed origins, which only the private run uses.
    cluster = await startCluster({ env: { API_KEYS: KEY, HEARTBEAT_INTERVAL_MS: '1000', RETENTION, ...PRIVATE }, logDir: path.join(LOGS, 'native-cluster') });
  } catch (e) {
    console.error(`the cluster did not start: ${e.message}`);
    ok = false;
  }
  if (cluster) {
    try {
      for (const [i, node] of cluster.nodes.entries()) ok = (await runE2e(runs, `native-cluster-node-${i + 1}`, node.base)) && ok;
      ok = (await runE2e(runs, 'native-cluster-replay', cluster.nodes[0].base, ['--files', 'replay', '--var', `RETENTION:${RETENTION}`])) && ok;
      // Private topics, subscriber tokens, scoped API keys, the token's sub in the listing (from
      // the cluster's Redis records) and cookie mode (tests/e2e/private_*.test.mjs).
      ok = (await runE2e(runs, 'native-cluster-private', cluster.nodes[1].base, [
        '--files', PRIVATE_FILES, ...Object.entries(PRIVATE).flatMap(([k, v]) => ['--var', `${k}:${v}`]),
      ])) && ok;
    } finally {
      await stopCluster(cluster);
    }
  }

  if (await healthy(`http://127.0.0.1:${SINGLE_PORT}`)) {
    console.error(`127.0.0.1:${SINGLE_PORT} is already in use: stop what listens there (make server?) and rerun`);
    ok = false;
  } else {
    ok = (await singleNode(runs, { id: 'local', logName: 'native-single-node.log', env: { PUBLISH_BODY_TIMEOUT_MS: '3000' }, label: 'native', extra: ['--var', 'PUBLISH_BODY_TIMEOUT_MS:3000'] })) && ok;
    // The limits (tests/e2e/limits_conn_rate.test.mjs) on a node started with them configured.
    ok = (await singleNode(runs, {
      id: 'limits', logName: 'native-limits-node.log', env: LIMITS, label: 'native-limits',
      extra: ['--files', 'limits_conn_rate', ...Object.entries(LIMITS).flatMap(([k, v]) => ['--var', `${k}:${v}`])],
    })) && ok;
    // A subscriber that stops reading (tests/e2e/slow_consumer.test.mjs), on a node with a small queue.
    ok = (await singleNode(runs, { id: 'slow', logName: 'native-slow-node.log', env: { QUEUE_CAPACITY: '16' }, label: 'native-slow', extra: ['--files', 'slow_consumer', '--var', 'QUEUE_CAPACITY:16'] })) && ok;
    // Retention and resume (tests/e2e/replay.test.mjs) on a node started with RETENTION.
    ok = (await singleNode(runs, { id: 'replay', logName: 'native-replay-node.log', env: { RETENTION }, label: 'native-replay', extra: ['--files', 'replay', '--var', `RETENTION:${RETENTION}`] })) && ok;
  }

  const summary = runs.map((label) => {
    const r = readResult(`e2e-${label}`) ?? { totals: { passed: 0, failed: 1 } };
    return { label, base_url: r.base_url ?? null, passed: r.totals.passed, failed: r.totals.failed, results: `test-results/e2e-${label}.json` };
  });
  const totals = summary.reduce((t, r) => ({ passed: t.passed + r.passed, failed: t.failed + r.failed }), { passed: 0, failed: 0 });
  writeResult('native-e2e', { suite: 'native-e2e', totals, runs: summary }, [
    '# Native runtime: end-to-end suite', '', 'tests/e2e run against one node, then against each node of a three-node cluster with Redis.', '',
    `**${totals.passed} passed, ${totals.failed} failed**`, '', '| run | base URL | passed | failed |', '|---|---|---|---|',
    ...summary.map((r) => `| [${r.label}](e2e-${r.label}.md) | ${r.base_url} | ${r.passed} | ${r.failed} |`), '',
  ]);
  return { ok, totals };
}

// --- main ---------------------------------------------------------------------------------------

const PARTS = { unit: partUnit, cluster: partCluster, e2e: partE2e };

async function main() {
  const part = process.argv[2];
  if (!PARTS[part] || process.argv.length > 3) {
    console.error('usage: node tests/native/run.mjs unit|cluster|e2e');
    process.exit(2);
  }
  const onSignal = async (sig) => {
    console.error(`\n${sig}: stopping`);
    await stopAll();
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', killAll);
  const { ok, totals } = await PARTS[part]();
  console.log(`${totals.passed} passed, ${totals.failed} failed`);
  process.exit(ok && totals.failed === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(e.stack ?? String(e));
  console.log('0 passed, 1 failed');
  process.exit(1);
});
