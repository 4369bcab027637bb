// Paging /admin/api/connections over 1,200 live SSE connections.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  subscribe, uniqueTopic, adminGet, listAllTopics, assertJsonError, poll, config, closeStreamsAfterFile,
} from './lib/index.mjs';

closeStreamsAfterFile();

const N = 1200;
const BATCH = 100;
const PREFIX = uniqueTopic('page');
const TOPICS = Array.from({ length: 6 }, (_, i) => `${PREFIX}-${i}`);
const CHURN_TOPIC = `${PREFIX}-churn`;
const CHURN_JOIN_TOPIC = `${PREFIX}-join`;
const T = { timeout: 240_000 };

let poolPromise;
const pool = { clients: [], byTopic: new Map(), leavers: [] };
const LEAVERS_PER_BATCH = 5;

/** Sum of the registry's connection counts over `topics`. */
async function registryCount(topics) {
  const { topics: list } = await listAllTopics();
  let n = 0;
  for (const e of list) if (topics.includes(e.topic)) n += e.connections;
  return n;
}

function waitRegistry(topics, want, label) {
  return poll(async () => (await registryCount(topics)) === want, {
    timeoutMs: 2 * config.heartbeatMs + 30_000, intervalMs: 250, label: `registry shows ${want} connections on ${label}`,
  });
}

async function openBatch(topicOf, count) {
  return Promise.all(Array.from({ length: count }, (_, i) => {
    const topic = topicOf(i);
    return subscribe({ query: { topic }, timeoutMs: 30_000 }).then((c) => ({ c, topic }));
  }));
}

/**
 * Open N stable connections over the six topics, in batches of 100, waiting for the registry
 * after each. Each batch also opens a few "leavers" (on CHURN_TOPIC) so that connections that
 * leave during paging are spread through the id order, not only at its end.
 */
function getPool() {
  poolPromise ??= (async () => {
    for (let opened = 0; opened < N; opened += BATCH) {
      const [batch, leavers] = await Promise.all([
        openBatch((i) => TOPICS[(opened + i) % TOPICS.length], BATCH),
        openBatch(() => CHURN_TOPIC, LEAVERS_PER_BATCH),
      ]);
      for (const { c, topic } of batch) {
        pool.clients.push(c);
        if (!pool.byTopic.has(topic)) pool.byTopic.set(topic, new Set());
        pool.byTopic.get(topic).add(c.connectionId);
      }
      pool.leavers.push(...leavers.map((x) => x.c));
      await waitRegistry(TOPICS, opened + BATCH, 'the test topics');
      await waitRegistry([CHURN_TOPIC], pool.leavers.length, 'the churn topic');
    }
    const ids = pool.clients.map((c) => c.connectionId);
    assert.equal(new Set(ids).size, N, 'connection ids are not unique');
    pool.ids = new Set(ids);
    return pool;
  })();
  return poolPromise;
}

after(() => {
  for (const c of [...pool.clients, ...pool.leavers]) c.close();
});

function assertSortedPage(items, context) {
  for (let i = 1; i < items.length; i++) {
    assert.ok(items[i - 1].id < items[i].id, `${context}: not sorted by id: ${items[i - 1].id} then ${items[i].id}`);
  }
}

test('pagination: limit=500 pages list each of 1,200 stable connections exactly once while others come and go', T, async () => {
  const { ids, leavers } = await getPool();
  const joiners = [];
  try {
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
      // churn between pages: leavers (spread over the id order) go, joiners arrive; wait until
      // the registry reflects it before reading the next page
      if (pages === 1 || pages === 2) {
        const going = pages === 1 ? leavers.splice(0, Math.floor(leavers.length / 2)) : leavers.splice(0);
        going.forEach((c) => c.close());
        for (const { c } of await openBatch(() => CHURN_JOIN_TOPIC, 30)) joiners.push(c);
        await waitRegistry([CHURN_TOPIC], leavers.length, 'the churn topic after closing leavers');
        await waitRegistry([CHURN_JOIN_TOPIC], joiners.length, 'the joiners\' topic');
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
