// Configuration of the end-to-end suite, read from the environment.
//
//   E2E_BASE_URL        gateway under test, e.g. http://127.0.0.1:8799 (required; run.mjs sets it)
//   E2E_API_KEY         an API key the gateway accepts (default dev-key-change-me)
//   E2E_HEARTBEAT_MS    HEARTBEAT_INTERVAL_MS configured on the target (default 15000)
//   E2E_TARGET          label: wrangler-dev | native | deployed (default wrangler-dev)
//   E2E_MAX_BODY_BYTES  MAX_BODY_BYTES configured on the target (default 65536)
//   E2E_MAX_TOPICS      MAX_TOPICS_PER_REQUEST configured on the target (default 64)
//   E2E_VARS            JSON object of other settings the target was started with (run.mjs --var)

function int(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return n;
}

const rawBase = (process.env.E2E_BASE_URL || '').trim().replace(/\/+$/, '');

export const config = Object.freeze({
  baseUrl: rawBase,
  apiKey: process.env.E2E_API_KEY || 'dev-key-change-me',
  heartbeatMs: int('E2E_HEARTBEAT_MS', 15000),
  target: process.env.E2E_TARGET || 'wrangler-dev',
  maxBodyBytes: int('E2E_MAX_BODY_BYTES', 65536),
  maxTopics: int('E2E_MAX_TOPICS', 64),
  vars: Object.freeze(JSON.parse(process.env.E2E_VARS || '{}')),
});

/** The parsed base URL; throws a clear error when E2E_BASE_URL is missing. */
export function baseUrl() {
  if (!config.baseUrl) {
    throw new Error('E2E_BASE_URL is not set: run `node tests/e2e/run.mjs` (it starts wrangler dev) or set E2E_BASE_URL');
  }
  return new URL(config.baseUrl);
}

/** The runtime name /healthz should report for the configured target. */
export function expectedRuntime() {
  return config.target === 'native' ? 'native' : 'cloudflare';
}

/**
 * Appended to failures of "answered while the body is held back" checks. `wrangler dev` (not
 * production) wraps the Worker in a middleware that drains an unread request body before the
 * response is let out; run.mjs disables it with WRANGLER_DISABLE_REQUEST_BODY_DRAINING=1.
 */
export function heldBackHint() {
  return config.target === 'wrangler-dev'
    ? ' [if this wrangler dev was not started by run.mjs: start it with WRANGLER_DISABLE_REQUEST_BODY_DRAINING=1, wrangler\'s dev-only middleware drains unread request bodies before responding]'
    : '';
}
