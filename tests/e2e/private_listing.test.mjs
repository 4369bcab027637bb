// The subscriber token's `sub` in the admin connection listing: a connection that opened with a
// token naming a `sub` is listed with it (`GET /admin/api/connections`); one that opened
// without a token, or with a token without `sub`, has no `sub` field. Needs the target started
// like tests/e2e/private_topics.test.mjs:
//   --var 'PRIVATE_TOPICS:e2e-priv-*' --var SUBSCRIBER_TOKEN_SECRETS:<OLD>,<NEW>
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  config, subscribe, openWs, uniqueTopic, uniqueId, listAllConnections, poll, closeStreamsAfterFile,
} from './lib/index.mjs';

closeStreamsAfterFile();

const OLD_SECRET = 'e2e-subscriber-secret-old-0123456789abcdef';
const NEW_SECRET = 'e2e-subscriber-secret-new-0123456789abcdef';
const ENABLED = config.vars.PRIVATE_TOPICS === 'e2e-priv-*' && config.vars.SUBSCRIBER_TOKEN_SECRETS === `${OLD_SECRET},${NEW_SECRET}`;
const SKIP = `target not started with --var 'PRIVATE_TOPICS:e2e-priv-*' --var SUBSCRIBER_TOKEN_SECRETS:<the two test secrets>`;
const T = { timeout: 60_000, skip: !ENABLED && SKIP };

const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
/** An HS256 JWT of `claims` (exp an hour from now unless given), signed with `secret`. */
function jwt(claims, { secret = NEW_SECRET, header = { alg: 'HS256', typ: 'JWT' } } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64(header)}.${b64({ exp: now + 3600, ...claims })}`;
  return `${input}.${crypto.createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** The connections listed for `topic` once every id in `ids` is there, by id. */
async function listed(topic, ids) {
  return poll(async () => {
    const { connections } = await listAllConnections({ topic });
    const byId = Object.fromEntries(connections.map((c) => [c.id, c]));
    return ids.every((id) => byId[id]) ? byId : null;
  }, { timeoutMs: 10_000, label: `${ids.join(', ')} listed for ${topic}` });
}

test('admin listing: a connection opened with a token is listed with its sub, SSE and WebSocket', T, async () => {
  const priv = `e2e-priv-${uniqueId('u')}`;
  const pub = uniqueTopic('pub-listing');
  // Unique, and with characters that must survive every hop (query strings, JSON, records).
  const sub = `auth0|e2e ${uniqueId('user')} é/+&=`;
  const token = jwt({ sub, topics: [priv] });
  const sse = await subscribe({ query: { topic: `${priv},${pub}` }, headers: { authorization: `Bearer ${token}` } });
  const ws = await openWs({ query: { topic: priv, token } });
  const anonymous = await subscribe({ query: { topic: pub } });
  try {
    const [sseId, wsId] = [sse.connectionId, ws.connected.connection_id];
    const onPriv = await listed(priv, [sseId, wsId]);
    assert.equal(onPriv[sseId].transport, 'sse');
    assert.equal(onPriv[wsId].transport, 'ws');
    for (const id of [sseId, wsId]) assert.equal(onPriv[id].sub, sub, `sub of ${id}: ${JSON.stringify(onPriv[id])}`);
    // The public topic lists the token's SSE connection with its sub, the anonymous one without.
    const onPub = await listed(pub, [sseId, anonymous.connectionId]);
    assert.equal(onPub[sseId].sub, sub);
    assert.ok(!('sub' in onPub[anonymous.connectionId]), `no sub without a token: ${JSON.stringify(onPub[anonymous.connectionId])}`);
    // The unfiltered listing says the same.
    const { connections: all } = await listAllConnections();
    assert.deepEqual(all.filter((c) => c.sub === sub).map((c) => c.id).sort(), [sseId, wsId].sort());
  } finally {
    for (const c of [sse, ws, anonymous]) c.close();
  }
});

test('admin listing: a token without sub lists no sub', T, async () => {
  const priv = `e2e-priv-${uniqueId('u')}`;
  const token = jwt({ topics: [priv] });
  const sse = await subscribe({ query: { topic: priv, token } });
  const ws = await openWs({ query: { topic: priv, token } });
  try {
    const [sseId, wsId] = [sse.connectionId, ws.connected.connection_id];
    const onPriv = await listed(priv, [sseId, wsId]);
    for (const id of [sseId, wsId]) assert.ok(!('sub' in onPriv[id]), `no sub: ${JSON.stringify(onPriv[id])}`);
  } finally {
    sse.close();
    ws.close();
  }
});
