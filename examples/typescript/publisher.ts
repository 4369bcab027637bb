// Publish N events to several topics and print the per-topic outcome as JSON lines.
//
//   SSE_API_KEY=dev-key-change-me node publisher.ts --url http://127.0.0.1:8787 \
//     --topics orders,user:42 [--count N] [--prefix ID_PREFIX]
import { parseArgs } from 'node:util';

const USAGE = 'usage: SSE_API_KEY=... publisher --url URL --topics a,b [--count N] [--prefix P]';

let opts;
try {
  opts = parseArgs({
    options: {
      url: { type: 'string', default: 'http://127.0.0.1:8787' },
      topics: { type: 'string' },
      count: { type: 'string', default: '10' },
      prefix: { type: 'string', default: 'evt' },
    },
  }).values;
} catch (e) {
  console.error(`publisher: ${(e as Error).message}\n${USAGE}`);
  process.exit(2);
}
const apiKey = process.env.SSE_API_KEY;
if (!opts.topics || !apiKey) {
  console.error(`publisher: ${apiKey ? '--topics is required' : 'set SSE_API_KEY'}\n${USAGE}`);
  process.exit(2);
}
const url = opts.url.replace(/\/+$/, '');
const count = Number(opts.count);
if (!Number.isInteger(count) || count < 0) {
  console.error(`publisher: --count must be a whole number\n${USAGE}`);
  process.exit(2);
}

/** Event i of the shared sample set (see examples/README.md): multi-line and unicode bodies. */
function sampleEvent(i: number): { event: string | null; data: string } {
  switch ((i - 1) % 5) {
    case 0: return { event: 'note', data: `plain text #${i}` };
    case 1: return { event: 'multi-line', data: `line 1 of #${i}\nline 2\nline 3` };
    case 2: return { event: 'multi-line', data: `crlf #${i}\r\nsecond line\r\n` };
    case 3: return { event: 'unicode', data: `unicode #${i}: 你好，世界 🚀 café ✓` };
    default: return { event: null, data: `{"n":${i},"ok":true}` };
  }
}

/** The 202 answer: per topic, how many connections got the event, or why it was dropped. */
interface PublishResult {
  topics: Record<string, { delivered?: number; dropped?: string }>;
}

const outcome = new Map<string, { topic: string; published: number; delivered: number; dropped: number }>();
for (const topic of opts.topics.split(',').map((t) => t.trim())) {
  outcome.set(topic, { topic, published: 0, delivered: 0, dropped: 0 });
}

for (let i = 1; i <= count; i++) {
  const id = `${opts.prefix}-${i}`;
  const { event, data } = sampleEvent(i);
  let res: Response;
  try {
    res = await fetch(`${url}/publish`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${apiKey}`,
        'content-type': 'text/plain; charset=utf-8',
        'x-sse-topic': opts.topics, // one POST reaches every topic in the list
        'x-sse-id': id,
        ...(event ? { 'x-sse-event': event } : {}),
      },
      body: data,
    });
  } catch (e) {
    const err = e as Error & { cause?: Error };
    console.error(`publisher: ${id}: ${err.cause?.message ?? err.message}`);
    process.exit(1);
  }
  const text = await res.text();
  if (res.status !== 202) {
    console.error(`publisher: ${id}: HTTP ${res.status}: ${text}`);
    process.exit(1);
  }
  for (const [topic, r] of Object.entries((JSON.parse(text) as PublishResult).topics)) {
    const o = outcome.get(topic);
    if (!o) continue;
    o.published++;
    o.delivered += r.delivered ?? 0;
    if (r.dropped) o.dropped++;
  }
}

for (const o of outcome.values()) console.log(JSON.stringify(o));
