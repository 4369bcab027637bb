// Subscribe to several topics over SSE and print each event as one JSON line.
//
//   node subscriber.ts --url http://127.0.0.1:8787 --topics orders,user:42 [--max N] [--timeout S] \
//     [--token TOKEN] [--token-command CMD]
//
// Node 22's built-in fetch streams the response; sse.ts turns the bytes into events. Private
// topics need a subscriber token (--token or SSE_TOKEN); --token-command (or SSE_TOKEN_COMMAND)
// is a shell command that prints a fresh one, run when the gateway says the token expired.
import { execSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseSse } from './sse.ts';

const USAGE = 'usage: subscriber --url URL --topics a,b [--max N] [--timeout S] [--token T] [--token-command CMD]';

let opts;
try {
  opts = parseArgs({
    options: {
      url: { type: 'string', default: 'http://127.0.0.1:8787' },
      topics: { type: 'string' },
      max: { type: 'string' },
      timeout: { type: 'string' },
      token: { type: 'string', default: process.env.SSE_TOKEN },
      'token-command': { type: 'string', default: process.env.SSE_TOKEN_COMMAND },
    },
  }).values;
} catch (e) {
  console.error(`subscriber: ${(e as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (!opts.topics) {
  console.error(`subscriber: --topics is required\n${USAGE}`);
  process.exit(2);
}
const url = opts.url.replace(/\/+$/, '');
const topics = opts.topics;
const max = opts.max ? Number(opts.max) : Infinity;
const timeoutS = opts.timeout ? Number(opts.timeout) : undefined;
if (!(max > 0) || (timeoutS !== undefined && !(timeoutS > 0))) {
  console.error(`subscriber: --max and --timeout must be positive numbers\n${USAGE}`);
  process.exit(2);
}

const tokenCommand = opts['token-command'];

/** Runs the token command (through the shell): its output, trimmed, is the new token. */
function freshToken(): string {
  if (!tokenCommand) {
    console.error('subscriber: token expired (set --token-command or SSE_TOKEN_COMMAND to get fresh ones)');
    process.exit(1);
  }
  try {
    const token = execSync(tokenCommand, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
    if (token) return token;
    console.error('subscriber: the token command printed nothing');
  } catch (e) {
    console.error(`subscriber: token command: ${(e as Error).message.split('\n')[0]}`);
  }
  process.exit(1);
}

/** `reason` in the data of `event: reconnect`: `shutdown`, `token_expired`, ... */
function reasonOf(data: string): string | undefined {
  try {
    return JSON.parse(data).reason;
  } catch {
    return undefined;
  }
}

/** The JSON envelope that `?envelope=json` puts in each event's `data:`. */
interface Envelope {
  topic: string;
  id: string;
  event: string | null;
  data: string;
  ts: number;
}

// One signal stops everything: --timeout, Ctrl-C, or having printed --max events.
const stop = new AbortController();
let timedOut = false;
if (timeoutS) {
  setTimeout(() => { timedOut = true; stop.abort(); }, timeoutS * 1000).unref();
}
process.once('SIGINT', () => stop.abort());
process.once('SIGTERM', () => stop.abort());

let token = opts.token || (tokenCommand ? freshToken() : '');
let received = 0;
let lastEventId = '';
let retryMs = 3000; // until the server's `retry:` says otherwise
let attempt = 0; // failed connections since the last successful one

while (!stop.signal.aborted) {
  let waitMs = 0; // at least this long before the next attempt (from retry-after)
  let now = false; // reconnect at once (the server asked for it)
  // The gateway sends a keepalive every 15 s: a link silent for a minute is dead.
  const idle = new AbortController();
  let idleTimer = setTimeout(() => idle.abort(), 60_000);
  try {
    const res = await fetch(`${url}/sse?envelope=json`, {
      headers: {
        accept: 'text/event-stream',
        'x-sse-topic': topics,
        // Resume after the last event we printed (a gateway with replay fills the gap).
        ...(lastEventId ? { 'last-event-id': lastEventId } : {}),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      signal: AbortSignal.any([stop.signal, idle.signal]),
    });
    if (res.status >= 400 && res.status < 500 && res.status !== 429) {
      // Our request is wrong (bad topic, ...): retrying will not help.
      console.error(`subscriber: HTTP ${res.status}: ${await res.text()}`);
      process.exit(1);
    }
    if (res.status !== 200 || !res.body) {
      waitMs = (Number(res.headers.get('retry-after')) || 0) * 1000; // seconds (a date counts as 0)
      await res.body?.cancel();
      throw new Error(`HTTP ${res.status}`);
    }
    const watched = res.body.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, out) {
        clearTimeout(idleTimer);
        idleTimer = setTimeout(() => idle.abort(), 60_000);
        out.enqueue(chunk);
      },
    }));
    for await (const ev of parseSse(watched, (ms) => { retryMs = ms; })) {
      if (ev.event === 'connected') {
        attempt = 0;
        console.error(`connected ${ev.data}`);
        continue;
      }
      if (ev.event === 'reconnect') {
        // Reconnect now: the node is shutting down, or our token expired (then with a fresh
        // one, or not at all).
        if (reasonOf(ev.data) === 'token_expired') {
          token = freshToken();
          console.error('token expired: reconnecting with a fresh one');
        } else {
          console.error('server asked to reconnect');
        }
        now = true;
        break;
      }
      const env = JSON.parse(ev.data) as Envelope;
      lastEventId = ev.id;
      console.log(JSON.stringify({ topic: env.topic, id: env.id, event: env.event, data: env.data }));
      if (++received >= max) process.exit(0);
    }
    if (!now) console.error('stream ended');
  } catch (e) {
    if (stop.signal.aborted) break;
    const err = e as Error & { cause?: Error };
    console.error(`connection failed: ${idle.signal.aborted ? 'no data for 60 s' : err.cause?.message ?? err.message}`);
  } finally {
    clearTimeout(idleTimer);
  }
  if (now || stop.signal.aborted) continue;

  // Exponential backoff from the server's retry, capped at 30 s, with jitter.
  const delay = Math.max(waitMs, Math.min(retryMs * 2 ** attempt, 30_000) * (0.5 + Math.random() / 2));
  attempt++;
  console.error(`reconnecting in ${(delay / 1000).toFixed(1)} s`);
  await sleep(delay, undefined, { signal: stop.signal }).catch(() => {});
}

if (timedOut && received < max && max !== Infinity) {
  console.error(`subscriber: timed out with ${received} of ${max} events`);
  process.exit(1);
}
process.exit(0);
