// Plain HTTP helpers: a request function over node:http, publishing, the admin API,
// unique topic names and assertions on the documented error format.

import http from 'node:http';
import https from 'node:https';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { baseUrl, config } from './config.mjs';
import { checkResponse } from './openapi.mjs';

const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });
const httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 32 });

/** A topic name no other test (or earlier run) uses: `e2e-<label>-<16 hex>`. */
export function uniqueTopic(label = 't') {
  const clean = String(label).replace(/[^A-Za-z0-9_.:-]/g, '-').slice(0, 60);
  return `e2e-${clean}-${randomBytes(8).toString('hex')}`;
}

/** A unique event id. */
export function uniqueId(label = 'evt') {
  return `${label}-${randomBytes(6).toString('hex')}`;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * One HTTP request. Resolves with { status, headers, body (Buffer), text, json }; rejects with an
 * OpenApiMismatch when the response does not match docs/openapi.yaml (lib/openapi.mjs).
 * The response is used even if writing the request body fails afterwards (a server may
 * answer 413 and close before it read what we sent).
 *   body: string | Buffer | undefined; chunked: true sends it with transfer-encoding: chunked
 */
export function request(method, path, { headers = {}, body, chunked = false, timeoutMs = 15000, query } = {}) {
  const url = new URL(path, baseUrl());
  if (query) {
    for (const [k, v] of Object.entries(query)) {
      if (Array.isArray(v)) for (const item of v) url.searchParams.append(k, item);
      else if (v !== undefined && v !== null) url.searchParams.append(k, String(v));
    }
  }
  const isHttps = url.protocol === 'https:';
  const mod = isHttps ? https : http;
  const buf = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(String(body), 'utf8');
  const h = { ...headers };
  if (buf !== undefined && !chunked && !Object.keys(h).some((k) => k.toLowerCase() === 'content-length')) {
    h['content-length'] = String(buf.length);
  }
  if (chunked) h['transfer-encoding'] = 'chunked';
  return new Promise((resolve, reject) => {
    let settled = false;
    const req = mod.request(url, { method, headers: h, agent: isHttps ? httpsAgent : httpAgent });
    const timer = setTimeout(() => {
      if (!settled) { settled = true; req.destroy(); reject(new Error(`${method} ${url.pathname} timed out after ${timeoutMs} ms`)); }
    }, timeoutMs);
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      const done = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const b = Buffer.concat(chunks);
        const text = b.toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        // Every response is checked against docs/openapi.yaml (a mismatch fails the caller).
        try {
          checkResponse({ method, target: url.pathname, status: res.statusCode, headers: res.headers, body: b, bodyComplete: res.complete });
        } catch (e) {
          reject(e);
          return;
        }
        resolve({ status: res.statusCode, headers: res.headers, body: b, text, json });
      };
      res.on('end', done);
      res.on('close', done);
      res.on('error', done);
    });
    req.on('error', (e) => {
      // A write error after the response head is fine; only fail when nothing came back.
      setTimeout(() => {
        if (!settled) { settled = true; clearTimeout(timer); reject(e); }
      }, 200);
    });
    if (buf !== undefined) {
      if (chunked) {
        // a few chunks so the server really has to count
        const step = Math.max(1, Math.ceil(buf.length / 4));
        for (let i = 0; i < buf.length; i += step) req.write(buf.subarray(i, i + step));
      } else {
        req.write(buf);
      }
    }
    req.end();
  });
}

/** Headers carrying the API key. how: 'bearer' | 'x-api-key' | 'none' */
export function authHeaders(how = 'bearer', key = config.apiKey) {
  if (how === 'none') return {};
  if (how === 'x-api-key') return { 'x-api-key': key };
  return { authorization: `Bearer ${key}` };
}

/**
 * POST /publish.
 *   topics: string (a raw x-sse-topic value) or array (joined with ',')
 *   id, event: x-sse-id / x-sse-event (omitted when undefined)
 *   body: string | Buffer (default '')
 *   auth: 'bearer' | 'x-api-key' | 'none'; key overrides the configured key
 */
export function publish({ topics, id, event, body = '', auth = 'bearer', key, headers = {}, chunked = false, timeoutMs } = {}) {
  const h = { ...authHeaders(auth, key ?? config.apiKey), ...headers };
  if (topics !== undefined) h['x-sse-topic'] = Array.isArray(topics) ? topics.join(',') : topics;
  if (id !== undefined) h['x-sse-id'] = id;
  if (event !== undefined) h['x-sse-event'] = event;
  if (!chunked && !Buffer.isBuffer(body) && !Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) {
    h['content-type'] = 'text/plain; charset=utf-8';
  }
  return request('POST', '/publish', { headers: h, body, chunked, timeoutMs });
}

