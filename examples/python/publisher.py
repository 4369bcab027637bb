#!/usr/bin/env python3
"""Publish N events to several topics and print the per-topic outcome as JSON lines; or mint a
subscriber token for private topics (with PyJWT).

    SSE_API_KEY=dev-key-change-me python publisher.py --url http://127.0.0.1:8787 \\
        --topics orders,user:42 [--count N] [--prefix ID_PREFIX]
    SUBSCRIBER_TOKEN_SECRET=... python publisher.py mint-token --topics user:42,team:7:* [--sub user-42] [--ttl 3600]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import httpx
import jwt


def sample_event(i: int) -> tuple[str | None, str]:
    """Event i of the shared sample set (see examples/README.md): multi-line and unicode bodies."""
    k = (i - 1) % 5
    if k == 0:
        return "note", f"plain text #{i}"
    if k == 1:
        return "multi-line", f"line 1 of #{i}\nline 2\nline 3"
    if k == 2:
        return "multi-line", f"crlf #{i}\r\nsecond line\r\n"
    if k == 3:
        return "unicode", f"unicode #{i}: 你好，世界 🚀 café ✓"
    return None, f'{{"n":{i},"ok":true}}'


def mint_token(argv: list[str]) -> int:
    """Print a subscriber token (a JWT, HS256) signed with SUBSCRIBER_TOKEN_SECRET, one of the
    gateway's SUBSCRIBER_TOKEN_SECRETS. Your backend does this for a signed-in user and hands the
    token to the user's client."""
    parser = argparse.ArgumentParser(prog="publisher.py mint-token", description="Print a subscriber token (secret from SUBSCRIBER_TOKEN_SECRET).")
    parser.add_argument("--topics", required=True, help="comma-separated topics or patterns the token opens")
    parser.add_argument("--sub", help="the subscriber's identity")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until the token expires")
    args = parser.parse_args(argv)
    secret = os.environ.get("SUBSCRIBER_TOKEN_SECRET")
    if not secret:
        parser.error("set SUBSCRIBER_TOKEN_SECRET")  # exits 2
    now = int(time.time())
    claims = {"topics": [t.strip() for t in args.topics.split(",")], "iat": now, "exp": now + args.ttl}
    if args.sub:
        claims["sub"] = args.sub
    print(jwt.encode(claims, secret, algorithm="HS256"))
    return 0


def main() -> int:
    if sys.argv[1:2] == ["mint-token"]:
        return mint_token(sys.argv[2:])
    parser = argparse.ArgumentParser(description="Publish events to SSE gateway topics (API key from SSE_API_KEY).")
    parser.add_argument("--url", default="http://127.0.0.1:8787", help="gateway base URL")
    parser.add_argument("--topics", required=True, help="comma-separated topics; one POST reaches them all")
    parser.add_argument("--count", type=int, default=10, help="events to send")
    parser.add_argument("--prefix", default="evt", help="event ids are PREFIX-1 ... PREFIX-N")
    args = parser.parse_args()
    api_key = os.environ.get("SSE_API_KEY")
    if not api_key:
        parser.error("set SSE_API_KEY")  # exits 2

    outcome = {t.strip(): {"topic": t.strip(), "published": 0, "delivered": 0, "dropped": 0} for t in args.topics.split(",")}
    headers = {"authorization": f"Bearer {api_key}", "content-type": "text/plain; charset=utf-8"}
    with httpx.Client(base_url=args.url.rstrip("/"), headers=headers, timeout=30.0) as client:
        for i in range(1, args.count + 1):
            event_id = f"{args.prefix}-{i}"
            event, data = sample_event(i)
            headers = {"x-sse-topic": args.topics, "x-sse-id": event_id}
            if event:
                headers["x-sse-event"] = event
            try:
                res = client.post("/publish", headers=headers, content=data.encode("utf-8"))
            except httpx.HTTPError as e:
                print(f"publisher: {event_id}: {e or type(e).__name__}", file=sys.stderr)
                return 1
            if res.status_code != 202:
                print(f"publisher: {event_id}: HTTP {res.status_code}: {res.text}", file=sys.stderr)
                return 1
            # Per topic: {"delivered": n} or {"dropped": "no_subscribers"}.
            for topic, result in res.json()["topics"].items():
                if topic in outcome:
                    outcome[topic]["published"] += 1
                    outcome[topic]["delivered"] += result.get("delivered", 0)
                    outcome[topic]["dropped"] += 1 if "dropped" in result else 0

    for line in outcome.values():
        print(json.dumps(line, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
