#!/usr/bin/env node
// A local native cluster that outlives this command (make cluster): redis-server on
// 127.0.0.1:$CLUSTER_REDIS_PORT (default 6390, no persistence) and node-1..node-3 on
// 127.0.0.1:8081..8083, started through tests/lib/gateways.mjs. Logs and PID files go to
// .run/cluster/. scripts/cluster.sh installs redis-server and builds the binary, then runs this.
//
//   node tests/native/cluster.mjs start    stop leftovers, start, return once all answer /healthz
//   node tests/native/cluster.mjs stop     stop what the PID files name (process groups)
//   node tests/native/cluster.mjs status   which recorded processes are alive
//
// Settings for the nodes come from the environment as usual (API_KEYS, HEARTBEAT_INTERVAL_MS, ...).

import fs from 'node:fs';
import path from 'node:path';

import { REPO, startCluster, stopPid } from '../lib/gateways.mjs';

const RUN = path.join(REPO, '.run', 'cluster');
const NAMES = ['node-1', 'node-2', 'node-3', 'redis'];

const pidOf = (name) => {
  try {
    return Number(fs.readFileSync(path.join(RUN, `${name}.pid`), 'utf8').trim()) || null;
  } catch {
    return null;
  }
};
const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function stop() {
  for (const name of NAMES) {
    const pid = pidOf(name);
    if (pid && alive(pid) && (await stopPid(pid))) console.log(`  stopped ${name} (pid ${pid})`);
    fs.rmSync(path.join(RUN, `${name}.pid`), { force: true });
  }
}

async function start() {
  await stop(); // leftovers of an earlier run
  fs.mkdirSync(RUN, { recursive: true });
  const { redis, nodes } = await startCluster({
    redisPort: Number(process.env.CLUSTER_REDIS_PORT ?? 6390),
    env: { API_KEYS: process.env.API_KEYS || 'dev-key-change-me' },
    logDir: RUN,
    daemon: true,
  });
  fs.writeFileSync(path.join(RUN, 'redis.pid'), `${redis.child.pid}\n`);
  for (const node of nodes) fs.writeFileSync(path.join(RUN, `${node.name}.pid`), `${node.child.pid}\n`);
  console.log('cluster up; logs in .run/cluster/; stop with: make cluster-stop');
}

function status() {
  for (const name of NAMES) {
    const pid = pidOf(name);
    if (pid) console.log(`${name}: ${alive(pid) ? `running (pid ${pid})` : 'not running'}`);
  }
}

const cmd = process.argv[2] ?? 'start';
const commands = { start, stop, status };
if (!commands[cmd]) {
  console.error('usage: node tests/native/cluster.mjs [start|stop|status]');
  process.exit(2);
}
Promise.resolve(commands[cmd]()).then(() => process.exit(0), (e) => {
  console.error(e.message);
  process.exit(1);
});
