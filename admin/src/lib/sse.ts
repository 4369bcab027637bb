// An incremental Server-Sent Events parser (WHATWG HTML §9.2.6) over a fetch() body.
// EventSource cannot send the authorization header, so the tail is read with fetch + streams.

export interface SseMessage {
  event: string;
  data: string;
  id: string;
}

export class SseParser {
  private buf = '';
  private pendingCr = false;
  private data = '';
  private event = '';
  private lastId = '';
  private sawData = false;
  private readonly decoder = new TextDecoder('utf-8');
  constructor(private readonly onMessage: (m: SseMessage) => void, private readonly onRetry?: (ms: number) => void) {}

  push(chunk: Uint8Array) {
    this.feed(this.decoder.decode(chunk, { stream: true }));
  }

  end() {
    this.feed(this.decoder.decode());
  }

  private feed(text: string) {
    if (!text) return;
    let s = this.buf + text;
    this.buf = '';
    // A CR at the end of the previous chunk already ended a line: drop a LF that follows it.
    if (this.pendingCr) {
      this.pendingCr = false;
      if (s.startsWith('\n')) s = s.slice(1);
    }
    let start = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.line(s.slice(start, i));
      if (c === 13) {
        if (i + 1 < s.length) {
          if (s.charCodeAt(i + 1) === 10) i++;
        } else {
          this.pendingCr = true;
        }
      }
      start = i + 1;
    }
    this.buf = s.slice(start);
  }

  private line(l: string) {
    if (l === '') {
      this.dispatch();
      return;
    }
    if (l.charCodeAt(0) === 58 /* ':' comment */) return;
    const colon = l.indexOf(':');
    let field = l;
    let value = '';
    if (colon >= 0) {
      field = l.slice(0, colon);
      value = l.slice(colon + 1);
      if (value.charCodeAt(0) === 32) value = value.slice(1);
    }
    switch (field) {
      case 'event':
        this.event = value;
        break;
      case 'data':
        this.data += `${value}\n`;
        this.sawData = true;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.onRetry?.(Number(value));
        break;
      default:
        break;
    }
  }

  private dispatch() {
    if (!this.sawData) {
      this.event = '';
      return;
    }
    const data = this.data.endsWith('\n') ? this.data.slice(0, -1) : this.data;
    const msg = { event: this.event || 'message', data, id: this.lastId };
    this.data = '';
    this.event = '';
    this.sawData = false;
    this.onMessage(msg);
  }
}
