// How a subscriber example behaves when its connection breaks, checked against a scripted SSE
// server on loopback (the gateway cannot be told to drop a stream, answer 503, or drain on
// demand). This tests the client, not the gateway; the matrix in run.mjs tests both together.
//
// The script, one step per connection the subscriber makes:
//   1. `retry: 200`, `connected`, event r-1, then the server ends the stream
//      -> the subscriber reconnects after its backoff, sending Last-Event-ID: r-1
//   2. 503 with `retry-after: 1`
//      -> it waits at least 1 s, and sends Last-Event-ID: r-1 again
//   3. `retry: 5000`, `connected`, event r-2, then `event: reconnect` (a draining node)
//      -> it reconnects at once (well under the 2.5 s its backoff would give), Last-Event-ID: r-2
//   4. `connected`, event r-3 -> with --max 3 it prints r-3 and exits 0
// Every request must ask for `/sse?envelope=json` with the topics in `x-sse-topic`.
// An expired subscriber token (`event: reconnect` with reason token_expired) is scripted below.

import crypto from 'node:crypto';
import http from 'node:http';

const envelope = (id, data) => JSON.stringify({ topic: 'rc-topic', id, event: 'note', data, ts: 1 });
const frame = (id, data) => `id: ${id}\nevent: note\ndata: ${envelope(id, data)}\n\n`;
const connected = (retry) => `retry: ${retry}\nevent: connected\ndata: {"connection_id":"c-test","topics":["rc-topic","rc-other"]}\n\n`;

/** Start the scripted server; resolves { url, requests, close }. */
export function startScriptedServer() {
  const requests = []; // { at, url, topic, lastEventId }
  const open = new Set();
  const server = http.createServer((req, res) => {
    open.add(res);
    res.on('close', () => open.delete(res));
    const step = requests.push({ at: Date.now(), url: req.url, topic: req.headers['x-sse-topic'], lastEventId: req.headers['last-event-id'] ?? null });
    const sse = () => res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    switch (step) {
      case 1:
        sse();
        res.end(connected(200) + frame('r-1', 'one'));
        break;
      case 2:
        res.writeHead(503, { 'retry-after': '1', 'content-type': 'application/json' });
        res.end('{"error":{"code":"connection_limit","message":"try later"}}');
        break;
      case 3:
        sse();
        res.write(connected(5000) + frame('r-2', 'two'));
        setTimeout(() => res.write('event: reconnect\ndata: {"reason":"shutdown"}\n\n'), 50);
        break; // left open: the client must leave by itself
      case 4:
        sse();
        res.write(connected(5000) + frame('r-3', 'three'));
        break;
      default:
        sse();
        res.write(connected(5000));
    }
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({
      url: `http://127.0.0.1:${server.address().port}`,
      requests,
      close: () => { for (const r of open) r.destroy(); server.close(); },
    }));
  });
}

