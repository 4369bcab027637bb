// How bodies become SSE data: line breaks, empty bodies, SSE-looking content, unicode.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { subscribe, publishOk, uniqueTopic, uniqueId, closeStreamsAfterFile } from './lib/index.mjs';

closeStreamsAfterFile();
const T = { timeout: 30_000 };

/**
 * Subscribe, publish `body`, and return the single frame the subscriber got for it.
 * Also checks that exactly one frame was dispatched for the publish (a body must never end the
 * frame early or create a second one) and that the frame only has id/event/data lines.
 */
async function roundTrip(label, body, { event } = {}) {
  const t = uniqueTopic(label);
  const c = await subscribe({ headers: { 'x-sse-topic': t } });
  try {
    const id = uniqueId(label);
    const r = await publishOk({ topics: t, id, event, body });
    assert.equal(r.delivered, 1, JSON.stringify(r));
    const marker = uniqueId('marker');
    await publishOk({ topics: t, id: marker, body: 'marker' });
    await c.waitForEvent((e) => e.id === marker, 5000, 'the marker event');
    const evs = c.published;
    assert.equal(evs.length, 2, `expected the event and the marker, got ${JSON.stringify(evs.map((e) => ({ id: e.id, type: e.type, data: e.data })))}`);
    assert.equal(evs[0].id, id);
    const names = evs[0].fields.map((f) => f.field);
    for (const n of names) assert.ok(['id', 'event', 'data'].includes(n), `unexpected field ${JSON.stringify(n)} in ${JSON.stringify(evs[0].fields)}`);
    // the opening block is not counted; blocks = connected + event + marker
    assert.equal(c.blocks.length, 3, `blocks: ${JSON.stringify(c.blocks.map((b) => b.fields))}`);
    return { ev: evs[0], client: c };
  } finally { c.close(); }
}

test('framing: multi-line body with \\n', T, async () => {
  const { ev } = await roundTrip('lf', 'line one\nline two\nline three');
  assert.equal(ev.data, 'line one\nline two\nline three');
  assert.equal(ev.fields.filter((f) => f.field === 'data').length, 3);
});

test('framing: multi-line body with \\r\\n', T, async () => {
  const { ev } = await roundTrip('crlf', 'line one\r\nline two\r\nline three');
  assert.equal(ev.data, 'line one\nline two\nline three');
  assert.equal(ev.fields.filter((f) => f.field === 'data').length, 3);
});

test('framing: multi-line body with bare \\r', T, async () => {
  const { ev } = await roundTrip('cr', 'line one\rline two\rline three');
  assert.equal(ev.data, 'line one\nline two\nline three');
  assert.equal(ev.fields.filter((f) => f.field === 'data').length, 3);
});

test('framing: mixed line endings', T, async () => {
  const { ev } = await roundTrip('mixed', 'a\r\nb\rc\nd\n\re');
  // \n\r is LF followed by CR: two breaks, i.e. an empty line between d and e
  assert.equal(ev.data, 'a\nb\nc\nd\n\ne');
});

test('framing: trailing newline is kept', T, async () => {
  const { ev } = await roundTrip('trail', 'last line\n');
  assert.equal(ev.data, 'last line\n');
});

test('framing: body of only a newline', T, async () => {
  const { ev } = await roundTrip('onlynl', '\n');
  assert.equal(ev.data, '\n');
});

test('framing: empty body is dispatched with empty data', T, async () => {
  const { ev } = await roundTrip('empty', '', { event: 'ping' });
  assert.equal(ev.data, '');
  assert.equal(ev.event, 'ping');
  assert.deepEqual(ev.fields.filter((f) => f.field === 'data'), [{ field: 'data', value: '' }]);
});

test('framing: blank lines and SSE syntax inside a body stay data', T, async () => {
  const body = 'id: evil\nevent: evil\n\nretry: 1\n: not a comment\ndata: x\r\n\r\n';
  const { ev } = await roundTrip('syntax', body, { event: 'legit' });
  assert.equal(ev.event, 'legit');
  assert.equal(ev.data, 'id: evil\nevent: evil\n\nretry: 1\n: not a comment\ndata: x\n\n');
  assert.ok(ev.id.startsWith('syntax-'), `id was overridden: ${ev.id}`);
});

test('framing: unicode body (emoji, CJK, combining marks) is byte-exact', T, async () => {
  const body = 'héllo wörld — 🚀🎉👩‍👩‍👧 中文字符 日本語 한국어 e\u0301 \u{10FFFF}\u{1F600} \uFEFFbom-inside ✓';
  const { ev } = await roundTrip('unicode', body, { event: 'uni' });
  assert.equal(ev.data, body);
  assert.ok(Buffer.from(ev.data, 'utf8').equals(Buffer.from(body, 'utf8')), 'bytes differ');
});

test('framing: a long single line body is one data line', T, async () => {
  const body = 'x'.repeat(20_000) + '🚀'.repeat(1000);
  const { ev } = await roundTrip('long', body);
  assert.equal(ev.data, body);
  assert.equal(ev.fields.filter((f) => f.field === 'data').length, 1);
});
