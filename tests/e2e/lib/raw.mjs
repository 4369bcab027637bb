// Raw HTTP/1.1 over node:net (or node:tls): send exact bytes — CR/LF inside header values,
// obs-fold, non-ASCII bytes, or a request head that declares a body which is never sent —
// and parse whatever comes back.

import net from 'node:net';
import tls from 'node:tls';
import { baseUrl, config } from './config.mjs';
import { checkResponse } from './openapi.mjs';

/** `host[:port]` for the Host header. */
export function hostHeader() {
  return baseUrl().host;
}

/**
 * Build request bytes. headers: array of [name, value] pairs or raw header lines (strings or
 * Buffers, written verbatim followed by CRLF). Values are written verbatim too, so a value may
 * carry a bare CR, LF or NUL. A Host header is added unless one is given.
 */
export function buildRequest(method, target, headers = [], body) {
  const parts = [Buffer.from(`${method} ${target} HTTP/1.1\r\n`, 'latin1')];
  let hasHost = false;
  for (const h of headers) {
    if (Array.isArray(h)) {
      if (String(h[0]).toLowerCase() === 'host') hasHost = true;
      parts.push(Buffer.from(`${h[0]}: `, 'latin1'), Buffer.isBuffer(h[1]) ? h[1] : Buffer.from(String(h[1]), 'latin1'), Buffer.from('\r\n'));
    } else {
      const line = Buffer.isBuffer(h) ? h : Buffer.from(String(h), 'latin1');
      if (/^host:/i.test(line.toString('latin1'))) hasHost = true;
      parts.push(line, Buffer.from('\r\n'));
    }
  }
  if (!hasHost) parts.splice(1, 0, Buffer.from(`host: ${hostHeader()}\r\n`, 'latin1'));
  parts.push(Buffer.from('\r\n'));
  if (body !== undefined) parts.push(Buffer.isBuffer(body) ? body : Buffer.from(String(body), 'utf8'));
  return Buffer.concat(parts);
}

/** Incremental HTTP/1.1 response parser (status line, headers, content-length / chunked / close-delimited body). */
class ResponseParser {
  constructor(method) {
    this.method = method;
    this.buf = Buffer.alloc(0);
    this.head = null;
    this.body = [];
    this.bodyLen = 0;
    this.done = false;
    this.interim = [];
    this.chunkState = { size: -1 };
  }

  push(chunk) {
    this.buf = Buffer.concat([this.buf, chunk]);
    this.#advance();
  }

  #advance() {
    while (!this.done) {
      if (!this.head) {
        const end = this.buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        const headText = this.buf.subarray(0, end).toString('latin1');
        this.buf = this.buf.subarray(end + 4);
        const [statusLine, ...lines] = headText.split('\r\n');
        const m = /^HTTP\/(\d\.\d) (\d{3})(?: (.*))?$/.exec(statusLine);
        const head = { statusLine, status: m ? Number(m[2]) : NaN, statusText: m?.[3] ?? '', headers: {}, rawHeaders: lines };
        for (const line of lines) {
          const i = line.indexOf(':');
          if (i <= 0) continue;
          const k = line.slice(0, i).trim().toLowerCase();
          const v = line.slice(i + 1).trim();
          head.headers[k] = k in head.headers ? `${head.headers[k]}, ${v}` : v;
        }
        if (head.status >= 100 && head.status < 200 && head.status !== 101) {
          this.interim.push(head);
          continue;
        }
        this.head = head;
        const te = (head.headers['transfer-encoding'] || '').toLowerCase();
        if (this.method === 'HEAD' || head.status === 204 || head.status === 304 || head.status === 101) {
          this.mode = 'none';
          this.done = true;
          return;
        }
        if (te.includes('chunked')) this.mode = 'chunked';
        else if (head.headers['content-length'] !== undefined) {
          this.mode = 'length';
          this.remaining = Number(head.headers['content-length']);
          if (this.remaining === 0) { this.done = true; return; }
        } else this.mode = 'close';
        continue;
      }
      if (this.mode === 'length') {
        const take = this.buf.subarray(0, this.remaining);
        if (take.length) { this.body.push(take); this.bodyLen += take.length; }
        this.remaining -= take.length;
        this.buf = this.buf.subarray(take.length);
        if (this.remaining === 0) this.done = true;
        return;
      }
      if (this.mode === 'close') {
        if (this.buf.length) { this.body.push(this.buf); this.bodyLen += this.buf.length; this.buf = Buffer.alloc(0); }
        return;
      }
      if (this.mode === 'chunked') {
        const st = this.chunkState;
        if (st.size === -1) {
          const eol = this.buf.indexOf('\r\n');
          if (eol === -1) return;
          st.size = parseInt(this.buf.subarray(0, eol).toString('latin1').split(';')[0].trim(), 16);
          this.buf = this.buf.subarray(eol + 2);
          if (Number.isNaN(st.size)) { this.done = true; this.malformed = true; return; }
          if (st.size === 0) { st.trailers = true; }
        }
        if (st.trailers) {
          // skip trailers up to the empty line
          const eol = this.buf.indexOf('\r\n');
          if (eol === -1) return;
          const line = this.buf.subarray(0, eol);
          this.buf = this.buf.subarray(eol + 2);
          if (line.length === 0) { this.done = true; return; }
          continue;
        }
        if (this.buf.length < st.size + 2) return;
        this.body.push(this.buf.subarray(0, st.size));
        this.bodyLen += st.size;
        this.buf = this.buf.subarray(st.size + 2);
        st.size = -1;
        continue;
      }
      return;
    }
  }
}

