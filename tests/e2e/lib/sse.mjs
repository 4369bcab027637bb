// An incremental Server-Sent Events parser (WHATWG HTML "event stream interpretation") and an
// SSE client over raw node:http (agent: false, one socket per stream, so thousands can be open).

import http from 'node:http';
import https from 'node:https';
import { baseUrl } from './config.mjs';
import { checkResponse } from './openapi.mjs';

/**
 * Incremental parser. Feed it bytes with push(); it decodes UTF-8 across chunk boundaries,
 * strips one leading BOM, accepts CRLF / CR / LF line endings (a CR at the end of a chunk
 * waits for the next chunk to see whether an LF follows), and dispatches on a blank line.
 *
 * Each dispatched event: { type, event, data, id, lastEventId, fields, at }
 *   type        event type ('message' when the block had no event: field)
 *   event       the event: field value, or null when the block had none
 *   data        data lines joined with '\n' (trailing '\n' removed, as the spec says)
 *   id          the id: field of this block, or undefined when the block had none
 *   lastEventId the parser's last-event-id buffer after this block
 *   fields      [{ field, value }] of every field line in the block, in order
 * A block whose data buffer is empty is not dispatched (but is kept in `blocks`).
 */
export class SseParser {
  constructor({ onEvent, onComment, onBlock } = {}) {
    this.decoder = new TextDecoder('utf-8');
    this.line = '';
    this.pendingCR = false;
    this.bomChecked = false;
    this.dataBuf = '';
    this.eventBuf = '';
    this.blockId = undefined;
    this.blockFields = [];
    this.lastEventId = '';
    this.retry = null;
    this.events = [];
    this.comments = [];
    this.blocks = [];
    this.onEvent = onEvent;
    this.onComment = onComment;
    this.onBlock = onBlock;
  }

  /** Feed bytes (Buffer/Uint8Array) or an already-decoded string. */
  push(chunk) {
    const text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    this.#pushText(text);
  }

  /** End of stream: flush the decoder. An unterminated last block is discarded (per spec). */
  end() {
    this.#pushText(this.decoder.decode());
  }

  #pushText(text) {
    if (text.length === 0) return;
    if (!this.bomChecked) {
      this.bomChecked = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      if (text.length === 0) return;
    }
    let i = 0;
    if (this.pendingCR) {
      this.pendingCR = false;
      if (text[0] === '\n') i = 1;
    }
    let start = i;
    for (; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 13 && c !== 10) continue;
      const line = this.line + text.slice(start, i);
      this.line = '';
      if (c === 13) {
        if (i + 1 < text.length) {
          if (text.charCodeAt(i + 1) === 10) i++;
        } else {
          this.pendingCR = true;
        }
      }
      start = i + 1;
      this.#processLine(line);
    }
    this.line += text.slice(start);
  }

  #processLine(line) {
    if (line === '') return this.#dispatch();
    if (line[0] === ':') {
      let text = line.slice(1);
      if (text[0] === ' ') text = text.slice(1);
      const comment = { text, at: Date.now() };
      this.comments.push(comment);
      this.onComment?.(comment);
      return;
    }
    const colon = line.indexOf(':');
    let field;
    let value;
    if (colon === -1) {
      field = line;
      value = '';
    } else {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value[0] === ' ') value = value.slice(1);
    }
    this.blockFields.push({ field, value });
    switch (field) {
      case 'event':
        this.eventBuf = value;
        break;
      case 'data':
        this.dataBuf += value + '\n';
        break;
      case 'id':
        if (!value.includes('\0')) {
          this.lastEventId = value;
          this.blockId = value;
        }
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break; // unknown fields are ignored
    }
  }

  #dispatch() {
    const fields = this.blockFields;
    const hadId = this.blockId;
    const dataBuf = this.dataBuf;
    const eventBuf = this.eventBuf;
    this.blockFields = [];
    this.blockId = undefined;
    this.dataBuf = '';
    this.eventBuf = '';
    if (fields.length === 0) return; // a blank line with nothing before it
    const dispatched = dataBuf !== '';
    const block = { fields, dispatched, at: Date.now() };
    this.blocks.push(block);
    this.onBlock?.(block);
    if (!dispatched) return;
    const ev = {
      type: eventBuf === '' ? 'message' : eventBuf,
      event: eventBuf === '' ? null : eventBuf,
      data: dataBuf.slice(0, -1),
      id: hadId,
      lastEventId: this.lastEventId,
      fields,
      at: block.at,
    };
    this.events.push(ev);
    this.onEvent?.(ev);
  }
}

