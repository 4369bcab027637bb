// Subscriber tokens for the private-topic tests: the settings the private runs start the target
// with, an HS256 JWT minter (node:crypto only), the catalogue of tokens the gateway must refuse
// or accept (crates/core/src/token.rs is the rule), a raw WebSocket upgrade that reads a
// refusal's status, headers and JSON (which the WebSocket API hides), and the writer of the
// catalogue's bad-input record (test-results/badinput-tokens-<label>.json and .md).

import crypto from 'node:crypto';
import { config } from './config.mjs';
import { rawSend } from './raw.mjs';
import { cell, writeResult } from '../../lib/results.mjs';

/** Two HS256 secrets, as during a rotation: a token signed with either is accepted. */
export const OLD_SECRET = 'e2e-subscriber-secret-old-0123456789abcdef';
export const NEW_SECRET = 'e2e-subscriber-secret-new-0123456789abcdef';
/** Long enough to be a secret, but not configured. */
export const UNKNOWN_SECRET = 'e2e-not-a-configured-secret-0123456789abcdef';

/** Scoped API keys: one may publish to the private topics and to e2e-scope-*, one may use the admin API on e2e-scope-*. */
export const SCOPED_PUBLISH_KEY = 'e2e-scoped-publish-0123456789';
export const SCOPED_ADMIN_KEY = 'e2e-scoped-admin-0123456789';

/**
 * The settings of the private runs (scripts/test.sh `wrangler-dev-private`, tests/native/run.mjs
 * `native-private`): tests/e2e/private_*.test.mjs run only when the target says it has them.
 */
export const PRIVATE_SETTINGS = Object.freeze({
  PRIVATE_TOPICS: 'e2e-priv-*',
  SUBSCRIBER_TOKEN_SECRETS: `${OLD_SECRET},${NEW_SECRET}`,
});
export const SCOPED_SETTING = `${SCOPED_PUBLISH_KEY}:publish:e2e-priv-*|e2e-scope-*,${SCOPED_ADMIN_KEY}:admin:e2e-scope-*`;

/** Whether the target was started with PRIVATE_SETTINGS (its --var list, E2E_VARS). */
export const privateEnabled = () => Object.entries(PRIVATE_SETTINGS).every(([k, v]) => config.vars[k] === v);
export const PRIVATE_SKIP = `target not started with --var 'PRIVATE_TOPICS:${PRIVATE_SETTINGS.PRIVATE_TOPICS}' --var SUBSCRIBER_TOKEN_SECRETS:<the two test secrets of tests/e2e/lib/token_cases.mjs>`;
/** Whether it also has the scoped API keys. */
export const scopedEnabled = () => config.vars.SCOPED_API_KEYS === SCOPED_SETTING;
export const SCOPED_SKIP = `target not started with --var 'SCOPED_API_KEYS:${SCOPED_SETTING}'`;
/** SUBSCRIBER_TOKEN_LEEWAY_S of the target (30 unless its --var says otherwise). */
export const leewayS = () => Number(config.vars.SUBSCRIBER_TOKEN_LEEWAY_S ?? 30);

/** Seconds since the epoch. */
export const nowS = () => Math.floor(Date.now() / 1000);
/** base64url without padding of a string (as is) or of a value's JSON. */
export const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
/** The HS256 signature (base64url) of a signing input. */
export const mac = (input, secret = NEW_SECRET) => crypto.createHmac('sha256', secret).update(input).digest('base64url');

/** `header.claims.signature` from the two encoded segments, MACed with `secret`. */
export function signed(headerB64, claimsB64, secret = NEW_SECRET) {
  const input = `${headerB64}.${claimsB64}`;
  return `${input}.${mac(input, secret)}`;
}

/**
 * An HS256 JWT of `claims` (plus `exp` an hour from now unless claims has its own; `exp:
 * undefined` leaves it out), signed with `secret`.
 */
export function jwt(claims, { secret = NEW_SECRET, header = { alg: 'HS256', typ: 'JWT' } } = {}) {
  const body = { exp: nowS() + 3600, ...claims };
  for (const [k, v] of Object.entries(body)) if (v === undefined) delete body[k];
  return signed(b64(header), b64(body), secret);
}

