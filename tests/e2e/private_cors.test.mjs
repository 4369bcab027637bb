// Cookie mode and credentialed CORS (CREDENTIALED_ORIGINS): a request whose Origin is listed is
// answered with that origin, access-control-allow-credentials: true and vary: origin (SSE, JSON,
// errors, preflights); any other keeps access-control-allow-origin: * without credentials. A
// subscriber token read from the cookie counts only with no Origin, an Origin on the gateway's
// own host, or a listed one; from any other page the cookie is ignored (401 token_required on a
// private topic), over SSE and WebSocket alike. Needs the target started with the settings of
// tests/e2e/lib/token_cases.mjs (as private_topics.test.mjs) plus
//   --var CREDENTIALED_ORIGINS:http://app.e2e.test
// skipped otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  config, subscribe, openSse, request, publishOk, hostHeader, baseUrl, uniqueTopic, uniqueId, assertJsonError,
  closeStreamsAfterFile,
} from './lib/index.mjs';
import { jwt, wsUpgrade, privateEnabled, PRIVATE_SKIP } from './lib/token_cases.mjs';

closeStreamsAfterFile();

/** The origin the target lists in CREDENTIALED_ORIGINS. */
export const LISTED = 'http://app.e2e.test';
const UNLISTED = 'http://elsewhere.e2e.test';
/** The gateway's own origin (same host and port as the requests are sent to). */
const OWN = () => `${baseUrl().protocol}//${hostHeader()}`;

const ENABLED = privateEnabled() && config.vars.CREDENTIALED_ORIGINS === LISTED;
const SKIP = !privateEnabled() ? PRIVATE_SKIP : `target not started with --var CREDENTIALED_ORIGINS:${LISTED}`;
const T = { skip: !ENABLED && SKIP, timeout: 60_000 };

const privTopic = (label = 'c') => `e2e-priv-${uniqueId(label)}`;

/** The answer carries the credentialed CORS headers for `origin`. */
function assertCredentialed(headers, origin, context) {
  assert.equal(headers['access-control-allow-origin'], origin, `${context}: access-control-allow-origin`);
  assert.equal(headers['access-control-allow-credentials'], 'true', `${context}: access-control-allow-credentials`);
  assert.match(String(headers.vary ?? ''), /(^|,\s*)origin(\s*,|$)/i, `${context}: vary`);
}

/** The answer carries `*` and no credentials. */
function assertAnyOrigin(headers, context) {
  assert.equal(headers['access-control-allow-origin'], '*', `${context}: access-control-allow-origin`);
  assert.equal(headers['access-control-allow-credentials'], undefined, `${context}: access-control-allow-credentials`);
}

/** A JSON error answer with its status and code (whatever its CORS headers). */
function assertError(r, status, code, context) {
  assert.equal(r.status, status, `${context}: status (${String(r.text ?? r.body ?? '').slice(0, 200)})`);
  assert.match(String(r.headers['content-type'] ?? ''), /application\/json/i, `${context}: content-type`);
  assert.equal(r.json?.error?.code, code, `${context}: error code`);
}

const preflight = (origin) => request('OPTIONS', '/sse', {
  headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'last-event-id' },
});

test('credentialed CORS: a listed Origin is echoed with credentials on SSE, JSON, errors and preflights', T, async () => {
  const c = await subscribe({ query: { topic: uniqueTopic('cors') }, headers: { origin: LISTED } });
  try {
    assertCredentialed(c.headers, LISTED, 'SSE stream');
    assert.equal(c.headers['content-type'], 'text/event-stream');
  } finally {
    c.close();
  }
  // A refused subscription (read by the page thanks to the credentials).
  const refused = await openSse({ query: { topic: privTopic() }, headers: { origin: LISTED } });
  assertError(refused, 401, 'token_required', 'SSE 401');
  assertCredentialed(refused.headers, LISTED, 'SSE 401');
  // Other JSON answers and errors.
  const health = await request('GET', '/healthz', { headers: { origin: LISTED } });
  assert.equal(health.status, 200);
  assertCredentialed(health.headers, LISTED, 'healthz');
  const unauthorized = await request('POST', '/publish', { headers: { origin: LISTED, 'x-sse-topic': 'x', 'x-sse-id': 'x' }, body: 'x' });
  assertError(unauthorized, 401, 'unauthorized', 'publish without a key');
  assertCredentialed(unauthorized.headers, LISTED, 'publish without a key');
  const missing = await request('GET', '/nope', { headers: { origin: LISTED } });
  assertError(missing, 404, 'not_found', '404');
  assertCredentialed(missing.headers, LISTED, '404');
  // The preflight, keeping its other headers.
  const pre = await preflight(LISTED);
  assert.equal(pre.status, 204);
  assertCredentialed(pre.headers, LISTED, 'preflight');
  assert.match(pre.headers['access-control-allow-headers'] ?? '', /last-event-id/);
  assert.match(pre.headers['access-control-allow-methods'] ?? '', /GET/);
  // Compared case-insensitively, echoed as sent.
  const upper = await request('GET', '/healthz', { headers: { origin: 'HTTP://APP.e2e.test' } });
  assertCredentialed(upper.headers, 'HTTP://APP.e2e.test', 'origin in another case');
});