/**
 * Send exact bytes on a fresh connection and read one response.
 *   parts: Buffer | string | Array<Buffer|string> written in order (each part its own write)
 *   timeoutMs: how long to wait for a complete response (default 5000)
 *   keepOpen: do not end our side after writing (default true — we never half-close, so a
 *             server waiting for a declared body sees an idle, open connection)
 * Rejects only with an OpenApiMismatch when a response came back that does not match
 * docs/openapi.yaml; otherwise resolves with
 *   { status, statusText, headers, body: Buffer, text, json, complete, closed, timedOut,
 *     error, elapsedMs, firstByteMs, interim, raw }
 * status is null when no response head arrived.
 */
export function rawRequest(parts, { timeoutMs = 5000, method } = {}) {
  const url = baseUrl();
  const isTls = url.protocol === 'https:';
  const port = Number(url.port || (isTls ? 443 : 80));
  const list = Array.isArray(parts) ? parts : [parts];
  const bufs = list.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p, 'latin1')));
  const m = method ?? /^([A-Z]+) /.exec(bufs[0]?.toString('latin1') ?? '')?.[1] ?? 'GET';
  // the request target as sent (not normalised), for the OpenAPI check; a request line we cannot
  // read is matched as "any other path"
  const requestTarget = /^[A-Z]+ (\S+) HTTP\/1\.[01]\r?\n/.exec(Buffer.concat(bufs).subarray(0, 200_000).toString('latin1'))?.[1] ?? '(unparsable request line)';
  const parser = new ResponseParser(m);
  const raw = [];
  const started = Date.now();
  let firstByteMs = null;
  return new Promise((resolve, reject) => {
    let settled = false;
    let closed = false;
    let error = null;
    const sock = isTls
      ? tls.connect({ host: url.hostname, port, servername: url.hostname })
      : net.connect({ host: url.hostname, port });
    const finish = (timedOut) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const body = Buffer.concat(parser.body);
      const text = body.toString('utf8');
      let json;
      try { json = JSON.parse(text); } catch { json = undefined; }
      if (parser.head) {
        // checked against docs/openapi.yaml: a mismatch rejects (and fails the caller's test)
        try {
          checkResponse({ method: m, target: requestTarget, status: parser.head.status, headers: parser.head.headers, body, bodyComplete: parser.done && !parser.malformed, httpLayer: true });
        } catch (e) {
          sock.destroy();
          reject(e);
          return;
        }
      }
      resolve({
        status: parser.head ? parser.head.status : null,
        statusText: parser.head?.statusText ?? '',
        headers: parser.head?.headers ?? {},
        body,
        text,
        json,
        complete: parser.done,
        closed,
        timedOut,
        error,
        elapsedMs: Date.now() - started,
        firstByteMs,
        interim: parser.interim,
        raw: Buffer.concat(raw),
      });
      sock.destroy();
    };
    const timer = setTimeout(() => finish(true), timeoutMs);
    sock.on(isTls ? 'secureConnect' : 'connect', () => {
      for (const b of bufs) sock.write(b);
    });
    sock.on('data', (chunk) => {
      if (firstByteMs === null) firstByteMs = Date.now() - started;
      raw.push(chunk);
      parser.push(chunk);
      if (parser.done) finish(false);
    });
    sock.on('error', (e) => { error = e; });
    sock.on('close', () => {
      closed = true;
      // a close-delimited body is complete at close
      if (parser.head && parser.mode === 'close') parser.done = true;
      finish(false);
    });
  });
}

/** rawRequest with a request built by buildRequest(). */
export function rawSend(method, target, headers, body, opts) {
  return rawRequest(buildRequest(method, target, headers, body), { method, ...opts });
}

/** [name, value] pairs carrying the API key. */
export function rawAuth(key = config.apiKey) {
  return [['authorization', `Bearer ${key}`]];
}