/** A validly signed token of exactly `length` bytes granting `topics` (a `pad` claim fills it). */
export function tokenOfLength(length, topics) {
  for (let typ = 0; typ < 3; typ++) {
    // base64url never has a length of 4k+1, so the header is varied as well as the padding
    const header = b64({ alg: 'HS256', typ: 'JWT'.padEnd(3 + typ, 'x') });
    for (let pad = Math.max(0, length - 200); pad > 0; pad--) {
      const token = signed(header, b64({ exp: nowS() + 3600, topics, pad: 'x'.repeat(pad) }));
      if (token.length === length) return token;
      if (token.length < length) break;
    }
  }
  throw new Error(`no token of exactly ${length} bytes`);
}

/** The JWT's three segments. */
export const segments = (token) => token.split('.');

const REQUIRED = { status: 401, code: 'token_required', www: /^Bearer$/ };
const FORBIDDEN = { status: 403, code: 'forbidden', www: /^Bearer error="insufficient_scope"$/ };
const OK = { status: 200 };
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** 401 invalid_token with this description (a TokenError text of crates/core/src/token.rs). */
function invalid(description) {
  return {
    status: 401,
    code: 'invalid_token',
    www: new RegExp(`^Bearer error="invalid_token", error_description="${escape(description)}"$`),
    message: `invalid subscriber token: ${description}`,
  };
}

/**
 * The catalogue: one row per case.
 *   name        what the case is
 *   make(ctx)   how the token is made: returns the token (undefined = none), or
 *               { token, via, topics } to override where it goes and what is asked
 *   via         where the token goes: 'query' (default, `?token=`), 'header' (`authorization:
 *               Bearer`), 'cookie' (`sse_token`), or { authorization, query } for two at once
 *   ws          true: subscribe over a WebSocket upgrade instead of SSE
 *   status      expected status (200 = accepted)
 *   code, www   for a refusal: the JSON error code and a pattern of `www-authenticate`
 *   message     for an invalid_token: the exact JSON error message
 * ctx: { topic, other, fresh } — `topic` and `other` are private topics that refused cases ask
 * for (nothing may get attached to them), `fresh(label)` a new private topic for accepted cases.
 * Expected answers are the rules of crates/core/src/token.rs (verify, check_subscribe, token_from).
 */