test('credentialed CORS: any other Origin (or none) gets * and no credentials', T, async () => {
  for (const [label, headers] of [['unlisted', { origin: UNLISTED }], ['null', { origin: 'null' }], ['none', {}], ['a path', { origin: `${LISTED}/x` }]]) {
    const c = await subscribe({ query: { topic: uniqueTopic('cors') }, headers });
    c.close();
    assertAnyOrigin(c.headers, `${label}: SSE stream`);
    const refused = await openSse({ query: { topic: privTopic() }, headers });
    assertJsonError(refused, 401, 'token_required', `${label}: SSE 401`);
    assertAnyOrigin(refused.headers, `${label}: SSE 401`);
    const missing = await request('GET', '/nope', { headers });
    assertJsonError(missing, 404, 'not_found', `${label}: 404`);
    assertAnyOrigin(missing.headers, `${label}: 404`);
    if (headers.origin) {
      const pre = await preflight(headers.origin);
      assert.equal(pre.status, 204);
      assertAnyOrigin(pre.headers, `${label}: preflight`);
    }
  }
});

test('cookie mode (SSE): the cookie counts with no Origin, the own host or a listed Origin; not from another page', T, async () => {
  const topic = privTopic('sse');
  const token = jwt({ sub: 'cookie-user', topics: [topic] });
  const cookie = `theme=dark; sse_token=${token}`;
  // Another site's page: the cookie is ignored, so the private topic asks for a token.
  for (const origin of [UNLISTED, 'null', `${LISTED}.evil.test`, 'https://app.e2e.test']) {
    const r = await openSse({ query: { topic }, headers: { cookie, origin } });
    assertJsonError(r, 401, 'token_required', `cookie from ${origin}`);
    assert.equal(r.headers['www-authenticate'], 'Bearer', `cookie from ${origin}: www-authenticate`);
  }
  // A token the page sends itself is not affected.
  const byQuery = await subscribe({ query: { topic, token }, headers: { origin: UNLISTED } });
  const accepted = [byQuery];
  try {
    for (const [label, headers] of [['listed', { origin: LISTED }], ['no Origin', {}], ['own host', { origin: OWN() }]]) {
      const c = await subscribe({ query: { topic }, headers: { cookie, ...headers } });
      accepted.push(c);
      assert.deepEqual(c.connected?.topics, [topic], `${label}: the connected frame`);
    }
    const id = uniqueId('p');
    const res = await publishOk({ topics: topic, id, body: 'for the cookie' });
    assert.deepEqual(res.topics[topic], { delivered: accepted.length });
    for (const c of accepted) {
      await c.waitForCount(1, 10_000);
      assert.deepEqual(c.published.map((e) => [e.id, e.data]), [[id, 'for the cookie']]);
    }
  } finally {
    for (const c of accepted) c.close();
  }
});

test('cookie mode (WebSocket): the same origin rule, where the browser applies no CORS', T, async () => {
  const topic = privTopic('ws');
  const cookie = `sse_token=${jwt({ topics: [topic] })}`;
  for (const origin of [UNLISTED, 'null']) {
    const r = await wsUpgrade({ query: { topic }, headers: { cookie, origin } });
    assertJsonError(r, 401, 'token_required', `WebSocket cookie from ${origin}`);
    assertAnyOrigin(r.headers, `WebSocket cookie from ${origin}`);
  }
  for (const [label, headers] of [['listed', { origin: LISTED }], ['no Origin', {}], ['own host', { origin: OWN() }]]) {
    const r = await wsUpgrade({ query: { topic }, headers: { cookie, ...headers } });
    assert.equal(r.status, 101, `WebSocket cookie, ${label}: ${r.status} ${String(r.text ?? '').slice(0, 200)}`);
  }
});
