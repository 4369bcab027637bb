// The per-frame path of a connection the Worker holds (src/holder.rs), kept in JavaScript so that
// a frame crosses into the Worker's wasm zero times: each message of the connection's internal
// sockets is handed on to the client as it is. It decides nothing: the first thing that ends the
// connection is reported once, as an outcome name, to `onEnd`, and the Worker decides what to do.
//
// Outcomes: "full" (more frames unread than the stream holds), "closed" (the client's side is
// gone), "upstream" (an internal socket closed or failed), or what the Worker passes to the
// returned `end` function.

const encoder = new TextEncoder();

function relay(sockets, onEnd, deliver) {
  let done = false;
  const end = (outcome) => {
    if (!done) {
      done = true;
      onEnd(outcome);
    }
  };
  for (const ws of sockets) {
    ws.addEventListener("message", (e) => {
      if (!done) {
        const outcome = deliver(e.data);
        if (outcome) end(outcome);
      }
    });
    ws.addEventListener("close", () => end("upstream"));
    ws.addEventListener("error", () => end("upstream"));
    // Listeners first, then accept: no frame the object sent first is missed.
    try {
      ws.accept();
    } catch {
      end("upstream");
    }
  }
  return end;
}

// Into an SSE response body: `controller` is the controller of its ReadableStream, whose
// high-water mark is the number of frames the client may leave unread.
export function relayToStream(sockets, controller, onEnd) {
  return relay(sockets, onEnd, (data) => {
    try {
      controller.enqueue(typeof data === "string" ? encoder.encode(data) : new Uint8Array(data));
    } catch {
      return "closed";
    }
    const room = controller.desiredSize;
    return room === null ? "closed" : room < 0 ? "full" : null;
  });
}

// Into the client's own WebSocket (a WebSocket client of several topics): text as it is.
export function relayToSocket(sockets, client, onEnd) {
  return relay(sockets, onEnd, (data) => {
    try {
      client.send(data);
    } catch {
      return "closed";
    }
    return null;
  });
}
