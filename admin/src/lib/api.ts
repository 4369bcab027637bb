// The admin API client: every call sends `authorization: Bearer <key>`; a 401 anywhere sends the
// user back to the login screen (see App).

export const KEY_STORAGE = 'sse-gateway-admin.api-key';

export function loadKey(): string | null {
  try {
    return localStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

export function saveKey(key: string) {
  localStorage.setItem(KEY_STORAGE, key);
}

export function clearKey() {
  try {
    localStorage.removeItem(KEY_STORAGE);
  } catch {
    /* storage unavailable: nothing to clear */
  }
}

export type Mode = 'unicast' | 'multicast';

export interface Topic {
  topic: string;
  connections: number;
  mode: Mode;
}

export interface TopicsPage {
  topics: Topic[];
  total: number;
  next_cursor: string | null;
}

export interface Connection {
  id: string;
  topics: string[];
  transport: 'sse' | 'ws' | string;
  connected_at: string;
  node: string;
  events_sent: number;
  /** The `sub` of the subscriber token the connection opened with (absent without one). */
  sub?: string | null;
}

export interface ConnectionsPage {
  connections: Connection[];
  total: number;
  next_cursor: string | null;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
  get unauthorized() {
    return this.status === 401;
  }
}

/** A failure to reach the gateway at all (network down, gateway stopped). */
export class NetworkError extends Error {
  constructor(cause: unknown) {
    super(`Cannot reach the gateway (${cause instanceof Error ? cause.message : String(cause)}). Check that it is running and reachable from this browser.`);
    this.name = 'NetworkError';
  }
}

export function authHeaders(key: string): Record<string, string> {
  return { authorization: `Bearer ${key}` };
}

export async function errorFrom(resp: Response): Promise<ApiError> {
  let code = `http_${resp.status}`;
  let message = `${resp.status} ${resp.statusText || 'error'}`;
  try {
    const body = (await resp.json()) as { error?: { code?: string; message?: string } };
    if (body?.error?.code) code = body.error.code;
    if (body?.error?.message) message = body.error.message;
  } catch {
    /* not JSON */
  }
  return new ApiError(resp.status, code, message);
}

export async function apiGet<T>(key: string, path: string, params: Record<string, string | number | null | undefined> = {}, signal?: AbortSignal): Promise<T> {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== '') qs.set(k, String(v));
  const url = `/admin/api/${path}${qs.size ? `?${qs}` : ''}`;
  let resp: Response;
  try {
    resp = await fetch(url, { headers: authHeaders(key), signal, cache: 'no-store' });
  } catch (e) {
    if (signal?.aborted) throw e;
    throw new NetworkError(e);
  }
  if (!resp.ok) throw await errorFrom(resp);
  return (await resp.json()) as T;
}

/** `GET /admin/api/stats`: the gateway's counts (one native node, or the whole Cloudflare deployment). */
export interface GatewayStats {
  scope: 'node' | 'deployment';
  runtime: string;
  node: string | null;
  connections: number;
  topics: number;
  publishes: number;
  deliveries: number;
  drops: number;
  evictions: number;
  replayed: number;
}

export function fetchStats(key: string, signal?: AbortSignal): Promise<GatewayStats> {
  return apiGet<GatewayStats>(key, 'stats', {}, signal);
}

/** Every live topic: follows next_cursor (500 a page) up to `maxPages` pages. */
export async function fetchAllTopics(key: string, signal?: AbortSignal, maxPages = 20): Promise<{ topics: Topic[]; total: number; truncated: boolean }> {
  const topics: Topic[] = [];
  let cursor: string | null = null;
  let total = 0;
  for (let i = 0; i < maxPages; i++) {
    const page: TopicsPage = await apiGet<TopicsPage>(key, 'topics', { limit: 500, cursor }, signal);
    topics.push(...page.topics);
    total = page.total;
    cursor = page.next_cursor;
    if (!cursor) return { topics, total, truncated: false };
  }
  return { topics, total, truncated: true };
}

export const TOPIC_RE = /^[A-Za-z0-9_.:-]{1,128}$/;

export function topicProblem(t: string): string | null {
  if (!t) return 'Enter a topic name.';
  if (t.length > 128) return 'A topic is at most 128 characters.';
  if (!TOPIC_RE.test(t)) return 'A topic uses only letters, digits and _ - . :';
  return null;
}