export function tokenCatalogue() {
  const L = leewayS();
  const good = ({ topic }) => jwt({ topics: [topic] });
  /** A token whose claims segment is `claimsText` as given (not JSON-encoded), validly signed. */
  const rawClaims = (claimsText) => signed(b64({ alg: 'HS256', typ: 'JWT' }), b64(claimsText));
  const withHeader = (header, claimsOf) => (ctx) => jwt(claimsOf ? claimsOf(ctx) : { topics: [ctx.topic] }, { header });
  return [
    // --- no token ---------------------------------------------------------------------------
    { name: 'no token', make: () => undefined, ...REQUIRED },
    { name: 'empty ?token=', make: () => '', ...REQUIRED },
    { name: 'authorization: Bearer with nothing after it', make: () => ({ token: '', via: 'header' }), ...REQUIRED },
    { name: 'another authorization scheme (Basic) is passed over', make: () => ({ token: undefined, via: { authorization: 'Basic dXNlcjpwYXNz' } }), ...REQUIRED },
    { name: 'empty sse_token cookie', make: () => ({ token: '', via: 'cookie' }), ...REQUIRED },
    { name: 'no token, over a WebSocket upgrade', ws: true, make: () => undefined, ...REQUIRED },
    // --- shape ------------------------------------------------------------------------------
    { name: 'one segment', make: () => 'not-a-jwt', ...invalid('the token is not a signed JWT (three dot-separated parts)') },
    { name: 'two segments', make: (c) => segments(good(c)).slice(0, 2).join('.'), ...invalid('the token is not a signed JWT (three dot-separated parts)') },
    { name: 'four segments', make: (c) => `${good(c)}.${b64('x')}`, ...invalid('the token is not a signed JWT (three dot-separated parts)') },
    { name: 'over 8 KiB (8193 bytes, validly signed), by header', make: (c) => ({ token: tokenOfLength(8193, [c.topic]), via: 'header' }), ...invalid('the token is longer than 8192 bytes') },
    { name: 'bad base64 in the header', make: (c) => `***.${segments(good(c))[1]}.${segments(good(c))[2]}`, ...invalid('the token header is not base64url without padding') },
    { name: 'padded base64 in the header', make: (c) => { const [h, p, s] = segments(good(c)); return `${h}==.${p}.${s}`; }, ...invalid('the token header is not base64url without padding') },
    { name: 'bad base64 in the payload (signed as sent)', make: () => signed(b64({ alg: 'HS256' }), 'e30*'), ...invalid('the token claims is not base64url without padding') },
    { name: 'bad base64 in the signature', make: (c) => { const [h, p] = segments(good(c)); return `${h}.${p}.***`; }, ...invalid('the token signature is not base64url without padding') },
    { name: 'header not JSON', make: (c) => signed(b64('{"alg":"HS256"'), segments(good(c))[1]), ...invalid('the token header is not a JSON object') },
    { name: 'header JSON but not an object', make: (c) => signed(b64(['HS256']), segments(good(c))[1]), ...invalid('the token header is not a JSON object') },
    { name: 'payload not JSON (signed)', make: () => rawClaims('{"exp":'), ...invalid('the token claims is not a JSON object') },
    { name: 'payload JSON but not an object (signed)', make: (c) => rawClaims(JSON.stringify([c.topic])), ...invalid('the token claims is not a JSON object') },
    // --- header -----------------------------------------------------------------------------
    { name: 'alg none', make: (c) => `${b64({ alg: 'none', typ: 'JWT' })}.${segments(good(c))[1]}.`, ...invalid('unsigned tokens (alg none) are not accepted') },
    { name: 'alg None', make: (c) => `${b64({ alg: 'None' })}.${segments(good(c))[1]}.`, ...invalid('unsigned tokens (alg none) are not accepted') },
    { name: 'alg NONE, with an HS256 signature', make: withHeader({ alg: 'NONE' }), ...invalid('unsigned tokens (alg none) are not accepted') },
    { name: 'alg none, over a WebSocket upgrade', ws: true, make: (c) => `${b64({ alg: 'none' })}.${segments(good(c))[1]}.`, ...invalid('unsigned tokens (alg none) are not accepted') },
    { name: 'alg HS512', make: withHeader({ alg: 'HS512', typ: 'JWT' }), ...invalid('the token algorithm is not supported (HS256, ES256 or EdDSA)') },
    { name: 'alg RS256', make: withHeader({ alg: 'RS256', typ: 'JWT' }), ...invalid('the token algorithm is not supported (HS256, ES256 or EdDSA)') },
    { name: 'alg hs256 (names are case-sensitive)', make: withHeader({ alg: 'hs256' }), ...invalid('the token algorithm is not supported (HS256, ES256 or EdDSA)') },
    { name: 'no alg', make: withHeader({ typ: 'JWT' }), ...invalid('the token header has no alg') },
    { name: 'alg not a string', make: withHeader({ alg: ['HS256'] }), ...invalid('the token header alg is not a string') },
    { name: 'ES256 header with an HS256 signature (no public key configured)', make: withHeader({ alg: 'ES256', typ: 'JWT' }), ...invalid('no ES256 key is configured') },
    { name: 'EdDSA header with a kid naming an unknown key (no public key configured)', make: withHeader({ alg: 'EdDSA', kid: 'e2e-unknown-kid' }), ...invalid('no EdDSA key is configured') },
    { name: 'kid not a string', make: withHeader({ alg: 'HS256', kid: 7 }), ...invalid('the token header kid is not a string') },
    { name: 'crit header', make: withHeader({ alg: 'HS256', crit: ['exp'] }), ...invalid('the token header has crit, which is not supported') },
    // --- signature --------------------------------------------------------------------------
    { name: 'bad signature (zeros)', make: (c) => { const [h, p] = segments(good(c)); return `${h}.${p}.${Buffer.alloc(32).toString('base64url')}`; }, ...invalid('the token signature does not verify') },
    { name: 'truncated signature', make: (c) => { const [h, p, s] = segments(good(c)); return `${h}.${p}.${Buffer.from(s, 'base64url').subarray(0, 16).toString('base64url')}`; }, ...invalid('the token signature does not verify') },
    { name: 'signed with an unknown secret', make: (c) => jwt({ topics: [c.topic] }, { secret: UNKNOWN_SECRET }), ...invalid('the token signature does not verify') },
    { name: 'payload changed after signing', make: (c) => { const [h, , s] = segments(good(c)); return `${h}.${b64({ exp: nowS() + 3600, topics: ['e2e-priv-*'] })}.${s}`; }, ...invalid('the token signature does not verify') },
    { name: 'bad signature, over a WebSocket upgrade', ws: true, make: (c) => jwt({ topics: [c.topic] }, { secret: UNKNOWN_SECRET }), ...invalid('the token signature does not verify') },
    { name: 'bad signature, in the sse_token cookie', make: (c) => ({ token: jwt({ topics: [c.topic] }, { secret: UNKNOWN_SECRET }), via: 'cookie' }), ...invalid('the token signature does not verify') },
    { name: 'a bad bearer token wins over a good ?token=', make: (c) => ({ token: undefined, via: { authorization: `Bearer ${jwt({ topics: [c.topic] }, { secret: UNKNOWN_SECRET })}`, query: good(c) } }), ...invalid('the token signature does not verify') },
    // --- claims -----------------------------------------------------------------------------
    { name: `expired beyond the leeway (exp = now - ${L} - 60)`, make: (c) => jwt({ topics: [c.topic], exp: nowS() - L - 60 }), ...invalid('the token has expired') },
    { name: 'expired beyond the leeway, over a WebSocket upgrade', ws: true, make: (c) => jwt({ topics: [c.topic], exp: nowS() - L - 60 }), ...invalid('the token has expired') },
    { name: `nbf in the future beyond the leeway (now + ${L} + 60)`, make: (c) => jwt({ topics: [c.topic], nbf: nowS() + L + 60 }), ...invalid('the token is not valid yet (nbf)') },
    { name: `iat in the future beyond the leeway (now + ${L} + 60)`, make: (c) => jwt({ topics: [c.topic], iat: nowS() + L + 60 }), ...invalid('the token is issued in the future (iat)') },
    { name: 'no exp', make: (c) => jwt({ topics: [c.topic], exp: undefined }), ...invalid('the token has no exp claim') },
    { name: 'exp not a number', make: (c) => jwt({ topics: [c.topic], exp: String(nowS() + 3600) }), ...invalid('the token claim exp has the wrong type') },
    { name: 'nbf not a number', make: (c) => jwt({ topics: [c.topic], nbf: 'now' }), ...invalid('the token claim nbf has the wrong type') },
    { name: 'sub not a string', make: (c) => jwt({ topics: [c.topic], sub: 42 }), ...invalid('the token claim sub has the wrong type') },
    { name: 'no topics claim', make: () => jwt({ sub: 'user-42' }), ...invalid('the token has no topics claim') },
    { name: 'topics a string, not an array', make: (c) => jwt({ topics: c.topic }), ...invalid('the token topics claim must be an array of topic names or patterns') },
    { name: 'topics holding a number', make: (c) => jwt({ topics: [c.topic, 42] }), ...invalid('the token topics claim must be an array of topic names or patterns') },
    { name: 'topics holding an invalid pattern', make: (c) => jwt({ topics: [c.topic, 'bad topic'] }), ...invalid('the token topics claim must be an array of topic names or patterns') },
    // --- valid, not granting ------------------------------------------------------------------
    { name: 'a valid token not granting the topic', make: (c) => jwt({ topics: [`${c.topic}-x`] }), ...FORBIDDEN },
    { name: 'a valid token with an empty topics array', make: () => jwt({ topics: [] }), ...FORBIDDEN },
    { name: 'a valid token granting one of two private topics asked', make: (c) => ({ token: good(c), topics: [c.topic, c.other] }), ...FORBIDDEN },
    { name: 'a valid token not granting the topic, over a WebSocket upgrade', ws: true, make: (c) => jwt({ topics: [c.other] }), ...FORBIDDEN },
    // --- accepted, beside ---------------------------------------------------------------------
    { name: 'a granting token (?token=)', make: ({ fresh }) => { const t = fresh('q'); return { token: jwt({ topics: [t] }), topics: [t] }; }, ...OK },
    { name: 'a granting token (authorization: bearer, scheme in lower case)', make: ({ fresh }) => { const t = fresh('h'); return { token: undefined, via: { authorization: `bearer ${jwt({ topics: [t] })}` }, topics: [t] }; }, ...OK },
    { name: 'signed with the old (rotated) secret', make: ({ fresh }) => { const t = fresh('o'); return { token: jwt({ topics: [t] }, { secret: OLD_SECRET }), topics: [t] }; }, ...OK },
    { name: 'expired within the leeway (exp = now - 10)', make: ({ fresh }) => { const t = fresh('e'); return { token: jwt({ topics: [t], exp: nowS() - Math.min(10, L - 5) }), topics: [t] }; }, ...OK },
    { name: 'nbf and iat in the future within the leeway (now + 10)', make: ({ fresh }) => { const t = fresh('n'); const s = nowS() + Math.min(10, L - 5); return { token: jwt({ topics: [t], nbf: s, iat: s }), topics: [t] }; }, ...OK },
    { name: 'a fractional exp', make: ({ fresh }) => { const t = fresh('f'); return { token: jwt({ topics: [t], exp: nowS() + 3600.5 }), topics: [t] }; }, ...OK },
    { name: 'a pattern grant, two topics asked', make: ({ fresh }) => { const t = fresh('p'); return { token: jwt({ topics: [`${t}-*`] }), topics: [`${t}-a`, `${t}-b`] }; }, ...OK },
    { name: 'a private and a public topic, the private one granted', make: ({ fresh, pub }) => { const t = fresh('m'); return { token: jwt({ topics: [t] }), topics: [t, pub('m')] }; }, ...OK },
    { name: 'a public topic with a garbage token (not verified)', make: ({ pub }) => ({ token: 'garbage', topics: [pub('g')] }), ...OK },
    { name: 'exactly 8192 bytes, by header', make: ({ fresh }) => { const t = fresh('8k'); return { token: tokenOfLength(8192, [t]), via: 'header', topics: [t] }; }, ...OK },
    { name: 'an HS256 token with a kid (not used: secrets have no ids)', make: ({ fresh }) => { const t = fresh('k'); return { token: jwt({ topics: [t] }, { header: { alg: 'HS256', kid: 'e2e-unknown-kid' } }), topics: [t] }; }, ...OK },
    { name: 'a granting token, in the sse_token cookie', make: ({ fresh }) => { const t = fresh('c'); return { token: jwt({ topics: [t] }), via: 'cookie', topics: [t] }; }, ...OK },
    { name: 'a granting token, over a WebSocket', ws: true, make: ({ fresh }) => { const t = fresh('w'); return { token: jwt({ topics: [t] }), topics: [t] }; }, ...OK },
  ];
}

