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
