// Paging /admin/api/connections over 1,200 live SSE connections.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  subscribe, uniqueTopic, adminGet, listAllTopics, assertJsonError, poll, closeStreamsAfterFile,
} from './lib/index.mjs';

closeStreamsAfterFile();

const N = 1200;
const BATCH = 100;
const PREFIX = uniqueTopic('page');
const TOPICS = Array.from({ length: 6 }, (_, i) => `${PREFIX}-${i}`);
const CHURN_TOPIC = `${PREFIX}-churn`;
const T = { timeout: 240_000 };

let poolPromise;
const pool = { clients: [], byTopic: new Map() };

/** Sum of the registry's connection counts over `topics`. */
async function registryCount(topics) {
  const { topics: list } = await listAllTopics();
  let n = 0;
  for (const e of list) if (topics.includes(e.topic)) n += e.connections;
  return n;
}

async function openBatch(topicOf, count, opened) {
  const batch = await Promise.all(Array.from({ length: count }, (_, i) => {
    const topic = topicOf(opened + i);
    return subscribe({ query: { topic }, timeoutMs: 30_000 }).then((c) => ({ c, topic }));
  }));
  return batch;
}

/** Open N connections over the six topics, in batches, waiting for the registry after each. */
function getPool() {
  poolPromise ??= (async () => {
    for (let opened = 0; opened < N; opened += BATCH) {
      const batch = await openBatch((i) => TOPICS[i % TOPICS.length], BATCH, opened);
      for (const { c, topic } of batch) {
        pool.clients.push(c);
        if (!pool.byTopic.has(topic)) pool.byTopic.set(topic, new Set());
        pool.byTopic.get(topic).add(c.connectionId);
      }
      const want = opened + BATCH;
      await poll(async () => (await registryCount(TOPICS)) === want, {
        timeoutMs: 30_000, intervalMs: 250, label: `registry shows ${want} connections on the test topics`,
      });
    }
    const ids = pool.clients.map((c) => c.connectionId);
    assert.equal(new Set(ids).size, N, 'connection ids are not unique');
    pool.ids = new Set(ids);
    return pool;
  })();
  return poolPromise;
}

after(() => {
  for (const c of pool.clients) c.close();
});

function assertSortedPage(items, context) {
  for (let i = 1; i < items.length; i++) {
    assert.ok(items[i - 1].id < items[i].id, `${context}: not sorted by id: ${items[i - 1].id} then ${items[i].id}`);
  }
}

test('pagination: limit=500 pages list each of 1,200 stable connections exactly once while others come and go', T, async () => {
  const { ids } = await getPool();
  const leavers = [];
  const joiners = [];
  try {
    // 60 connections that will leave while we page
    for (const { c } of await openBatch(() => CHURN_TOPIC, 60, 0)) leavers.push(c);
    await poll(async () => (await registryCount([CHURN_TOPIC])) === 60, { timeoutMs: 30_000, label: 'churn connections listed' });

    const seen = new Map();
    const allListed = [];
    let cursor;
    let pages = 0;
    let lastId = '';
    for (;;) {
      const r = await adminGet('/admin/api/connections', { limit: 500, cursor });
      assert.equal(r.status, 200, `page ${pages + 1}: ${r.status} ${r.text.slice(0, 300)}`);
      const page = r.json;
      assert.ok(Array.isArray(page.connections), `page ${pages + 1}: connections is not an array`);
      assert.ok(page.connections.length <= 500, `page ${pages + 1} has ${page.connections.length} items`);
      assert.ok(Number.isInteger(page.total), `page ${pages + 1}: total ${page.total}`);
      assertSortedPage(page.connections, `page ${pages + 1}`);
      if (page.connections.length) {
        assert.ok(page.connections[0].id > lastId, `page ${pages + 1} starts at ${page.connections[0].id}, not after ${lastId}`);
        lastId = page.connections.at(-1).id;
      }
      for (const c of page.connections) {
        allListed.push(c.id);
        if (ids.has(c.id)) seen.set(c.id, (seen.get(c.id) ?? 0) + 1);
      }
      pages++;
      // churn between pages: some leave, some arrive
      if (pages === 1) {
        leavers.splice(0, 30).forEach((c) => c.close());
        for (const { c } of await openBatch(() => CHURN_TOPIC, 30, 0)) joiners.push(c);
      } else if (pages === 2) {
        leavers.splice(0).forEach((c) => c.close());
        for (const { c } of await openBatch(() => CHURN_TOPIC, 30, 0)) joiners.push(c);
      }
      if (page.next_cursor === null) break;
      assert.equal(typeof page.next_cursor, 'string', `page ${pages}: next_cursor ${page.next_cursor}`);
      cursor = page.next_cursor;
      assert.ok(pages < 200, 'too many pages');
    }
    assert.ok(pages >= 3, `expected at least 3 pages of 500 for ≥ ${N} connections, got ${pages}`);
    const missing = [...ids].filter((id) => !seen.has(id));
    const repeated = [...seen].filter(([, n]) => n > 1);
    assert.equal(missing.length, 0, `${missing.length} stable connections never listed, e.g. ${missing.slice(0, 5)}`);
    assert.equal(repeated.length, 0, `${repeated.length} stable connections listed more than once, e.g. ${JSON.stringify(repeated.slice(0, 5))}`);
    assert.equal(new Set(allListed).size, allListed.length, 'a connection id appeared twice in one pass');
  } finally {
    leavers.forEach((c) => c.close());
    joiners.forEach((c) => c.close());
  }
});

test('pagination: limit=600 is rejected with 400 invalid_limit', T, async () => {
  await getPool();
  assertJsonError(await adminGet('/admin/api/connections', { limit: 600 }), 400, 'invalid_limit');
  const r = await adminGet('/admin/api/connections', { limit: 500 });
  assert.equal(r.status, 200, r.text.slice(0, 300));
  assert.equal(r.json.connections.length, 500, 'a full page of 500 with ≥ 1,200 connections live');
  assert.equal(typeof r.json.next_cursor, 'string');
});

test('pagination: default page size is 100', T, async () => {
  await getPool();
  const r = await adminGet('/admin/api/connections');
  assert.equal(r.status, 200, r.text.slice(0, 300));
  assert.equal(r.json.connections.length, 100);
  assert.equal(typeof r.json.next_cursor, 'string');
});

test('pagination: ?topic= pages through exactly that topic\'s connections', T, async () => {
  const { byTopic } = await getPool();
  const topic = TOPICS[2];
  const expected = byTopic.get(topic);
  const got = [];
  let cursor;
  let pages = 0;
  for (;;) {
    const r = await adminGet('/admin/api/connections', { topic, limit: 50, cursor });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.ok(r.json.connections.length <= 50);
    assertSortedPage(r.json.connections, `topic page ${pages + 1}`);
    for (const c of r.json.connections) {
      assert.ok(c.topics.includes(topic), `${c.id} listed for ${topic} but has topics ${c.topics}`);
      got.push(c.id);
    }
    pages++;
    if (r.json.next_cursor === null) break;
    cursor = r.json.next_cursor;
    assert.ok(pages < 100, 'too many pages');
  }
  assert.equal(got.length, expected.size, `listed ${got.length}, expected ${expected.size}`);
  assert.deepEqual(new Set(got), expected);
  // the last full page may or may not carry a cursor to an empty page
  const minPages = Math.ceil(expected.size / 50);
  assert.ok(pages === minPages || pages === minPages + 1, `${pages} pages for ${expected.size} connections at 50 a page`);
});