/** Where a case's token goes, as { query, headers } for openSse / wsUpgrade. */
export function placeToken(token, via = 'query') {
  const query = {};
  const headers = {};
  if (typeof via === 'object') {
    if (via.authorization !== undefined) headers.authorization = via.authorization;
    if (via.query !== undefined) query.token = via.query;
    return { query, headers };
  }
  if (token === undefined) return { query, headers };
  if (via === 'header') headers.authorization = `Bearer ${token}`;
  else if (via === 'cookie') headers.cookie = `theme=dark; sse_token=${token}`;
  else query.token = token;
  return { query, headers };
}

/**
 * GET /ws as a WebSocket upgrade over a raw socket: resolves with rawRequest's answer
 * ({ status, headers, json, ... }); a 101 is the socket opening (closed at once).
 */
export function wsUpgrade({ query = {}, headers = {}, timeoutMs = 5000 } = {}) {
  const qs = new URLSearchParams(query).toString();
  return rawSend('GET', `/ws${qs ? `?${qs}` : ''}`, [
    ['upgrade', 'websocket'],
    ['connection', 'Upgrade'],
    ['sec-websocket-version', '13'],
    ['sec-websocket-key', crypto.randomBytes(16).toString('base64')],
    ...Object.entries(headers),
  ], undefined, { timeoutMs });
}

