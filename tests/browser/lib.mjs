// Helpers of the browser tests: configuration, Chromium (Debian's, driven by playwright-core),
// subscribers (curl and node:http), publishing, and small waiting utilities.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createHmac, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '..', '..');

export const config = Object.freeze({
  baseUrl: (process.env.BROWSER_BASE_URL || '').replace(/\/+$/, ''),
  apiKey: process.env.BROWSER_API_KEY || 'dev-key-change-me',
  target: process.env.BROWSER_TARGET || 'wrangler-dev',
  chromium: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
  screenshots: process.env.BROWSER_SCREENSHOTS || path.join(REPO, 'test-results', 'screenshots'),
  // native screenshots get a suffix so the two targets do not overwrite each other
  shotSuffix: process.env.BROWSER_TARGET && process.env.BROWSER_TARGET !== 'wrangler-dev' ? `-${process.env.BROWSER_TARGET}` : '',
  // private topics (private.test.mjs): topics starting with privatePrefix must be private on the
  // target, and subscriberSecret one of its SUBSCRIBER_TOKEN_SECRETS (see run.mjs, PRIVATE)
  privatePrefix: process.env.BROWSER_PRIVATE_PREFIX || 'browser-priv-',
  subscriberSecret: process.env.BROWSER_SUBSCRIBER_SECRET || 'browser-subscriber-secret-0123456789abcdef',
  // set by run.mjs when it started the gateway itself with those settings: then a gateway that
  // does not honour them is a failure, not a reason to skip
  privateConfigured: process.env.BROWSER_PRIVATE_CONFIGURED === '1',
});

if (!config.baseUrl) throw new Error('BROWSER_BASE_URL is not set: run `node tests/browser/run.mjs`');

// TOOLCHAIN.md: Debian's Chromium; playwright's own browser download does not work here.
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export async function launch() {
  if (!fs.existsSync(config.chromium)) {
    throw new Error(`${config.chromium} not found: install Chromium with \`bash scripts/setup.sh --with-chromium\` (Debian package chromium)`);
  }
  return chromium.launch({ executablePath: config.chromium, args: CHROMIUM_ARGS, headless: true });
}

/** A short id for this run: topic names stay readable in the screenshots and unique per run. */
export const RUN = randomBytes(2).toString('hex');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value; throws `what` (plus the last value) on timeout. */
export async function waitUntil(fn, what, timeoutMs = 20_000, everyMs = 200) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const tail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${String(tail).slice(0, 300)})`);
    }
    await sleep(everyMs);
  }
}

/** Text of the first element matching `selector`, or '' when there is none. */
export async function textOf(page, selector) {
  const loc = page.locator(selector).first();
  return (await loc.count()) ? ((await loc.textContent()) ?? '') : '';
}

export async function screenshot(page, name) {
  fs.mkdirSync(config.screenshots, { recursive: true });
  const file = path.join(config.screenshots, `admin-${name}${config.shotSuffix}.png`);
  // let transitions and the next refresh settle
  await sleep(300);
  await page.screenshot({ path: file });
  return file;
}

// --- gateway clients -----------------------------------------------------------------------

/**
 * A subscriber started with curl, as a user would: `curl -N <base>/sse?topic=<topic>`.
 * Resolves once the `event: connected` block has arrived.
 */
export function curlSubscriber(topic) {
  const child = spawn('curl', ['-sN', '--no-buffer', `${config.baseUrl}/sse?topic=${topic}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`curl subscriber for ${topic} got no connected block within 15 s (output: ${out.slice(0, 200)})`));
    }, 15_000);
    child.stdout.on('data', (c) => {
      out += c;
      if (out.includes('event: connected')) {
        clearTimeout(timer);
        resolve({ close: () => child.kill('SIGTERM') });
      }
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run curl: ${e.message}`));
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`curl subscriber for ${topic} exited with ${code} (output: ${out.slice(0, 200)})`));
    });
  });
}

const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });

/** A subscriber over node:http; resolves once the connected block has arrived. */
export function httpSubscriber(topic) {
  return new Promise((resolve, reject) => {
    const req = http.get(`${config.baseUrl}/sse?topic=${topic}`, { agent }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`GET /sse?topic=${topic} answered ${res.statusCode}`));
        return;
      }
      let buf = '';
      const onData = (c) => {
        buf += c;
        if (buf.includes('event: connected')) {
          res.off('data', onData);
          res.on('data', () => {});
          resolve({ close: () => req.destroy() });
        }
      };
      res.setEncoding('utf8');
      res.on('data', onData);
      res.on('error', () => {});
    });
    req.setTimeout(20_000, () => req.destroy(new Error(`subscriber for ${topic} timed out`)));
    req.on('error', reject);
  });
}

/** Opens `n` subscribers of `topic`, `parallel` at a time. */
export async function manySubscribers(topic, n, parallel = 20) {
  const subs = [];
  for (let i = 0; i < n; i += parallel) {
    const batch = await Promise.all(Array.from({ length: Math.min(parallel, n - i) }, () => httpSubscriber(topic)));
    subs.push(...batch);
  }
  return { count: subs.length, close: () => subs.forEach((s) => s.close()) };
}

export async function publish(topic, id, body, event) {
  const headers = { authorization: `Bearer ${config.apiKey}`, 'x-sse-topic': topic, 'x-sse-id': id };
  if (event) headers['x-sse-event'] = event;
  const r = await fetch(`${config.baseUrl}/publish`, { method: 'POST', headers, body });
  const text = await r.text();
  if (r.status !== 202) throw new Error(`publish to ${topic} answered ${r.status}: ${text}`);
  return JSON.parse(text);
}

export async function adminGet(pathAndQuery) {
  const r = await fetch(`${config.baseUrl}/admin/api/${pathAndQuery}`, { headers: { authorization: `Bearer ${config.apiKey}` } });
  if (r.status !== 200) throw new Error(`GET /admin/api/${pathAndQuery} answered ${r.status}: ${await r.text()}`);
  return r.json();
}

// --- subscriber tokens and a page of our own -------------------------------------------------

const b64url = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** An HS256 JWT of `claims` (exp an hour from now unless given), signed with `secret`. */
export function jwt(claims, secret = config.subscriberSecret) {
  const input = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims })}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/**
 * Serves `html` at http://127.0.0.1:<free port>/ (any path), so a page has an origin of its own,
 * another one than the gateway's, as an application's page would. Resolves { url, close }.
 */
export function servePage(html) {
  const server = http.createServer((req, res) => {
    res.writeHead(req.url === '/' ? 200 : 404, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(req.url === '/' ? html : 'not found');
  });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({ url: `http://127.0.0.1:${port}/`, close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }) });
    });
  });
}