const openClients = new Set();

/** Close every SSE client still open (use in after() so a failing test cannot hang the file). */
export function closeAllSse() {
  for (const c of [...openClients]) c.close();
}

/** Number of SSE clients opened by this process that are still open. */
export function openSseCount() {
  return openClients.size;
}

/**
 * A live SSE stream. `events`, `comments`, `blocks` grow as frames arrive; `raw` is every
 * byte received so far (Buffer). waitFor(pred, ms) resolves with pred's first truthy result.
 */
export class SseClient {
  constructor(req, res, startedAt) {
    this.req = req;
    this.res = res;
    this.status = res.statusCode;
    this.headers = res.headers;
    this.startedAt = startedAt;
    this.chunks = [];
    this.ended = false;
    this.closedByUs = false;
    this.error = null;
    this.waiters = new Set();
    this.parser = new SseParser({
      onEvent: () => this.#wake(),
      onComment: () => this.#wake(),
    });
    openClients.add(this);
    res.on('data', (chunk) => {
      this.chunks.push(chunk);
      this.parser.push(chunk);
      this.#wake();
    });
    const finish = (err) => {
      if (this.ended) return;
      this.ended = true;
      this.endedAt = Date.now();
      if (err && !this.closedByUs) this.error = err;
      try { this.parser.end(); } catch { /* ignore */ }
      openClients.delete(this);
      this.#wake();
    };
    res.on('end', () => finish());
    res.on('close', () => finish());
    res.on('error', (e) => finish(e));
    req.on('error', (e) => finish(e));
  }

  get events() { return this.parser.events; }
  get comments() { return this.parser.comments; }
  get blocks() { return this.parser.blocks; }
  get raw() { return Buffer.concat(this.chunks); }
  get rawText() { return this.raw.toString('utf8'); }
  /** The `event: connected` frame's parsed JSON data (or undefined before it arrived). */
  get connected() {
    const ev = this.parser.events.find((e) => e.type === 'connected');
    if (!ev) return undefined;
    try { return JSON.parse(ev.data); } catch { return { unparsable: ev.data }; }
  }
  get connectedEvent() { return this.parser.events.find((e) => e.type === 'connected'); }
  get connectionId() { return this.connected?.connection_id; }
  /** Events other than the opening `connected` frame. */
  get published() { return this.parser.events.filter((e) => e.type !== 'connected'); }

