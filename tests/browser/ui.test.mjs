// The admin UI in Chromium against a live gateway: login, the three tabs, logout.
// Tests run in order and share one page (each continues where the previous one left off).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  RUN, adminGet, config, curlSubscriber, launch, manySubscribers, publish, screenshot, sleep, textOf, waitUntil,
} from './lib.mjs';

const KEY_STORAGE = 'sse-gateway-admin.api-key';
const TOPIC = `orders-${RUN}`;
const BULK = `bulk-${RUN}`;
const BULK_N = 120;
const PAGE_SIZE = 50;

let browser;
let page;
const subscribers = [];
const apiRequests = [];
const pageErrors = [];

const storedKey = () => page.evaluate((k) => localStorage.getItem(k), KEY_STORAGE);
const pageInfo = async () => ((await page.locator('[aria-busy=true]').count()) ? '(loading)' : textOf(page, '[data-testid=page-info]'));
const connectionIds = () => page.locator('[data-connection]').evaluateAll((els) => els.map((e) => e.getAttribute('data-connection')));

async function signIn(key) {
  await page.locator('#api-key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

before(async () => {
  browser = await launch();
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1, locale: 'en-US', timezoneId: 'UTC' });
  page = await context.newPage();
  page.setDefaultTimeout(20_000);
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/admin/api/')) apiRequests.push({ path: u.pathname, auth: r.headers().authorization ?? null });
  });
  page.on('pageerror', (e) => pageErrors.push(e.message));
});

after(async () => {
  for (const s of subscribers) s.close();
  await browser?.close();
});

