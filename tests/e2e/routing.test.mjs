// 404, 405, CORS preflight, /healthz.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request, authHeaders, assertJsonError, expectedRuntime, uniqueTopic } from './lib/index.mjs';

const T = { timeout: 30_000 };

function allowSet(res) {
  return new Set(String(res.headers.allow ?? '').split(',').map((s) => s.trim().toUpperCase()).filter(Boolean));
}

test('404 not_found JSON on an unknown path', T, async () => {
  for (const [method, path] of [['GET', '/nope'], ['POST', '/no/such/path'], ['GET', '/sse/extra'], ['GET', '/publishx']]) {
    assertJsonError(await request(method, path, { headers: authHeaders() }), 404, 'not_found', `${method} ${path}`);
  }
});

test('405 method_not_allowed with allow: GET /publish', T, async () => {
  const r = await request('GET', '/publish', { headers: authHeaders() });
  assertJsonError(r, 405, 'method_not_allowed');
  const allow = allowSet(r);
  assert.ok(allow.has('POST'), `allow: ${r.headers.allow}`);
  assert.ok(!allow.has('GET'), `allow lists GET: ${r.headers.allow}`);
});

test('405 method_not_allowed with allow: POST /sse', T, async () => {
  const r = await request('POST', '/sse', { headers: { 'x-sse-topic': uniqueTopic('405') }, body: 'x' });
  assertJsonError(r, 405, 'method_not_allowed');
  const allow = allowSet(r);
  assert.ok(allow.has('GET'), `allow: ${r.headers.allow}`);
  assert.ok(!allow.has('POST'), `allow lists POST: ${r.headers.allow}`);
});

test('405 method_not_allowed with allow: other methods on known paths', T, async () => {
  for (const [method, path, must] of [
    ['PUT', '/publish', 'POST'], ['DELETE', '/sse', 'GET'], ['POST', '/ws', 'GET'],
    ['POST', '/healthz', 'GET'], ['POST', '/admin/api/topics', 'GET'], ['DELETE', '/admin/api/connections', 'GET'],
  ]) {
    const r = await request(method, path, { headers: authHeaders(), body: method === 'DELETE' ? undefined : '' });
    assertJsonError(r, 405, 'method_not_allowed', `${method} ${path}`);
    assert.ok(allowSet(r).has(must), `${method} ${path}: allow ${r.headers.allow} should list ${must}`);
  }
});

const ALLOW_HEADERS = ['authorization', 'content-type', 'last-event-id', 'x-api-key', 'x-sse-event', 'x-sse-id', 'x-sse-topic'];

function assertPreflight(r, context) {
  assert.equal(r.status, 204, `${context}: status ${r.status} ${r.text}`);
  assert.equal(r.headers['access-control-allow-origin'], '*', `${context}: allow-origin`);
  const methods = new Set(String(r.headers['access-control-allow-methods'] ?? '').split(',').map((s) => s.trim().toUpperCase()));
  for (const m of ['GET', 'POST', 'OPTIONS']) assert.ok(methods.has(m), `${context}: allow-methods ${r.headers['access-control-allow-methods']} lacks ${m}`);
  const hdrs = new Set(String(r.headers['access-control-allow-headers'] ?? '').split(',').map((s) => s.trim().toLowerCase()));
  for (const h of ALLOW_HEADERS) assert.ok(hdrs.has(h), `${context}: allow-headers ${r.headers['access-control-allow-headers']} lacks ${h}`);
  assert.equal(r.headers['access-control-max-age'], '86400', `${context}: max-age`);
  assert.equal(r.body.length, 0, `${context}: a 204 has no body`);
}

test('CORS: preflight OPTIONS /sse for x-sse-topic, last-event-id → 204', T, async () => {
  const r = await request('OPTIONS', '/sse', {
    headers: {
      origin: 'https://app.example.com',
      'access-control-request-method': 'GET',
      'access-control-request-headers': 'x-sse-topic,last-event-id',
    },
  });
  assertPreflight(r, 'OPTIONS /sse');
});

test('CORS: preflight OPTIONS /publish and other paths → 204', T, async () => {
  for (const path of ['/publish', '/ws', '/admin/api/topics', '/healthz', '/some/unknown/path']) {
    const r = await request('OPTIONS', path, {
      headers: {
        origin: 'https://app.example.com',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type,x-sse-topic,x-sse-id,x-sse-event',
      },
    });
    assertPreflight(r, `OPTIONS ${path}`);
  }
});

test('GET /healthz → 200 {"status":"ok","runtime"}', T, async () => {
  const r = await request('GET', '/healthz');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json?.status, 'ok', r.text);
  assert.equal(r.json?.runtime, expectedRuntime(), r.text);
  assert.equal(r.headers['access-control-allow-origin'], '*');
});
