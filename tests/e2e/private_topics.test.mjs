// Private topics (PRIVATE_TOPICS): a subscriber needs a token (an HS256 JWT here) that grants
// every private topic it asks for; other topics stay anonymous. Needs the target started with
//   --var 'PRIVATE_TOPICS:e2e-priv-*' --var SUBSCRIBER_TOKEN_SECRETS:<OLD>,<NEW>
// (the two secrets below: a token signed with either is accepted, as during a rotation).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  config, subscribe, openSse, openWs, publishOk, uniqueTopic, uniqueId, assertJsonError, closeStreamsAfterFile,
} from './lib/index.mjs';

closeStreamsAfterFile();

export const OLD_SECRET = 'e2e-subscriber-secret-old-0123456789abcdef';
export const NEW_SECRET = 'e2e-subscriber-secret-new-0123456789abcdef';
const ENABLED = config.vars.PRIVATE_TOPICS === 'e2e-priv-*' && config.vars.SUBSCRIBER_TOKEN_SECRETS === `${OLD_SECRET},${NEW_SECRET}`;
const SKIP = `target not started with --var 'PRIVATE_TOPICS:e2e-priv-*' --var SUBSCRIBER_TOKEN_SECRETS:<the two test secrets>`;

const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
/** An HS256 JWT of `claims` (exp an hour from now unless given), signed with `secret`. */
function jwt(claims, { secret = NEW_SECRET, header = { alg: 'HS256', typ: 'JWT' } } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64(header)}.${b64({ exp: now + 3600, ...claims })}`;
  return `${input}.${crypto.createHmac('sha256', secret).update(input).digest('base64url')}`;
}

function assertRefused(r, status, code, wwwAuthenticate) {
  assertJsonError(r, status, code);
  assert.match(r.headers['www-authenticate'] ?? '', wwwAuthenticate, `www-authenticate of a ${status} ${code}`);
}

test('private topics: anonymous topics stay open; a private one needs a token', { skip: !ENABLED && SKIP }, async () => {
  const open = await subscribe({ query: { topic: uniqueTopic('e2e-pub') } });
  open.close();
  const r = await openSse({ query: { topic: `e2e-priv-${uniqueId('u')}` } });
  assertRefused(r, 401, 'token_required', /^Bearer$/);
});

test('private topics: a granted subscriber receives events, by each token source', { skip: !ENABLED && SKIP }, async () => {
  const topic = `e2e-priv-${uniqueId('u')}`;
  const token = jwt({ sub: 'user-42', topics: [topic] });
  const byHeader = await subscribe({ query: { topic }, headers: { authorization: `Bearer ${token}` } });
  const byQuery = await subscribe({ query: { topic, token } });
  const byCookie = await subscribe({ query: { topic }, headers: { cookie: `theme=dark; sse_token=${token}` } });
  const ws = await openWs({ query: { topic, token } });
  try {
    const id = uniqueId('p');
    const res = await publishOk({ topics: topic, id, body: 'secret' });
    assert.deepEqual(res.topics[topic], { delivered: 4 });
    for (const c of [byHeader, byQuery, byCookie]) {
      await c.waitForCount(1, 10_000);
      assert.deepEqual(c.published.map((e) => [e.id, e.data]), [[id, 'secret']]);
    }
    await ws.waitFor((c) => c.envelopes.length >= 1, 10_000, 'the event on the WebSocket');
    assert.equal(ws.envelopes[0].id, id);
  } finally {
    for (const c of [byHeader, byQuery, byCookie, ws]) c.close();
  }
});

test('private topics: grants by pattern, with either rotated secret', { skip: !ENABLED && SKIP }, async () => {
  const user = uniqueId('u');
  const topics = [`e2e-priv-${user}-a`, `e2e-priv-${user}-b`];
  for (const secret of [OLD_SECRET, NEW_SECRET]) {
    const c = await subscribe({ query: { topic: topics.join(','), token: jwt({ topics: [`e2e-priv-${user}-*`] }, { secret }) } });
    c.close();
  }
});

test('private topics: refused tokens are 401, a topic not granted is 403, nothing attached', { skip: !ENABLED && SKIP }, async () => {
  const topic = `e2e-priv-${uniqueId('u')}`;
  const now = Math.floor(Date.now() / 1000);
  const good = jwt({ topics: [topic] });
  const [h, c] = good.split('.');
  const cases = [
    ['malformed', 'not-a-jwt'],
    ['two segments', `${h}.${c}`],
    ['bad base64', `${h}.${c}.***`],
    ['alg none', `${b64({ alg: 'none' })}.${c}.`],
    ['bad signature', `${h}.${c}.${Buffer.alloc(32).toString('base64url')}`],
    ['another secret', jwt({ topics: [topic] }, { secret: 'e2e-not-a-configured-secret-0123456789' })],
    ['expired', jwt({ topics: [topic], exp: now - 3600 })],
    ['not yet valid', jwt({ topics: [topic], nbf: now + 3600 })],
    ['ES256 not configured', jwt({ topics: [topic] }, { header: { alg: 'ES256', kid: 'k1' } })],
  ];
  for (const [label, token] of cases) {
    const r = await openSse({ query: { topic, token } });
    assertRefused(r, 401, 'invalid_token', /^Bearer error="invalid_token"/);
    assert.ok(!JSON.stringify(r.json).includes(token.slice(-10)) || token.length < 12, `${label}: the answer does not echo the token`);
  }
  // Valid, but not for every requested topic: the whole subscription is refused.
  const other = `e2e-priv-${uniqueId('v')}`;
  const r = await openSse({ query: { topic: `${topic},${other}`, token: good } });
  assertRefused(r, 403, 'forbidden', /^Bearer error="insufficient_scope"$/);
  // Nobody got attached by any of these: a publish finds no subscriber.
  const res = await publishOk({ topics: topic, id: uniqueId('p'), body: 'x' });
  assert.equal(res.topics[topic].delivered ?? 0, 0, JSON.stringify(res));
  await assert.rejects(openWs({ query: { topic } }), /WebSocket .* error/);
});