test('login: a wrong API key is rejected with a clear message', async () => {
  await page.goto(`${config.baseUrl}/admin/`);
  await page.locator('#api-key').waitFor();
  await screenshot(page, 'login');
  await signIn(`wrong-key-${RUN}`);
  const error = page.locator('[data-testid=login-error]');
  await error.waitFor();
  assert.match(await error.textContent(), /rejected this API key \(401/);
  assert.equal(await storedKey(), null, 'a rejected key is not stored');
  assert.ok(apiRequests.some((r) => r.auth === `Bearer wrong-key-${RUN}`), 'the key was sent as authorization: Bearer');
  await screenshot(page, 'login-rejected');
});

test('login: the right key is kept in localStorage and opens the Topics tab', async () => {
  await signIn(config.apiKey);
  await page.getByRole('tab', { name: 'Topics', selected: true }).waitFor();
  assert.equal(await storedKey(), config.apiKey);
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
});

test('Topics: a topic appears by itself after a subscriber connects (curl); unicast, then multicast', async () => {
  const row = page.locator(`tr[data-topic="${TOPIC}"]`);
  assert.equal(await row.count(), 0, 'the topic is not live before its subscriber connects');
  subscribers.push(await curlSubscriber(TOPIC));
  // no click: the list refreshes on its own
  await row.waitFor();
  await waitUntil(
    async () => (await row.locator('[data-testid=topic-connections]').textContent()) === '1' && (await row.locator('[data-testid=topic-mode]').textContent()) === 'unicast',
    `${TOPIC}: 1 connection, unicast`,
  );
  // the stats strip (GET /admin/api/stats) counts the connected subscriber
  await waitUntil(
    async () => Number(((await textOf(page, '[data-testid=stats-connections]')) ?? '').replace(/[^0-9]/g, '')) >= 1,
    'the stats strip to show a non-zero connection count',
  );
  subscribers.push(await curlSubscriber(TOPIC), await curlSubscriber(TOPIC));
  await waitUntil(
    async () => (await row.locator('[data-testid=topic-connections]').textContent()) === '3' && (await row.locator('[data-testid=topic-mode]').textContent()) === 'multicast',
    `${TOPIC}: 3 connections, multicast`,
  );
  // more topics, for the filter and the screenshots
  for (const t of [`user:42-${RUN}`, `chat.lobby-${RUN}`, `chat.lobby-${RUN}`, `payments.eu-west-${RUN}`]) subscribers.push(await curlSubscriber(t));
  await page.locator(`tr[data-topic="chat.lobby-${RUN}"]`).waitFor();

  const filter = page.getByLabel('Filter topics');
  await filter.fill(`user:42-${RUN}`);
  await waitUntil(async () => (await page.locator('tr[data-topic]').count()) === 1, 'the filter to leave one row');
  await filter.fill(`no-such-topic-${RUN}`);
  await page.getByText(`No topic matches “no-such-topic-${RUN}”`).waitFor();
  await page.getByRole('button', { name: 'Clear filter' }).first().click();
  await row.waitFor();
});

test('Topics: clicking a topic opens its connections', async () => {
  await page.locator(`tr[data-topic="${TOPIC}"] td`).first().click();
  await page.getByRole('tab', { name: 'Connections', selected: true }).waitFor();
  const url = new URL(page.url());
  assert.equal(url.pathname, '/admin/connections');
  assert.equal(url.searchParams.get('topic'), TOPIC);
  assert.equal(await page.getByLabel('Filter by topic').inputValue(), TOPIC);
  await waitUntil(async () => (await connectionIds()).length === 3, `3 connections of ${TOPIC}`);
  const table = await textOf(page, '[data-testid=connections-table]');
  for (const col of ['Connection id', 'Topics', 'Transport', 'Connected since', 'Node / colo', 'Events sent']) assert.ok(table.includes(col), `column ${col}`);
  assert.ok(table.includes('sse'), 'transport sse');
});

test(`Connections: paging through ${BULK_N} connections ${PAGE_SIZE} at a time (next and previous)`, async () => {
  subscribers.push(await manySubscribers(BULK, BULK_N));
  await waitUntil(async () => (await adminGet(`connections?topic=${BULK}&limit=1`)).total === BULK_N, `the admin API to count ${BULK_N} connections of ${BULK}`);

  const filter = page.getByLabel('Filter by topic');
  await filter.fill(`bad topic ${RUN}`);
  await filter.press('Enter');
  await page.getByText('A topic uses only letters, digits and _ - . :').waitFor();
  await filter.fill(`nobody-${RUN}`);
  await filter.press('Enter');
  await page.getByText(`No connection is subscribed to “nobody-${RUN}”`).waitFor();

  await filter.fill(BULK);
  await filter.press('Enter');
  await page.getByLabel('Rows per page').selectOption(String(PAGE_SIZE));
  const next = page.getByRole('button', { name: 'Next', exact: true });
  const prev = page.getByRole('button', { name: 'Previous', exact: true });

  await waitUntil(async () => (await pageInfo()).startsWith(`1–50 of ${BULK_N}`), 'page 1 (1–50)');
  const p1 = await connectionIds();
  assert.equal(p1.length, PAGE_SIZE);
  assert.ok(await prev.isDisabled(), 'no previous page on page 1');

  await next.click();
  await waitUntil(async () => (await pageInfo()).startsWith(`51–100 of ${BULK_N}`), 'page 2 (51–100)');
  const p2 = await connectionIds();
  assert.equal(p2.length, PAGE_SIZE);
  await screenshot(page, 'connections');

  await next.click();
  await waitUntil(async () => (await pageInfo()).startsWith(`101–120 of ${BULK_N}`), 'page 3 (101–120)');
  const p3 = await connectionIds();
  assert.equal(p3.length, BULK_N - 2 * PAGE_SIZE);
  assert.ok(await next.isDisabled(), 'no next page after the last one');

  const all = [...p1, ...p2, ...p3];
  assert.equal(new Set(all).size, BULK_N, 'no connection repeated across pages');
  assert.deepEqual(all, [...all].sort(), 'pages are in connection-id order');

  await prev.click();
  await waitUntil(async () => (await pageInfo()).startsWith(`51–100 of ${BULK_N}`), 'back to page 2');
  assert.deepEqual(await connectionIds(), p2, 'Previous shows the same page 2 again');
  await prev.click();
  await waitUntil(async () => (await pageInfo()).startsWith(`1–50 of ${BULK_N}`), 'back to page 1');
  assert.deepEqual(await connectionIds(), p1);

  // the Topics tab, now with the bulk topic too
  await page.getByRole('tab', { name: 'Topics' }).click();
  const bulkRow = page.locator(`tr[data-topic="${BULK}"]`);
  await waitUntil(async () => (await bulkRow.count()) && (await bulkRow.locator('[data-testid=topic-connections]').textContent()) === String(BULK_N), `${BULK} with ${BULK_N} connections on the Topics tab`);
  await screenshot(page, 'topics');
});

test('Tail Events: asks for a topic first, then shows an event published during the test', async () => {
  await page.getByRole('tab', { name: 'Tail Events' }).click();
  await page.locator('#tail-topic').waitFor();
  const pick = page.locator('[data-testid=tail-topic-list] button', { hasText: TOPIC });
  await pick.waitFor();
  await screenshot(page, 'tail-picker');
  await pick.click();
  await waitUntil(async () => (await textOf(page, '[data-testid=tail-status]')).includes('live'), 'the tail to be live');
  assert.equal(new URL(page.url()).searchParams.get('topic'), TOPIC);

  const id = `evt-${RUN}-1`;
  await publish(TOPIC, id, JSON.stringify({ order: 1001, customer: 'ada', items: [{ sku: 'A-1', qty: 2 }], paid: true }), 'order.created');
  const row = page.locator(`tr[data-event-id="${id}"]`);
  await row.waitFor();
  const text = await row.textContent();
  assert.ok(text.includes('order.created'), 'event type shown');
  const data = await row.locator('[data-testid=event-data]').textContent();
  assert.ok(data.includes('"order": 1001'), `pretty JSON (got ${data.slice(0, 80)})`);
  assert.ok(data.includes('\n  "customer": "ada"'), 'pretty JSON is indented');

  await publish(TOPIC, `evt-${RUN}-2`, 'plain text body\nsecond line');
  await publish(TOPIC, `evt-${RUN}-3`, JSON.stringify({ order: 1001, status: 'shipped', carrier: 'ups' }), 'order.shipped');
  await page.locator(`tr[data-event-id="evt-${RUN}-3"]`).waitFor();
  assert.equal(await page.locator(`tr[data-event-id="evt-${RUN}-2"] [data-testid=event-data]`).textContent(), 'plain text body\nsecond line');
  await screenshot(page, 'tail');
});

test('Tail Events: pause holds new events, resume shows them, clear empties the view', async () => {
  await page.getByRole('button', { name: 'Pause' }).click();
  const held = `evt-${RUN}-held`;
  await publish(TOPIC, held, '{"while":"paused"}');
  await waitUntil(async () => (await textOf(page, '[data-testid=paused-banner]')).includes('1 new event held'), 'the paused banner to count 1 held event');
  assert.equal(await page.locator(`tr[data-event-id="${held}"]`).count(), 0, 'not shown while paused');
  await page.getByRole('button', { name: 'Resume' }).click();
  await page.locator(`tr[data-event-id="${held}"]`).waitFor();
  await page.getByRole('button', { name: 'Clear' }).click();
  await page.getByText(`Waiting for events on “${TOPIC}”`).waitFor();
  assert.equal(await page.locator('tr[data-event-id]').count(), 0);
});

test('Tail Events: a busy topic fills a bounded buffer (newest 500 kept) and the page stays responsive', async () => {
  const n = 600;
  const ids = Array.from({ length: n }, (_, i) => `busy-${RUN}-${String(i + 1).padStart(3, '0')}`);
  for (let i = 0; i < n; i += 25) await Promise.all(ids.slice(i, i + 25).map((id, j) => publish(TOPIC, id, JSON.stringify({ n: i + j + 1 }))));
  await page.locator(`tr[data-event-id="${ids[n - 1]}"]`).waitFor();
  await waitUntil(async () => (await page.locator('tr[data-event-id]').count()) === 500, '500 rows on screen');
  assert.equal(await page.locator(`tr[data-event-id="${ids[0]}"]`).count(), 0, 'the oldest events fell off the buffer');
  const t0 = Date.now();
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
  assert.ok(Date.now() - t0 < 2000, 'the page still paints');
  await waitUntil(async () => /^6\d\d received/.test(await textOf(page, '[data-testid=tail-counters]')), 'the counter to pass 600 received');
  await page.getByRole('button', { name: 'Clear' }).click();
});

test('a 401 during use returns to the login screen with a clear message', async () => {
  // a key that is no longer accepted (e.g. removed from API_KEYS), on a deep link
  await page.evaluate((k) => localStorage.setItem(k, 'revoked-key'), KEY_STORAGE);
  await page.reload();
  const notice = page.locator('[data-testid=login-notice]');
  await notice.waitFor();
  assert.match(await notice.textContent(), /rejected by the gateway \(401/);
  assert.equal(await storedKey(), null, 'the rejected key is forgotten');
});

test('logout clears the key and returns to the login screen', async () => {
  await signIn(config.apiKey);
  await page.getByRole('tab', { name: 'Tail Events', selected: true }).waitFor();
  assert.equal(await storedKey(), config.apiKey);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.locator('#api-key').waitFor();
  assert.equal(await storedKey(), null, 'logout removed the key from localStorage');
  await page.reload();
  await page.locator('#api-key').waitFor();
  assert.equal(await page.getByRole('tab').count(), 0, 'still signed out after a reload');
});

test('every admin API call carried authorization: Bearer, and the page threw no errors', async () => {
  assert.ok(apiRequests.length > 10, `admin API calls seen: ${apiRequests.length}`);
  const bare = apiRequests.filter((r) => !r.auth?.startsWith('Bearer '));
  assert.deepEqual(bare, [], 'calls without authorization: Bearer');
  assert.ok(apiRequests.some((r) => r.path.endsWith('/tail') && r.auth === `Bearer ${config.apiKey}`), 'the tail stream sent the key too');
  assert.deepEqual(pageErrors, [], 'uncaught exceptions in the page');
  await sleep(0);
});
