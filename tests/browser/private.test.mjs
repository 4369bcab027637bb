// Private topics (PRIVATE_TOPICS) from a real browser page: an application page on an origin of
// its own opens `EventSource`s and `WebSocket`s on a private topic with `?token=<HS256 JWT>`
// (what a browser, which cannot set headers, has to use). The granted ones receive the events
// published, in order; the refused ones (no token, a bad signature, a token for another topic)
// fail once — error, readyState CLOSED, no retry — and receive nothing.
//
// Needs the target started with PRIVATE_TOPICS covering `browser-priv-*` (config.privatePrefix)
// and config.subscriberSecret among SUBSCRIBER_TOKEN_SECRETS, as run.mjs starts its gateways.
// Against a gateway given with --base-url that does not honour them, the tests are skipped with
// the reason (found by asking it, before any test).
// Tests run in order and share one page.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { RUN, config, jwt, launch, publish, servePage, sleep, waitUntil } from './lib.mjs';

const TOPIC = `${config.privatePrefix}${RUN}`;
const OTHER = `${config.privatePrefix}${RUN}-other`;
const SETTINGS = `PRIVATE_TOPICS covering ${config.privatePrefix}* and SUBSCRIBER_TOKEN_SECRETS holding the test secret (run.mjs PRIVATE; --private-prefix / --subscriber-secret for a gateway of your own)`;

const GRANTED = jwt({ sub: `browser-${RUN}`, topics: [TOPIC] });
const NOT_GRANTING = jwt({ sub: `browser-${RUN}`, topics: [OTHER] });
const BAD_SIGNATURE = jwt({ topics: [TOPIC] }, 'not-the-gateway-secret-0123456789abcdef');

const sseUrl = (token) => `${config.baseUrl}/sse?topic=${TOPIC}${token ? `&token=${token}` : ''}`;
const wsUrl = (token) => `${config.baseUrl.replace(/^http/, 'ws')}/ws?topic=${TOPIC}${token ? `&token=${token}` : ''}`;

/**
 * Does the target treat `<prefix>…` as private and accept our tokens? null when it does, else
 * what it answered instead. Plain fetch, outside the browser.
 */
async function probe() {
  const topic = `${config.privatePrefix}probe-${RUN}`;
  const ask = async (token) => {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 10_000);
    try {
      const r = await fetch(`${config.baseUrl}/sse?topic=${topic}`, { signal: ctl.signal, headers: token ? { authorization: `Bearer ${token}` } : {} });
      const body = r.status === 200 ? '' : await r.text();
      return { status: r.status, body };
    } finally {
      clearTimeout(timer);
      ctl.abort(); // a 200 is a stream: drop it
    }
  };
  try {
    const anon = await ask(null);
    if (anon.status !== 401 || !anon.body.includes('"token_required"')) {
      return `the target does not treat ${topic} as private: without a token GET /sse answered ${anon.status}${anon.body ? ` ${anon.body.slice(0, 120)}` : ''}, not 401 token_required; it needs ${SETTINGS}`;
    }
    const granted = await ask(jwt({ topics: [topic] }));
    if (granted.status !== 200) {
      return `the target refuses a token signed with the test secret: GET /sse answered ${granted.status} ${granted.body.slice(0, 160)}; it needs ${SETTINGS}`;
    }
    return null;
  } catch (e) {
    return `cannot ask ${config.baseUrl}/sse: ${e.message}`;
  }
}

const problem = await probe();
// a gateway run.mjs started itself with the settings must honour them: fail, never skip
const SKIP = problem && !config.privateConfigured ? problem : false;

