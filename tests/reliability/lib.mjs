// Shared by the reliability scripts (Node built-ins only): start one native node, publish,
// subscribe with a tiny SSE reader, page through the admin API.
import { existsSync, statSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startNative, stopGroup } from '../lib/gateways.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const KEY = 'reliability-key';
export const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

/** The newest of target/release/sse-gateway and target/debug/sse-gateway (SSE_GATEWAY_BIN wins). */
export function gatewayBinary() {
  if (process.env.SSE_GATEWAY_BIN) return process.env.SSE_GATEWAY_BIN;
  const found = ['release', 'debug'].map((p) => path.join(ROOT, 'target', p, 'sse-gateway')).filter((p) => existsSync(p));
  if (found.length === 0) throw new Error('no sse-gateway binary: run `cargo build -p sse-gateway-server` first');
  return found.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts one native node (tests/lib/gateways.mjs startNative) on a free port; its stderr/stdout
 * go to `logFile`. Returns { base, pid, bin, stop() }.
 */
export async function startNode(env, logFile) {
  const port = await freePort();
  const bin = gatewayBinary();
  const handle = await startNative({
    port, bin, logFile, limitMs: 20_000, pollMs: 50, name: path.basename(bin),
    env: { RUST_LOG: 'info', API_KEYS: KEY, ...env },
  });
  return { base: handle.base, pid: handle.child.pid, bin, stop: () => stopGroup(handle) };
}

export function request(method, url, headers = {}, body = '') {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: { 'content-length': Buffer.byteLength(body), ...headers }, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json = null;
        try { json = JSON.parse(text); } catch {}
        resolve({ status: res.statusCode, json, text });
      });
    });
    req.setTimeout(15_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

export function publish(base, topic, id, body) {
  return request('POST', `${base}/publish`, { 'x-api-key': KEY, 'x-sse-topic': topic, 'x-sse-id': id }, body);
}

/** Follows cursors; returns every item of `field`. */
export async function adminAll(base, pathname, field) {
  const out = [];
  let cursor = '';
  for (let pages = 0; pages < 10_000; pages++) {
    const sep = pathname.includes('?') ? '&' : '?';
    const r = await request('GET', `${base}${pathname}${sep}limit=500&cursor=${encodeURIComponent(cursor)}`, { 'x-api-key': KEY });
    if (r.status !== 200) throw new Error(`${pathname}: ${r.status} ${r.text}`);
    out.push(...r.json[field]);
    if (!r.json.next_cursor) return out;
    cursor = r.json.next_cursor;
  }
  throw new Error('too many pages');
}

/**
 * An SSE subscriber with its own socket (no agent). `onEvent(id, event, now)` per event.
 * Resolves once the `connected` frame is in: { id, req, res, ended: Promise }.
 */
export function subscribe(base, topics, onEvent = () => {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}/sse`, { headers: { 'x-sse-topic': topics }, agent: false }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`subscribe: ${res.statusCode}`));
      res.setEncoding('utf8');
      let buf = '';
      let connected = null;
      let endedResolve;
      const ended = new Promise((r) => (endedResolve = r));
      res.on('data', (chunk) => {
        const now = performance.now();
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let id = null, event = null, data = null;
          for (const line of frame.split('\n')) {
            if (line.startsWith('id: ')) id = line.slice(4);
            else if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ') && event === 'connected') data = line.slice(6);
          }
          if (event === 'connected' && !connected) {
            connected = JSON.parse(data).connection_id;
            resolve({ id: connected, req, res, ended });
          } else if (id !== null || event !== null) onEvent(id, event, now);
        }
      });
      const done = () => endedResolve(true);
      res.on('end', done);
      res.on('close', done);
      res.on('error', done);
    });
    req.on('error', reject);
    req.end();
  });
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

export const round1 = (x) => (x === null ? null : Math.round(x * 10) / 10);
