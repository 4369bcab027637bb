// Publish N events to several topics and print the per-topic outcome as JSON lines; or mint a
// subscriber token for private topics (with `jose`, the one package: `npm install` here).
//
//   SSE_API_KEY=dev-key-change-me node publisher.ts --url http://127.0.0.1:8787 \
//     --topics orders,user:42 [--count N] [--prefix ID_PREFIX]
//   SUBSCRIBER_TOKEN_SECRET=... node publisher.ts mint-token --topics user:42,team:7:* [--sub user-42] [--ttl 3600]
//   SUBSCRIBER_TOKEN_PRIVATE_KEY="$(cat key.pem)" node publisher.ts mint-token --alg EdDSA --kid k1 --topics ...
import { parseArgs } from 'node:util';

if (process.argv[2] === 'mint-token') process.exit(await mintToken(process.argv.slice(3)));

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

/**
 * `publisher mint-token`: print a subscriber token, a JWT that opens --topics for --ttl seconds.
 * Your backend does this for a signed-in user and hands the token to the user's client. HS256
 * with SUBSCRIBER_TOKEN_SECRET (one of the gateway's SUBSCRIBER_TOKEN_SECRETS), or EdDSA / ES256
 * with SUBSCRIBER_TOKEN_PRIVATE_KEY (a PKCS#8 PEM) whose public key the gateway lists in
 * SUBSCRIBER_TOKEN_PUBLIC_KEYS under --kid: then the gateway holds no secret at all.
 */
async function mintToken(argv: string[]): Promise<number> {
  const usage = 'usage: SUBSCRIBER_TOKEN_SECRET=... publisher mint-token --topics a,b [--sub ID] [--ttl SECONDS]\n' +
    '       SUBSCRIBER_TOKEN_PRIVATE_KEY=PEM publisher mint-token --alg EdDSA|ES256 --kid KID --topics a,b [--sub ID] [--ttl SECONDS]';
  let o;
  try {
    o = parseArgs({
      args: argv,
      options: {
        topics: { type: 'string' },
        sub: { type: 'string' },
        ttl: { type: 'string', default: '3600' },
        alg: { type: 'string', default: 'HS256' },
        kid: { type: 'string' },
      },
    }).values;
  } catch (e) {
    console.error(`publisher mint-token: ${(e as Error).message}\n${usage}`);
    return 2;
  }
  const ttl = Number(o.ttl);
  const secret = process.env.SUBSCRIBER_TOKEN_SECRET;
  const pem = process.env.SUBSCRIBER_TOKEN_PRIVATE_KEY;
  const hs256 = o.alg === 'HS256';
  const keyOk = hs256 ? !!secret : ['EdDSA', 'ES256'].includes(o.alg) && !!pem && !!o.kid;
  if (!o.topics || !Number.isInteger(ttl) || ttl <= 0 || !keyOk) {
    console.error(`publisher mint-token: needs --topics, a whole --ttl and ${hs256 ? 'SUBSCRIBER_TOKEN_SECRET' : '--kid and SUBSCRIBER_TOKEN_PRIVATE_KEY'}\n${usage}`);
    return 2;
  }

  // Imported here, so that publishing needs no package.
  const { SignJWT, importPKCS8 } = await import('jose');
  const key = hs256 ? new TextEncoder().encode(secret) : await importPKCS8(pem!, o.alg);
  const jwt = new SignJWT({ topics: o.topics.split(',').map((t) => t.trim()) })
    .setProtectedHeader(hs256 ? { alg: 'HS256', typ: 'JWT' } : { alg: o.alg, typ: 'JWT', kid: o.kid })
    .setIssuedAt()
    .setExpirationTime(`${ttl}s`); // from now
  if (o.sub) jwt.setSubject(o.sub);
  console.log(await jwt.sign(key));
  return 0;
}
