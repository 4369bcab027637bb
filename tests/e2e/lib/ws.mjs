// WebSocket subscriber using Node 22's global WebSocket.

import { baseUrl } from './config.mjs';
import { observeStatus } from './openapi.mjs';

const open = new Set();

export function closeAllWs() {
  for (const c of [...open]) c.close();
}

export class WsClient {
  constructor(ws) {
    this.ws = ws;
    this.messages = []; // parsed JSON (or { unparsable: text })
    this.texts = [];
    this.closed = false;
    this.closeEvent = null;
    this.waiters = new Set();
    open.add(this);
    ws.addEventListener('message', (ev) => {
      const text = typeof ev.data === 'string' ? ev.data : Buffer.from(ev.data).toString('utf8');
      this.texts.push(text);
      let msg;
      try { msg = JSON.parse(text); } catch { msg = { unparsable: text }; }
      this.messages.push(msg);
      this.#wake();
    });
    ws.addEventListener('close', (ev) => {
      this.closed = true;
      this.closeEvent = { code: ev.code, reason: ev.reason };
      open.delete(this);
      this.#wake();
    });
  }

  #wake() { for (const w of [...this.waiters]) w(); }

  get connected() { return this.messages.find((m) => m.type === 'connected'); }
  /** Messages after the first `connected` one. */
  get envelopes() {
    const i = this.messages.findIndex((m) => m.type === 'connected');
    return i === -1 ? [] : this.messages.slice(i + 1);
  }

  waitFor(predicate, timeoutMs = 5000, label = 'condition') {
    return new Promise((resolve, reject) => {
      let timer;
      const check = () => {
        let v;
        try { v = predicate(this); } catch (e) { cleanup(); reject(e); return; }
        if (v) { cleanup(); resolve(v); return; }
        if (this.closed) { cleanup(); reject(new Error(`WebSocket closed (${JSON.stringify(this.closeEvent)}) before ${label}`)); }
      };
      const cleanup = () => { clearTimeout(timer); this.waiters.delete(check); };
      timer = setTimeout(() => { cleanup(); reject(new Error(`timed out after ${timeoutMs} ms waiting for ${label} (${this.messages.length} messages)`)); }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  close() {
    open.delete(this);
    try { this.ws.close(); } catch { /* ignore */ }
  }
}

/** Open /ws with the given query; resolves once the socket is open and the `connected` message arrived. */
export function openWs({ path = '/ws', query = {}, timeoutMs = 10000 } = {}) {
  const url = new URL(path, baseUrl());
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  for (const [k, v] of Object.entries(query)) {
    if (Array.isArray(v)) for (const item of v) url.searchParams.append(k, item);
    else url.searchParams.append(k, v);
  }
  return new Promise((resolve, reject) => {
    let ws;
    try { ws = new WebSocket(url); } catch (e) { reject(e); return; }
    const client = new WsClient(ws);
    const timer = setTimeout(() => { client.close(); reject(new Error(`WebSocket ${url} did not open within ${timeoutMs} ms`)); }, timeoutMs);
    ws.addEventListener('error', (ev) => {
      clearTimeout(timer);
      client.close();
      reject(new Error(`WebSocket ${url} error: ${ev.message ?? ev.error?.message ?? 'unknown'}`));
    });
    ws.addEventListener('open', () => {
      // the handshake answered 101 (the WebSocket API shows no status or headers otherwise)
      try { observeStatus('GET', url.pathname, 101); } catch (e) { clearTimeout(timer); client.close(); reject(e); return; }
      client.waitFor((c) => c.connected, timeoutMs, 'the `connected` message').then(
        () => { clearTimeout(timer); resolve(client); },
        (e) => { clearTimeout(timer); client.close(); reject(e); },
      );
    });
  });
}
