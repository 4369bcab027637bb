// A small Server-Sent Events parser, following the WHATWG spec's "interpret an event stream":
// lines end with CRLF, LF or CR; `data:` lines are joined with "\n"; a blank line dispatches.

export interface SseEvent {
  /** The `event:` field, "message" when the frame had none. */
  event: string;
  data: string;
  /** The last `id:` seen on the stream (it persists across events, as in EventSource). */
  id: string;
}

/** Yields the events of an SSE body; `onRetry` gets each `retry:` field (milliseconds). */
export async function* parseSse(
  body: ReadableStream<Uint8Array>,
  onRetry: (ms: number) => void = () => {},
): AsyncGenerator<SseEvent> {
  let buffer = '';
  let lastId = '';
  let event = '';
  let data: string[] = [];

  for await (const chunk of body.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    // A CR at the very end may be the first half of CRLF: leave it for the next chunk.
    const lineEnd = /\r\n|\n|\r(?!$)/g;
    let start = 0;
    for (let m = lineEnd.exec(buffer); m; m = lineEnd.exec(buffer)) {
      const line = buffer.slice(start, m.index);
      start = m.index + m[0].length;

      if (line === '') {
        // A blank line ends the frame; a frame without `data:` dispatches nothing.
        if (data.length) yield { event: event || 'message', data: data.join('\n'), id: lastId };
        event = '';
        data = [];
        continue;
      }
      if (line.startsWith(':')) continue; // a comment, e.g. `: keepalive`

      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);

      if (field === 'data') data.push(value);
      else if (field === 'event') event = value;
      else if (field === 'id' && !value.includes('\0')) lastId = value;
      else if (field === 'retry' && /^\d+$/.test(value)) onRetry(Number(value));
    }
    buffer = buffer.slice(start);
  }
}