/** Where placeToken put a token: 'header', 'query', 'cookie', several joined by '+', or 'none'. */
export function tokenPlacement({ query = {}, headers = {} }) {
  const at = [];
  if (headers.authorization !== undefined) at.push('header');
  if (query.token !== undefined) at.push('query');
  if (headers.cookie !== undefined) at.push('cookie');
  return at.length ? at.join('+') : 'none';
}

/** Random parts of topic names and ids (uniqueTopic's 16 hex, uniqueId's 12) made stable. */
export const stableText = (s) => String(s ?? '').replace(/-[0-9a-f]{16}\b/g, '-<rand>').replace(/-[0-9a-f]{12}\b/g, '-<rand>');

/**
 * The record of a token-catalogue run, as the bad-input suite keeps its own
 * (tests/e2e/badinput.test.mjs): test-results/badinput-tokens-<label>.json and .md, the label
 * being E2E_LABEL (run.mjs --label) or the target. `cases` are
 * { name, transport, token_in, topics, expected: { status, code, www }, observed: { status,
 * code, www_authenticate }, result, failure? }; `sentinels` are { name, transport, token_in,
 * connected, received, result, failure? }. Nothing random goes into the Markdown.
 */
export function writeTokenRecord({ cases, sentinels }) {
  const label = process.env.E2E_LABEL || config.target;
  const failed = cases.filter((c) => c.result !== 'passed').length;
  const alive = sentinels.filter((s) => s.result === 'passed').length;
  const pair = (status, code) => [status ?? '—', code ?? ''].join(' ').trim();
  const md = [
    `# Bad-input catalogue: subscriber tokens — ${label}`, '',
    'Each token of tests/e2e/lib/token_cases.mjs was sent to a live gateway (GET /sse, or a WebSocket upgrade of GET /ws); a refusal must answer its status, JSON error code and www-authenticate, echo nothing of the token and attach nothing. Two unrelated subscribers opened before the cases (a public topic without a token, a private topic with a valid token) must still be connected after them and receive a publish.', '',
    `**${cases.length} cases: ${cases.length - failed} passed, ${failed} failed; sentinels: ${alive} of ${sentinels.length} still connected and receiving**`, '',
    '| case | transport | token in | expected | observed | www-authenticate | result |', '|---|---|---|---|---|---|---|',
    ...cases.map((c) => `| ${cell(c.name)} | ${c.transport} | ${c.token_in} | ${pair(c.expected.status, c.expected.code)} | ${pair(c.observed.status, c.observed.code)} | ${cell(c.observed.www_authenticate ?? '')} | ${c.result}${c.failure ? `: ${cell(c.failure)}` : ''} |`),
    '',
    '| sentinel | transport | token in | still connected | received a publish | result |', '|---|---|---|---|---|---|',
    ...sentinels.map((s) => `| ${cell(s.name)} | ${s.transport} | ${s.token_in} | ${s.connected ? 'yes' : 'no'} | ${s.received ? 'yes' : 'no'} | ${s.result}${s.failure ? `: ${cell(s.failure)}` : ''} |`),
    '',
  ];
  const json = { suite: 'badinput-tokens', target: config.target, label, cases, sentinels };
  return writeResult(`badinput-tokens-${label}`, JSON.parse(stableText(JSON.stringify(json))), stableText(md.join('\n')));
}