  #wake() {
    for (const w of [...this.waiters]) w();
  }

  /**
   * Resolve with the first truthy value of predicate(client); reject after timeoutMs, or
   * when the stream ends without the predicate holding.
   */
  waitFor(predicate, timeoutMs = 5000, label = 'condition') {
    return new Promise((resolve, reject) => {
      let timer;
      const check = () => {
        let v;
        try { v = predicate(this); } catch (e) { cleanup(); reject(e); return; }
        if (v) { cleanup(); resolve(v); return; }
        if (this.ended) {
          cleanup();
          reject(new Error(`SSE stream ended before ${label} (status ${this.status}, ${this.events.length} events, error: ${this.error?.message ?? 'none'})`));
        }
      };
      const cleanup = () => { clearTimeout(timer); this.waiters.delete(check); };
      timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${label} (${this.events.length} events, ${this.comments.length} comments received)`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /** Wait for an event (other than `connected`) matching pred. */
  waitForEvent(pred, timeoutMs = 5000, label = 'event') {
    return this.waitFor((c) => c.published.find(pred), timeoutMs, label);
  }

  /** Wait until n events (other than `connected`) have arrived; resolves with them. */
  waitForCount(n, timeoutMs = 5000) {
    return this.waitFor((c) => (c.published.length >= n ? c.published.slice(0, n) : null), timeoutMs, `${n} events`);
  }

  /** Resolve when the stream has ended (e.g. server closed it). */
  waitForEnd(timeoutMs = 5000) {
    return this.waitFor((c) => c.ended, timeoutMs, 'end of stream').catch((e) => {
      if (this.ended) return true;
      throw e;
    });
  }

  /** Abort the connection (TCP close). */
  close() {
    if (this.ended && this.req.destroyed) return;
    this.closedByUs = true;
    try { this.req.destroy(); } catch { /* ignore */ }
    try { this.res.destroy(); } catch { /* ignore */ }
    openClients.delete(this);
  }
}

function buildUrl(path, query) {
  const url = new URL(path, baseUrl());
  if (query) {
    for (const [k, v] of Object.entries(query)) {
      if (Array.isArray(v)) for (const item of v) url.searchParams.append(k, item);
      else if (v !== undefined && v !== null) url.searchParams.append(k, v);
    }
  }
  return url;
}

/**
 * Open an SSE stream.
 *   path      default '/sse' (may include a raw query string)
 *   query     object of query params (arrays repeat the param)
 *   headers   request headers
 *   waitConnected  wait for the `connected` frame when the status is 200 (default true)
 *   timeoutMs  for the response head and the connected frame (default 10000)
 * Resolves with an SseClient when the status is 200. Otherwise resolves with
 * { status, headers, body, json } after reading the (error) body. Either way the response is
 * checked against docs/openapi.yaml first (an OpenApiMismatch rejects).
 */
export function openSse({ path = '/sse', query, headers = {}, waitConnected = true, timeoutMs = 10000 } = {}) {
  const url = buildUrl(path, query);
  const mod = url.protocol === 'https:' ? https : http;
  const startedAt = Date.now();
  return new Promise((resolve, reject) => {
    const req = mod.request(url, {
      method: 'GET',
      agent: false,
      headers: { accept: 'text/event-stream', ...headers },
    });
    const timer = setTimeout(() => {
      req.destroy(new Error(`no response head from ${url.pathname}${url.search} within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('error', (e) => { clearTimeout(timer); reject(e); });
    req.on('response', (res) => {
      clearTimeout(timer);
      const target = url.pathname;
      if (res.statusCode !== 200) {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          let json;
          try { json = JSON.parse(body); } catch { json = undefined; }
          // checked against docs/openapi.yaml: a mismatch fails the caller
          try {
            checkResponse({ method: 'GET', target, status: res.statusCode, headers: res.headers, body, bodyComplete: res.complete });
          } catch (e) {
            reject(e);
            return;
          }
          resolve({ status: res.statusCode, headers: res.headers, body, json, isError: true });
        });
        res.on('error', reject);
        return;
      }
      try {
        // status, headers and content type (the stream itself is not a document)
        checkResponse({ method: 'GET', target, status: res.statusCode, headers: res.headers, bodyComplete: false });
      } catch (e) {
        req.destroy();
        reject(e);
        return;
      }
      const client = new SseClient(req, res, startedAt);
      if (!waitConnected) { resolve(client); return; }
      client.waitFor((c) => c.connectedEvent, timeoutMs, 'the `connected` frame').then(
        () => resolve(client),
        (e) => { client.close(); reject(e); },
      );
    });
    req.end();
  });
}

/** Like openSse but fails unless the stream opened with status 200. */
export async function subscribe(opts = {}) {
  const r = await openSse(opts);
  if (r.isError) {
    throw new Error(`subscribe ${opts.path ?? '/sse'} expected 200, got ${r.status}: ${r.body.slice(0, 300)}`);
  }
  return r;
}
