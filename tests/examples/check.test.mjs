// Unit tests of the matrix checker (tests/examples/check.mjs): it must catch every way a
// subscriber's output can be wrong. Run: node --test tests/examples/check.test.mjs
import assert from 'node:assert/strict';
import test from 'node:test';

import { checkSubscriber, parseLines, sampleEvent } from './check.mjs';

const topics = ['t-a', 't-b'];
const N = 6;

/** What a perfect subscriber prints for the given publishers, topics interleaved per event. */
function perfect(pubs) {
  const out = [];
  for (const p of pubs) {
    for (let i = 1; i <= N; i++) {
      for (const topic of topics) out.push({ topic, id: `${p}-${i}`, ...sampleEvent(i) });
    }
  }
  return out;
}

const problems = (events, pubs = ['go', 'rust']) => checkSubscriber(events, pubs, topics, N);

test('sample events: five kinds in turn, CRLF and unicode bodies, one without type', () => {
  assert.deepEqual(sampleEvent(1), { event: 'note', data: 'plain text #1' });
  assert.equal(sampleEvent(3).data, 'crlf #3\r\nsecond line\r\n');
  assert.equal(sampleEvent(5).event, null);
  assert.equal(sampleEvent(9).data, 'unicode #9: 你好，世界 🚀 café ✓');
});

test('a perfect output passes every cell', () => {
  const { cells, extras } = problems(perfect(['go', 'rust']));
  assert.deepEqual(cells, { go: [], rust: [] });
  assert.deepEqual(extras, []);
});

test('a missing event fails only its publisher', () => {
  const evs = perfect(['go', 'rust']).filter((e) => !(e.id === 'rust-3' && e.topic === 't-b'));
  const { cells } = problems(evs);
  assert.deepEqual(cells.go, []);
  assert.match(cells.rust.join(), /topic 2: 1 of 6 missing \(first rust-3\)/);
});

test('a duplicate fails', () => {
  const evs = perfect(['go']);
  evs.push({ ...evs[4] });
  assert.match(problems(evs, ['go']).cells.go.join(), /duplicate/);
});

test('out of order fails', () => {
  const evs = perfect(['go']);
  [evs[0], evs[2]] = [evs[2], evs[0]]; // go-1 and go-2 on topic 1 swapped
  assert.match(problems(evs, ['go']).cells.go.join(), /topic 1: out of order at position 1/);
});

test('a body that differs by one byte fails (CRLF turned into LF)', () => {
  const evs = perfect(['go']).map((e) => (e.id === 'go-3' ? { ...e, data: e.data.replace(/\r\n/g, '\n') } : e));
  assert.match(problems(evs, ['go']).cells.go.join(), /go-3 data/);
});

test('a wrong event type fails (null is not "message")', () => {
  const evs = perfect(['go']).map((e) => (e.id === 'go-5' ? { ...e, event: 'message' } : e));
  assert.match(problems(evs, ['go']).cells.go.join(), /go-5 event/);
});

test('events from elsewhere are reported as extras', () => {
  const evs = [...perfect(['go']), { topic: 'other', id: 'go-1', event: null, data: '' }, { topic: 't-a', id: 'x-1', event: null, data: '' }];
  const { cells, extras } = problems(evs, ['go']);
  assert.deepEqual(cells.go, []);
  assert.equal(extras.length, 2);
});

test('output lines must be JSON with exactly topic, id, event, data', () => {
  const { events, bad } = parseLines('{"topic":"a","id":"1","event":null,"data":""}\nnot json\n{"topic":"a","id":"1","data":""}\n\n');
  assert.equal(events.length, 2);
  assert.equal(bad.length, 2);
});
