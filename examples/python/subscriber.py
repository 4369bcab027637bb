#!/usr/bin/env python3
"""Subscribe to several topics over SSE and print each event as one JSON line.

    python subscriber.py --url http://127.0.0.1:8787 --topics orders,user:42 [--max N] [--timeout S] \\
        [--token TOKEN] [--token-command CMD]

httpx streams the response; httpx-sse parses it into events. Private topics need a subscriber
token (--token or SSE_TOKEN); --token-command (or SSE_TOKEN_COMMAND) is a shell command that
prints a fresh one, run when the gateway says the token expired.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time

import httpx
from httpx_sse import connect_sse


class TokenExpired(Exception):
    """The token expired and no fresh one could be had."""


def fresh_token(command: str | None) -> str:
    """Run the token command (through the shell): its output, stripped, is the new token."""
    if not command:
        raise TokenExpired("token expired (set --token-command or SSE_TOKEN_COMMAND to get fresh ones)")
    try:
        token = subprocess.run(command, shell=True, check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
    except subprocess.CalledProcessError as e:
        raise TokenExpired(f"token command: {e}") from e
    if not token:
        raise TokenExpired("token command printed nothing")
    return token


def subscribe(url: str, topics: str, max_events: int | None, token: str | None, token_command: str | None) -> int:
    """Print events until `max_events` (or forever), reconnecting with backoff. Returns the exit code."""
    if not token and token_command:
        token = fresh_token(token_command)
    received = 0
    last_event_id = None
    retry_ms = 3000  # until the server's `retry:` says otherwise
    attempt = 0  # failed connections since the last successful one
    # No overall timeout on a stream; a read that waits 60 s (4 missed keepalives) is a dead link.
    timeout = httpx.Timeout(10.0, read=60.0)

    with httpx.Client(timeout=timeout) as client:
        while True:
            headers = {"x-sse-topic": topics}
            if last_event_id:
                # Resume after the last event we printed (a gateway with replay fills the gap).
                headers["last-event-id"] = last_event_id
            if token:
                headers["authorization"] = f"Bearer {token}"
            wait_s = 0.0  # at least this long before the next attempt (from retry-after)
            at_once = False  # the server asked us to reconnect now
            try:
                with connect_sse(client, "GET", f"{url}/sse", params={"envelope": "json"}, headers=headers) as source:
                    status = source.response.status_code
                    if 400 <= status < 500 and status != 429:
                        # Our request is wrong (bad topic, ...): retrying will not help.
                        source.response.read()
                        print(f"subscriber: HTTP {status}: {source.response.text}", file=sys.stderr)
                        return 1
                    if status != 200:
                        retry_after = source.response.headers.get("retry-after", "")
                        wait_s = float(retry_after) if retry_after.isdigit() else 0.0
                        raise httpx.HTTPStatusError(f"HTTP {status}", request=source.response.request, response=source.response)
                    for sse in source.iter_sse():
                        if sse.retry is not None:
                            retry_ms = sse.retry
                        if sse.event == "connected":
                            attempt = 0
                            print(f"connected {sse.data}", file=sys.stderr, flush=True)
                            continue
                        if sse.event == "reconnect":
                            # Reconnect now: the node is shutting down, or our token expired
                            # (then with a fresh one, or not at all).
                            if json.loads(sse.data or "{}").get("reason") == "token_expired":
                                token = fresh_token(token_command)
                                print("token expired: reconnecting with a fresh one", file=sys.stderr, flush=True)
                            else:
                                print("server asked to reconnect", file=sys.stderr, flush=True)
                            at_once = True
                            break
                        env = json.loads(sse.data)  # {"topic","id","event","data","ts"}
                        last_event_id = sse.id
                        line = {"topic": env["topic"], "id": env["id"], "event": env["event"], "data": env["data"]}
                        print(json.dumps(line, ensure_ascii=False, separators=(",", ":")), flush=True)
                        received += 1
                        if max_events is not None and received >= max_events:
                            return 0
                    else:
                        print("stream ended", file=sys.stderr, flush=True)
            except httpx.HTTPError as e:
                print(f"connection failed: {e or type(e).__name__}", file=sys.stderr, flush=True)
            if at_once:
                continue
            # Exponential backoff from the server's retry, capped at 30 s, with jitter.
            delay = max(wait_s, min(retry_ms * 2**attempt, 30_000) / 1000 * random.uniform(0.5, 1.0))
            attempt += 1
            print(f"reconnecting in {delay:.1f} s", file=sys.stderr, flush=True)
            time.sleep(delay)


def main() -> int:
    parser = argparse.ArgumentParser(description="Subscribe to SSE gateway topics; print events as JSON lines.")
    parser.add_argument("--url", default="http://127.0.0.1:8787", help="gateway base URL")
    parser.add_argument("--topics", required=True, help="comma-separated topics")
    parser.add_argument("--max", type=int, help="exit after this many events")
    parser.add_argument("--timeout", type=float, help="stop after this many seconds")
    parser.add_argument("--token", default=os.environ.get("SSE_TOKEN"), help="subscriber token for private topics (default: $SSE_TOKEN)")
    parser.add_argument("--token-command", default=os.environ.get("SSE_TOKEN_COMMAND"), help="shell command printing a fresh token (default: $SSE_TOKEN_COMMAND)")
    args = parser.parse_args()  # exits 2 on a usage error
    sys.stdout.reconfigure(encoding="utf-8")  # unicode bodies print as they are

    # The subscription runs in a daemon thread so --timeout and Ctrl-C can stop it mid-read.
    result = []

    def run() -> None:
        try:
            result.append(subscribe(args.url.rstrip("/"), args.topics, args.max, args.token, args.token_command))
        except TokenExpired as e:
            print(f"subscriber: {e}", file=sys.stderr)
            result.append(1)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        worker.join(args.timeout)
    except KeyboardInterrupt:
        return 0
    if result:
        return result[0]
    if args.max is not None:
        print(f"subscriber: timed out before {args.max} events", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