/** What went wrong, judged from the server's log and the subscriber's output ([] = passed). */
export function judgeReconnect({ requests, stdout, exitCode }) {
  const problems = [];
  const ids = stdout.split('\n').filter(Boolean).map((l) => { try { return JSON.parse(l).id; } catch { return `(bad line ${l.slice(0, 40)})`; } });
  if (ids.join() !== 'r-1,r-2,r-3') problems.push(`printed ids ${JSON.stringify(ids)}, want r-1,r-2,r-3`);
  if (exitCode !== 0) problems.push(`exit code ${exitCode}, want 0 after --max 3`);
  if (requests.length < 4) problems.push(`made ${requests.length} request(s), want 4`);
  for (const [k, r] of requests.slice(0, 4).entries()) {
    if (!/^\/sse\?(.*&)?envelope=json(&|$)/.test(r.url)) problems.push(`request ${k + 1}: url ${r.url}`);
    if (r.topic !== 'rc-topic,rc-other') problems.push(`request ${k + 1}: x-sse-topic ${JSON.stringify(r.topic)}`);
  }
  const want = [null, 'r-1', 'r-1', 'r-2'];
  for (let k = 0; k < Math.min(4, requests.length); k++) {
    if ((requests[k].lastEventId ?? null) !== want[k]) problems.push(`request ${k + 1}: Last-Event-ID ${JSON.stringify(requests[k].lastEventId)}, want ${JSON.stringify(want[k])}`);
  }
  if (requests.length >= 3) {
    const gap = requests[2].at - requests[1].at;
    if (gap < 950) problems.push(`retried ${gap} ms after a 503 with retry-after: 1`);
  }
  if (requests.length >= 4) {
    const gap = requests[3].at - requests[2].at;
    if (gap > 2000) problems.push(`took ${gap} ms to reconnect after event: reconnect (should be at once)`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// An expired subscriber token, against a second scripted server that checks the bearer token
// (an HS256 JWT with the secret given) on every request:
//   1. token with sub "first": `retry: 5000`, `connected`, event t-1, then
//      `event: reconnect` / {"reason":"token_expired"}, and the stream ends (as the gateway does)
//   with --token-command:
//      -> the subscriber runs the command and reconnects at once (well under the 2.5 s its
//         backoff would give) with the command's token (sub "refreshed") and Last-Event-ID: t-1
//   2. `connected`, event t-2 -> with --max 2 it prints t-2 and exits 0
//   without a token command: it exits 1 after t-1, saying the token expired, and does not
//   reconnect (its old token would be refused).

/** An HS256 JWT of `claims` (for the first token the subscriber is given). */
export function signHs256(claims, secret) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${input}.${crypto.createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** The claims of an HS256 JWT whose signature `secret` verifies; null for anything else. */
export function verifyHs256(token, secret) {
  const parts = String(token ?? '').split('.');
  if (parts.length !== 3) return null;
  try {
    const header = JSON.parse(Buffer.from(parts[0], 'base64url'));
    if (header.alg !== 'HS256') return null;
    const want = crypto.createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest();
    const got = Buffer.from(parts[2], 'base64url');
    if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) return null;
    return JSON.parse(Buffer.from(parts[1], 'base64url'));
  } catch {
    return null;
  }
}

const tokenEnvelope = (id, data) => JSON.stringify({ topic: 'rc-private', id, event: 'note', data, ts: 1 });
const tokenFrame = (id, data) => `id: ${id}\nevent: note\ndata: ${tokenEnvelope(id, data)}\n\n`;
const tokenConnected = 'retry: 5000\nevent: connected\ndata: {"connection_id":"c-token","topics":["rc-private"]}\n\n';

/** Start the token-checking scripted server; resolves { url, requests, close }. */
export function startTokenServer(secret) {
  const requests = []; // { at, url, topic, lastEventId, bearer, claims }
  const open = new Set();
  const server = http.createServer((req, res) => {
    open.add(res);
    res.on('close', () => open.delete(res));
    const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? null;
    const claims = verifyHs256(bearer, secret);
    const step = requests.push({ at: Date.now(), url: req.url, topic: req.headers['x-sse-topic'], lastEventId: req.headers['last-event-id'] ?? null, bearer, claims });
    if (!claims) {
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' });
      res.end(`{"error":{"code":"${bearer ? 'invalid_token' : 'token_required'}","message":"scripted"}}`);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    if (step === 1) {
      res.write(tokenConnected + tokenFrame('t-1', 'one'));
      setTimeout(() => res.end('event: reconnect\ndata: {"reason":"token_expired"}\n\n'), 50);
    } else if (step === 2) {
      res.write(tokenConnected + tokenFrame('t-2', 'two'));
    } else {
      res.write(tokenConnected);
    }
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({
      url: `http://127.0.0.1:${server.address().port}`,
      requests,
      close: () => { for (const r of open) r.destroy(); server.close(); },
    }));
  });
}

/** What went wrong with an expired token ([] = passed); withCommand: a token command was given. */
export function judgeTokenRefresh({ requests, stdout, stderr, exitCode, withCommand }) {
  const problems = [];
  const ids = stdout.split('\n').filter(Boolean).map((l) => { try { return JSON.parse(l).id; } catch { return `(bad line ${l.slice(0, 40)})`; } });
  const want = withCommand ? 't-1,t-2' : 't-1';
  if (ids.join() !== want) problems.push(`printed ids ${JSON.stringify(ids)}, want ${want}`);
  const first = requests[0];
  if (!first) problems.push('made no request');
  else if (!first.bearer) problems.push('request 1: no authorization: Bearer token');
  else if (first.claims?.sub !== 'first') problems.push(`request 1: a token that does not verify or is not the one given (sub ${JSON.stringify(first.claims?.sub)})`);
  if (withCommand) {
    if (exitCode !== 0) problems.push(`exit code ${exitCode}, want 0 after --max 2`);
    const second = requests[1];
    if (!second) problems.push('did not reconnect after token_expired');
    else {
      if (!second.claims) problems.push(`request 2: token ${second.bearer ? 'does not verify' : 'missing'}`);
      else if (second.claims.sub !== 'refreshed' || !second.claims.topics?.includes('rc-private')) {
        problems.push(`request 2: not the token command's token (claims ${JSON.stringify(second.claims)})`);
      }
      if (second.lastEventId !== 't-1') problems.push(`request 2: Last-Event-ID ${JSON.stringify(second.lastEventId)}, want "t-1"`);
      const gap = second.at - first.at;
      if (gap > 2400) problems.push(`took ${gap} ms to reconnect after token_expired (should be at once, plus minting)`);
    }
  } else {
    if (exitCode !== 1) problems.push(`exit code ${exitCode}, want 1 (no token command)`);
    if (requests.length > 1) problems.push(`reconnected ${requests.length - 1} time(s) without a fresh token`);
    if (!/token expired/i.test(stderr)) problems.push(`stderr does not say the token expired: ${JSON.stringify(stderr.trim().split('\n').slice(-1)[0] ?? '')}`);
  }
  return problems;
}
