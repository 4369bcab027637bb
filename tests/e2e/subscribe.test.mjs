// GET /sse: topic selection, response headers, the opening block.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { subscribe, publishOk, uniqueTopic, uniqueId, closeStreamsAfterFile } from './lib/index.mjs';

closeStreamsAfterFile();
const T = { timeout: 30_000 };

/** Publish one event to `topic` and check `client` receives it. */
async function assertReceives(client, topic) {
  const id = uniqueId('probe');
  const r = await publishOk({ topics: topic, id, body: `probe ${topic}` });
  assert.equal(r.topics?.[topic]?.delivered, 1, `publish to ${topic}: ${JSON.stringify(r)}`);
  const ev = await client.waitForEvent((e) => e.id === id, 5000, `event ${id} on ${topic}`);
  assert.equal(ev.data, `probe ${topic}`);
}

test('subscribe: topic from the x-sse-topic header', T, async () => {
  const t = uniqueTopic('hdr');
  const c = await subscribe({ headers: { 'x-sse-topic': t } });
  try {
    assert.deepEqual(c.connected.topics, [t]);
    await assertReceives(c, t);
  } finally { c.close(); }
});

test('subscribe: comma list in ?topic=a,b', T, async () => {
  const a = uniqueTopic('qa');
  const b = uniqueTopic('qb');
  const c = await subscribe({ query: { topic: `${a},${b}` } });
  try {
    assert.deepEqual(c.connected.topics, [a, b]);
    await assertReceives(c, a);
    await assertReceives(c, b);
  } finally { c.close(); }
});

test('subscribe: repeated ?topic=a&topic=b', T, async () => {
  const a = uniqueTopic('ra');
  const b = uniqueTopic('rb');
  const c = await subscribe({ query: { topic: [a, b] } });
  try {
    assert.deepEqual(c.connected.topics, [a, b]);
    await assertReceives(c, a);
    await assertReceives(c, b);
  } finally { c.close(); }
});

test('subscribe: x-sse-topic header wins over ?topic=', T, async () => {
  const h = uniqueTopic('wins-hdr');
  const q = uniqueTopic('wins-query');
  const c = await subscribe({ headers: { 'x-sse-topic': h }, query: { topic: q } });
  try {
    assert.deepEqual(c.connected.topics, [h], 'connected.topics should list only the header topic');
    await assertReceives(c, h);
    // the query topic must not have been subscribed: a publish to it is dropped
    const r = await publishOk({ topics: q, id: uniqueId(), body: 'x' });
    assert.deepEqual(r.topics?.[q], { dropped: 'no_subscribers' }, `publish to query topic: ${JSON.stringify(r)}`);
  } finally { c.close(); }
});

test('subscribe: response headers (event-stream, no-cache, no buffering, CORS)', T, async () => {
  const c = await subscribe({ query: { topic: uniqueTopic('headers') } });
  try {
    assert.equal(c.status, 200);
    assert.match(String(c.headers['content-type']), /^text\/event-stream\b/i, `content-type: ${c.headers['content-type']}`);
    assert.match(String(c.headers['cache-control']), /\bno-cache\b/i, `cache-control: ${c.headers['cache-control']}`);
    assert.equal(c.headers['x-accel-buffering'], 'no');
    assert.equal(c.headers['access-control-allow-origin'], '*');
  } finally { c.close(); }
});

test('subscribe: opening block has retry and event: connected with JSON, and no id', T, async () => {
  const a = uniqueTopic('open-a');
  const b = uniqueTopic('open-b');
  const c = await subscribe({ headers: { 'x-sse-topic': `${a},${b}` } });
  try {
    const first = c.blocks[0];
    assert.ok(first, 'no block received');
    const names = first.fields.map((f) => f.field);
    assert.ok(names.includes('retry'), `opening block should have retry:, has ${JSON.stringify(names)}`);
    const retry = first.fields.find((f) => f.field === 'retry').value;
    assert.match(retry, /^[0-9]+$/, `retry value ${JSON.stringify(retry)}`);
    assert.ok(Number(retry) > 0, 'retry should be positive');
    assert.ok(!names.includes('id'), `opening block must not carry id:, has ${JSON.stringify(first.fields)}`);
    const ev = first.fields.find((f) => f.field === 'event');
    assert.equal(ev?.value, 'connected');
    // it is the first dispatched event and parses as JSON
    assert.equal(c.events[0].type, 'connected');
    assert.equal(c.events[0].id, undefined);
    assert.equal(c.events[0].lastEventId, '', 'Last-Event-ID must stay empty after the opening block');
    const data = JSON.parse(c.events[0].data);
    assert.equal(typeof data.connection_id, 'string');
    assert.ok(data.connection_id.length > 0, 'connection_id empty');
    assert.deepEqual(data.topics, [a, b]);
  } finally { c.close(); }
});

test('subscribe: connection ids are unique per connection', T, async () => {
  const t = uniqueTopic('ids');
  const cs = await Promise.all([1, 2, 3].map(() => subscribe({ query: { topic: t } })));
  try {
    const ids = cs.map((c) => c.connectionId);
    assert.equal(new Set(ids).size, 3, `ids: ${ids}`);
  } finally { cs.forEach((c) => c.close()); }
});

test('subscribe: list items are trimmed and duplicates merged keeping the first position', T, async () => {
  const a = uniqueTopic('trim-a');
  const b = uniqueTopic('trim-b');
  const c = await subscribe({ headers: { 'x-sse-topic': `${b} ,\t${a}, ${b}` } });
  try {
    assert.deepEqual(c.connected.topics, [b, a]);
    const id = uniqueId();
    await publishOk({ topics: b, id, body: 'once' });
    await c.waitForEvent((e) => e.id === id);
  } finally { c.close(); }
});

test('subscribe: the same list rules apply to ?topic= (trim, merge)', T, async () => {
  const a = uniqueTopic('qtrim-a');
  const b = uniqueTopic('qtrim-b');
  const c = await subscribe({ query: { topic: ` ${a} , ${b},${a}` } });
  try {
    assert.deepEqual(c.connected.topics, [a, b]);
  } finally { c.close(); }
});
