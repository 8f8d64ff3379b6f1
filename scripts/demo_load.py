#!/usr/bin/env python3
"""Bounded live traffic for the demo, sent through a service's published port.

Sends GET / to --url over keep-alive connections (the proxy balances every request, so one
connection reaches every revision by its weight) at up to --rate requests per second, and stops
after --seconds, after --max-requests, or when it receives SIGTERM or SIGINT, whichever comes
first. Then it prints what it saw: requests, failures (a status other than 200, or no answer),
and the answers by the version that gave them (the testapp's X-Version header, also on its
injected 500s).

  demo_load.py --url http://127.0.0.1:9000/ --seconds 60 --label "canary v3"
"""
import argparse
import collections
import http.client
import signal
import sys
import time
import urllib.parse


class Stop(Exception):
    pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True, help="http://HOST:PORT/PATH, the published port")
    p.add_argument("--seconds", type=float, default=60, help="stop after this long")
    p.add_argument("--max-requests", type=int, default=100000, help="stop after this many")
    p.add_argument("--rate", type=float, default=200, help="requests per second at most")
    p.add_argument("--label", default="load", help="name printed with the summary")
    args = p.parse_args()

    url = urllib.parse.urlsplit(args.url)
    host, port, path = url.hostname, url.port or 80, url.path or "/"

    def on_signal(signum, frame):
        raise Stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    ok = collections.Counter()        # version -> 200 answers
    errors = collections.Counter()    # version (or "no answer") -> failed requests
    samples = []                      # a few failures, shown at the end
    sent = 0
    start = time.monotonic()
    deadline = start + args.seconds
    interval = 1.0 / args.rate if args.rate > 0 else 0
    conn = None
    try:
        while sent < args.max_requests and time.monotonic() < deadline:
            next_at = start + sent * interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=5)
                conn.request("GET", path)
                r = conn.getresponse()
                body = r.read().decode(errors="replace")
                version = r.getheader("X-Version", "?")
                if r.status == 200:
                    ok[version] += 1
                else:
                    errors[version] += 1
                    if len(samples) < 3:
                        samples.append(f"HTTP {r.status} from {version}: {body.strip()[:60]}")
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except Stop:
                raise
            except Exception as e:  # noqa: BLE001 - every failure is counted and shown
                errors["no answer"] += 1
                if len(samples) < 3:
                    samples.append(f"{type(e).__name__}: {e}")
                if conn is not None:
                    conn.close()
                conn = None
    except Stop:
        pass
    elapsed = time.monotonic() - start
    failed = sum(errors.values())
    versions = sorted(set(ok) | set(errors))
    by_version = ", ".join(
        f"{v}={ok[v]}" + (f" (+{errors[v]} failed)" if errors[v] else "") for v in versions
        if v != "no answer")
    if errors["no answer"]:
        by_version += f", no answer={errors['no answer']}"
    print(f"[{args.label}] {sent} requests in {elapsed:.1f}s, {failed} failed "
          f"({100.0 * failed / max(sent, 1):.2f}%); answers by version: {by_version or '-'}")
    for s in samples:
        print(f"[{args.label}]   e.g. {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