// The application page: records what each stream sees; the test only calls its functions.
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>private topics</title>
<script>
window.sources = {};
window.streams = {};
function record(name) {
  return (window.streams[name] = { opens: 0, errors: 0, stateAtError: [], connected: 0, messages: [], closeCode: null });
}
window.openSse = (name, url) => {
  const r = record(name);
  const es = (window.sources[name] = new EventSource(url));
  es.addEventListener('open', () => { r.opens += 1; });
  es.addEventListener('error', () => { r.errors += 1; r.stateAtError.push(es.readyState); });
  es.addEventListener('connected', () => { r.connected += 1; });
  es.addEventListener('message', (e) => { r.messages.push({ id: e.lastEventId, data: e.data }); });
};
window.openWs = (name, url) => {
  const r = record(name);
  const ws = (window.sources[name] = new WebSocket(url));
  ws.addEventListener('open', () => { r.opens += 1; });
  ws.addEventListener('error', () => { r.errors += 1; });
  ws.addEventListener('close', (e) => { r.closeCode = e.code; });
  ws.addEventListener('message', (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === 'connected') r.connected += 1;
    else r.messages.push({ id: msg.id, data: msg.data, topic: msg.topic });
  });
};
window.snapshot = () => Object.fromEntries(Object.entries(window.streams).map(([name, r]) => [name, { ...r, readyState: window.sources[name].readyState }]));
window.closeAll = () => Object.values(window.sources).forEach((s) => s.close());
// why a subscription is refused, as a page can read it (the gateway answers CORS *)
window.refusal = async (url) => {
  try {
    const ctl = new AbortController();
    const r = await fetch(url, { signal: ctl.signal });
    const body = r.status === 200 ? null : await r.json().catch(() => null);
    ctl.abort();
    return { status: r.status, code: body?.error?.code ?? null };
  } catch (e) {
    return { status: 0, error: String(e) };
  }
};
</script>
<p>private topics</p>
`;

let browser;
let page;
let app;
const pageErrors = [];
const sseRequests = [];

const snapshot = () => page.evaluate(() => window.snapshot());

before(async () => {
  if (SKIP) return;
  if (problem) throw new Error(problem);
  app = await servePage(PAGE);
  browser = await launch();
  const context = await browser.newContext({ locale: 'en-US', timezoneId: 'UTC' });
  page = await context.newPage();
  page.setDefaultTimeout(20_000);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('request', (r) => {
    if (r.url().startsWith(`${config.baseUrl}/sse?`) && r.resourceType() === 'eventsource') sseRequests.push(r.url());
  });
  await page.goto(app.url);
  await page.waitForFunction(() => typeof window.openSse === 'function');
});

after(async () => {
  await page?.evaluate(() => window.closeAll()).catch(() => {});
  await browser?.close();
  await app?.close();
});

test('a page on another origin reads why a private subscription is refused: 401 token_required, 401 invalid_token, 403 forbidden', { skip: SKIP }, async () => {
  const cases = [
    ['no token', sseUrl(null), 401, 'token_required'],
    ['bad signature', sseUrl(BAD_SIGNATURE), 401, 'invalid_token'],
    ['token for another topic', sseUrl(NOT_GRANTING), 403, 'forbidden'],
  ];
  for (const [what, url, status, code] of cases) {
    const r = await page.evaluate((u) => window.refusal(u), url);
    assert.deepEqual(r, { status, code }, `${what}: fetch from ${new URL(page.url()).origin}`);
  }
});

test('EventSource with ?token= opens; without a token, with a bad signature or a token for another topic: one error, CLOSED, no retry', { skip: SKIP }, async () => {
  await page.evaluate(([a, b, c, d, e, f]) => {
    window.openSse('granted', a);
    window.openSse('anonymous', b);
    window.openSse('badSignature', c);
    window.openSse('notGranting', d);
    window.openWs('wsGranted', e);
    window.openWs('wsAnonymous', f);
  }, [sseUrl(GRANTED), sseUrl(null), sseUrl(BAD_SIGNATURE), sseUrl(NOT_GRANTING), wsUrl(GRANTED), wsUrl(null)]);

  await waitUntil(async () => {
    const s = await snapshot();
    return s.granted.connected === 1 && s.wsGranted.connected === 1 ? s : null;
  }, 'the granted EventSource and WebSocket to get their connected event');
  const s = await waitUntil(async () => {
    const now = await snapshot();
    return ['anonymous', 'badSignature', 'notGranting'].every((n) => now[n].readyState === 2) && now.wsAnonymous.closeCode !== null ? now : null;
  }, 'the refused EventSources to be CLOSED and the refused WebSocket closed');

  assert.equal(s.granted.readyState, 1, 'granted EventSource OPEN');
  assert.equal(s.granted.opens, 1);
  assert.equal(s.granted.errors, 0);
  for (const n of ['anonymous', 'badSignature', 'notGranting']) {
    assert.equal(s[n].opens, 0, `${n}: never opened`);
    assert.equal(s[n].errors, 1, `${n}: one error event`);
    // CLOSED (2) already when the error fired: the browser gave up (no reconnection), which it
    // only does for an HTTP error it could read, i.e. one answered with CORS headers
    assert.deepEqual(s[n].stateAtError, [2], `${n}: readyState CLOSED at the error, not CONNECTING (a retry)`);
    assert.equal(s[n].connected, 0, `${n}: no connected event`);
  }
  assert.equal(s.wsGranted.readyState, 1, 'granted WebSocket OPEN');
  assert.equal(s.wsAnonymous.opens, 0, 'WebSocket without a token never opened');
  assert.ok(s.wsAnonymous.errors >= 1, 'WebSocket without a token: error event');
  assert.equal(s.wsAnonymous.closeCode, 1006, 'WebSocket without a token: closed abnormally (the upgrade was refused)');
  assert.equal(s.wsAnonymous.connected, 0);
});

test('the events published reach the granted EventSource and WebSocket only: ids and data in order', { skip: SKIP }, async () => {
  const events = [
    [`p1-${RUN}`, 'first'],
    [`p2-${RUN}`, JSON.stringify({ order: 42, total: '9.90' })],
    [`p3-${RUN}`, 'line one\nline two'],
  ];
  for (const [id, data] of events) {
    const res = await publish(TOPIC, id, data);
    // the granted EventSource and WebSocket, nothing else attached
    assert.deepEqual(res.topics?.[TOPIC], { delivered: 2 }, `publish ${id}: ${JSON.stringify(res)}`);
  }
  const s = await waitUntil(async () => {
    const now = await snapshot();
    return now.granted.messages.length >= events.length && now.wsGranted.messages.length >= events.length ? now : null;
  }, `${events.length} events on the granted EventSource and WebSocket`);
  assert.deepEqual(s.granted.messages, events.map(([id, data]) => ({ id, data })), 'EventSource: ids (lastEventId) and data, in publish order');
  assert.deepEqual(s.wsGranted.messages, events.map(([id, data]) => ({ id, data, topic: TOPIC })), 'WebSocket: ids and data, in publish order');

  // give a (wrong) late delivery or a reconnection time to show
  await sleep(1500);
  const later = await snapshot();
  for (const n of ['anonymous', 'badSignature', 'notGranting', 'wsAnonymous']) {
    assert.deepEqual(later[n].messages, [], `${n}: no message`);
    assert.equal(later[n].opens, 0, `${n}: still never opened`);
  }
  for (const n of ['anonymous', 'badSignature', 'notGranting']) {
    assert.equal(later[n].readyState, 2, `${n}: still CLOSED`);
    assert.equal(later[n].errors, 1, `${n}: still one error`);
  }
  assert.equal(later.granted.messages.length, events.length, 'no duplicate on the granted EventSource');
  // each refused EventSource asked once: the browser did not retry
  for (const [n, url] of [['anonymous', sseUrl(null)], ['badSignature', sseUrl(BAD_SIGNATURE)], ['notGranting', sseUrl(NOT_GRANTING)]]) {
    assert.equal(sseRequests.filter((u) => u === url).length, 1, `${n}: requested once`);
  }
  assert.deepEqual(pageErrors, [], 'no error on the page');
});