/** publish() that insists on 202 and returns the JSON body. */
export async function publishOk(opts) {
  const r = await publish(opts);
  assert.equal(r.status, 202, `publish to ${opts.topics} expected 202, got ${r.status}: ${r.text.slice(0, 300)}`);
  assert.ok(r.json && typeof r.json === 'object', `publish response is not JSON: ${r.text.slice(0, 300)}`);
  return r.json;
}

/** GET an admin endpoint with the configured key. */
export function adminGet(path, query, { auth = 'bearer', key } = {}) {
  return request('GET', path, { headers: authHeaders(auth, key ?? config.apiKey), query });
}

async function adminGetOk(path, query) {
  const r = await adminGet(path, query);
  assert.equal(r.status, 200, `GET ${path} ${JSON.stringify(query ?? {})} expected 200, got ${r.status}: ${r.text.slice(0, 300)}`);
  assert.ok(r.json && typeof r.json === 'object', `GET ${path}: body is not JSON`);
  return r.json;
}

/** Every page of /admin/api/topics (limit 500). Returns { topics, pages }. */
export async function listAllTopics({ limit = 500, maxPages = 200 } = {}) {
  const topics = [];
  const pages = [];
  let cursor;
  for (let i = 0; i < maxPages; i++) {
    const page = await adminGetOk('/admin/api/topics', { limit, cursor });
    assert.ok(Array.isArray(page.topics), '/admin/api/topics: `topics` is not an array');
    pages.push(page);
    topics.push(...page.topics);
    if (page.next_cursor === null || page.next_cursor === undefined) return { topics, pages };
    cursor = page.next_cursor;
  }
  throw new Error(`/admin/api/topics: still paging after ${maxPages} pages`);
}

/** The /admin/api/topics entry of one topic, or undefined. */
export async function findTopic(topic) {
  const { topics } = await listAllTopics();
  return topics.find((t) => t.topic === topic);
}

/** Every page of /admin/api/connections (optionally filtered by topic). Returns { connections, pages }. */
export async function listAllConnections({ topic, limit = 500, maxPages = 200 } = {}) {
  const connections = [];
  const pages = [];
  let cursor;
  for (let i = 0; i < maxPages; i++) {
    const page = await adminGetOk('/admin/api/connections', { limit, cursor, topic });
    assert.ok(Array.isArray(page.connections), '/admin/api/connections: `connections` is not an array');
    pages.push(page);
    connections.push(...page.connections);
    if (page.next_cursor === null || page.next_cursor === undefined) return { connections, pages };
    cursor = page.next_cursor;
  }
  throw new Error(`/admin/api/connections: still paging after ${maxPages} pages`);
}

/** Poll fn() until it returns a truthy value; resolves with it, or throws after timeoutMs. */
export async function poll(fn, { timeoutMs = 5000, intervalMs = 200, label = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${label}${lastErr ? ` (last error: ${lastErr.message})` : ''}`);
    }
    await sleep(intervalMs);
  }
}

/**
 * Assert a documented JSON error: status, `{"error":{"code","message"}}`, JSON content type
 * and the CORS header every response carries. code may be a string or an array of accepted codes.
 */
export function assertJsonError(res, status, code, context = '') {
  const where = context ? `${context}: ` : '';
  assert.equal(res.status, status, `${where}expected status ${status}, got ${res.status}: ${String(res.text ?? res.body ?? '').slice(0, 300)}`);
  const ct = String(res.headers['content-type'] ?? '');
  assert.match(ct, /application\/json/i, `${where}error content-type should be JSON, got ${JSON.stringify(ct)}`);
  const json = res.json;
  assert.ok(json && typeof json === 'object' && json.error && typeof json.error === 'object',
    `${where}body should be {"error":{...}}, got ${String(res.text ?? res.body ?? '').slice(0, 300)}`);
  const codes = Array.isArray(code) ? code : [code];
  assert.ok(codes.includes(json.error.code), `${where}error.code should be ${codes.join(' or ')}, got ${JSON.stringify(json.error.code)}`);
  assert.equal(typeof json.error.message, 'string', `${where}error.message should be a string`);
  assert.ok(json.error.message.length > 0, `${where}error.message should not be empty`);
  assert.equal(res.headers['access-control-allow-origin'], '*', `${where}access-control-allow-origin should be *`);
}
