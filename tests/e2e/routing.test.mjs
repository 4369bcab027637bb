// 404, 405, CORS preflight, /healthz.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request, authHeaders, assertJsonError, expectedRuntime, uniqueTopic, rawSend, config } from './lib/index.mjs';

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
  for (const path of ['/publish', '/ws', '/admin/api/topics', '/admin/api/connections', '/admin/api/stats',
    '/admin/api/topics/orders/tail', '/healthz', '/metrics', '/admin', '/admin/connections', '/some/unknown/path']) {
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

test('GET /admin → 200 the admin UI (HTML); a client-side route too', T, async () => {
  for (const path of ['/admin', '/admin/connections']) {
    const r = await request('GET', path);
    assert.equal(r.status, 200, `${path}: ${r.text.slice(0, 200)}`);
    assert.match(String(r.headers['content-type']), /^text\/html/, `${path}: content-type`);
    assert.match(r.text, /<html|<!doctype html/i, `${path}: not HTML`);
  }
});

test('GET /admin/api/topics/{bad topic}/tail → 400 invalid_topic (before the key is checked)', T, async () => {
  assertJsonError(await request('GET', '/admin/api/topics/a%20b/tail'), 400, 'invalid_topic');
  assertJsonError(await request('GET', '/admin/api/topics/a%20b/tail', { headers: authHeaders() }), 400, 'invalid_topic');
});

test('431 headers_too_large: a header block over 32 KiB, on every endpoint', T, async () => {
  const pad = { 'x-pad': 'a'.repeat(33 * 1024) };
  for (const [method, path] of [
    ['GET', '/sse'], ['GET', '/ws'], ['POST', '/publish'], ['GET', '/healthz'], ['GET', '/metrics'], ['GET', '/admin'],
    ['GET', '/admin/connections'], ['GET', '/admin/api/topics'], ['GET', '/admin/api/connections'], ['GET', '/admin/api/stats'],
    ['GET', '/admin/api/topics/orders/tail'],
    ...['/sse', '/ws', '/publish', '/healthz', '/metrics', '/admin', '/admin/connections', '/admin/api/topics',
      '/admin/api/connections', '/admin/api/stats', '/admin/api/topics/orders/tail'].map((p) => ['OPTIONS', p]),
  ]) {
    const r = await request(method, `${path}?topic=${uniqueTopic('431')}`, { headers: { ...authHeaders(), ...pad } });
    assertJsonError(r, 431, 'headers_too_large', `${method} ${path}`);
  }
  // an unknown path or method: the native runtime checks the size first, the Worker routes first
  const native = config.target === 'native';
  assertJsonError(await request('GET', '/no/such/path', { headers: pad }), native ? 431 : 404, native ? 'headers_too_large' : 'not_found', 'unknown path');
  assertJsonError(await request('DELETE', '/publish', { headers: pad }), native ? 431 : 405, native ? 'headers_too_large' : 'method_not_allowed', 'DELETE /publish');
});

test('400 invalid_request: a malformed query string on the admin API (and /metrics natively)', T, async () => {
  assertJsonError(await request('GET', '/admin/api/stats?a=%zz', { headers: authHeaders() }), 400, 'invalid_request', 'stats');
  assertJsonError(await request('GET', '/admin/api/topics?limit=%zz', { headers: authHeaders() }), 400, 'invalid_request', 'topics');
  const m = await request('GET', '/metrics?a=%zz');
  if (config.target === 'native') assertJsonError(m, 400, 'invalid_request', '/metrics');
  else assertJsonError(m, 404, 'not_found', '/metrics on Cloudflare');
});

test('GET /ws with an upgrade but a bad topic list → 400 JSON, no upgrade', T, async () => {
  const upgrade = [['upgrade', 'websocket'], ['connection', 'Upgrade'], ['sec-websocket-key', 'dGhlIHNhbXBsZSBub25jZQ=='], ['sec-websocket-version', '13']];
  assertJsonError(await rawSend('GET', '/ws?topic=a%20b', upgrade, undefined, { timeoutMs: 5000 }), 400, 'invalid_topic', 'bad topic');
  assertJsonError(await rawSend('GET', '/ws', upgrade, undefined, { timeoutMs: 5000 }), 400, 'missing_topic', 'no topic');
});
