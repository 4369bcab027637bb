// API keys on publish and on the admin API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  subscribe, publish, uniqueTopic, uniqueId, request, adminGet, assertJsonError, openSse,
  rawSend, config, closeStreamsAfterFile, heldBackHint,
} from './lib/index.mjs';

closeStreamsAfterFile();
const T = { timeout: 30_000 };
const WRONG = `${config.apiKey}-wrong`;

test('auth: publish without a key → 401', T, async () => {
  const t = uniqueTopic('nokey');
  const c = await subscribe({ headers: { 'x-sse-topic': t } });
  try {
    const r = await publish({ topics: t, id: uniqueId(), body: 'x', auth: 'none' });
    assertJsonError(r, 401, 'unauthorized');
    const ok = uniqueId('ok');
    const r2 = await publish({ topics: t, id: ok, body: 'ok' });
    assert.equal(r2.status, 202, r2.text);
    await c.waitForEvent((e) => e.id === ok);
    assert.deepEqual(c.published.map((e) => e.id), [ok], 'the unauthorized event reached the subscriber');
  } finally { c.close(); }
});

test('auth: publish with a wrong Bearer key → 401', T, async () => {
  const r = await publish({ topics: uniqueTopic('wrongb'), id: uniqueId(), body: 'x', auth: 'bearer', key: WRONG });
  assertJsonError(r, 401, 'unauthorized');
});

test('auth: publish with a wrong x-api-key → 401', T, async () => {
  const r = await publish({ topics: uniqueTopic('wrongx'), id: uniqueId(), body: 'x', auth: 'x-api-key', key: WRONG });
  assertJsonError(r, 401, 'unauthorized');
});

test('auth: publish with a malformed authorization header → 401', T, async () => {
  for (const value of [`Basic ${Buffer.from(`user:${config.apiKey}`).toString('base64')}`, 'Bearer', 'Bearer ', `Bearer ${config.apiKey}x`, `Bearer ${config.apiKey.slice(0, -1)}`]) {
    const r = await publish({ topics: uniqueTopic('malformed'), id: uniqueId(), body: 'x', auth: 'none', headers: { authorization: value } });
    assertJsonError(r, 401, 'unauthorized', `authorization: ${JSON.stringify(value)}`);
  }
});

test('auth: publish accepts authorization: Bearer <key>', T, async () => {
  const t = uniqueTopic('bearer');
  const c = await subscribe({ headers: { 'x-sse-topic': t } });
  try {
    const id = uniqueId();
    const r = await publish({ topics: t, id, body: 'b', auth: 'bearer' });
    assert.equal(r.status, 202, r.text);
    await c.waitForEvent((e) => e.id === id);
  } finally { c.close(); }
});

test('auth: publish accepts x-api-key: <key>', T, async () => {
  const t = uniqueTopic('xapikey');
  const c = await subscribe({ headers: { 'x-sse-topic': t } });
  try {
    const id = uniqueId();
    const r = await publish({ topics: t, id, body: 'x', auth: 'x-api-key' });
    assert.equal(r.status, 202, r.text);
    await c.waitForEvent((e) => e.id === id);
  } finally { c.close(); }
});

test('auth: 401 is answered without reading the body', T, async () => {
  // a live topic, no key, a declared body that never comes: the 401 must not wait for it
  const t = uniqueTopic('401nobody');
  const c = await subscribe({ headers: { 'x-sse-topic': t } });
  try {
    const r = await rawSend('POST', '/publish', [
      ['x-sse-topic', t], ['x-sse-id', uniqueId()], ['content-length', '1000'],
    ], undefined, { timeoutMs: 5000 });
    assert.ok(r.status !== null, `no response within 5 s (timedOut=${r.timedOut})${heldBackHint()}`);
    assertJsonError(r, 401, 'unauthorized');
  } finally { c.close(); }
});

const ADMIN_PATHS = ['/admin/api/topics', '/admin/api/connections'];

test('auth: admin API without a key → 401', T, async () => {
  for (const p of ADMIN_PATHS) {
    assertJsonError(await request('GET', p), 401, 'unauthorized', `GET ${p}`);
  }
});

test('auth: admin API with a wrong key → 401 (Bearer and x-api-key)', T, async () => {
  for (const p of ADMIN_PATHS) {
    assertJsonError(await adminGet(p, undefined, { auth: 'bearer', key: WRONG }), 401, 'unauthorized', `GET ${p} (Bearer)`);
    assertJsonError(await adminGet(p, undefined, { auth: 'x-api-key', key: WRONG }), 401, 'unauthorized', `GET ${p} (x-api-key)`);
  }
});

test('auth: admin API accepts Bearer and x-api-key', T, async () => {
  for (const p of ADMIN_PATHS) {
    for (const how of ['bearer', 'x-api-key']) {
      const r = await adminGet(p, { limit: 1 }, { auth: how });
      assert.equal(r.status, 200, `GET ${p} with ${how}: ${r.status} ${r.text.slice(0, 200)}`);
      assert.ok(r.json && typeof r.json === 'object');
    }
  }
});

test('auth: tail without a key or with a wrong key → 401', T, async () => {
  const t = uniqueTopic('tail401');
  const path = `/admin/api/topics/${t}/tail`;
  const r1 = await openSse({ path });
  assert.ok(r1.isError, 'tail opened without a key');
  assertJsonError(r1, 401, 'unauthorized', 'tail without key');
  const r2 = await openSse({ path, headers: { authorization: `Bearer ${WRONG}` } });
  assert.ok(r2.isError, 'tail opened with a wrong key');
  assertJsonError(r2, 401, 'unauthorized', 'tail with wrong key');
  const ok = await openSse({ path, headers: { 'x-api-key': config.apiKey } });
  try {
    assert.equal(ok.status, 200, `tail with x-api-key: ${ok.status} ${ok.body ?? ''}`);
  } finally { ok.close?.(); }
});
