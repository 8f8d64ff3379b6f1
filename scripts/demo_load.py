#!/usr/bin/env python3
"""Bounded live traffic for the demo: polls every healthy task of a service.

Every round it asks the manager for the service's healthy tasks (`warren service ps -o json`)
and sends one GET / to each. It stops after --seconds or --max-requests, whichever is first,
and prints what it saw: requests, failures and the versions that answered.
"""
import argparse
import collections
import json
import subprocess
import sys
import time
import urllib.request


def healthy_tasks(warren, manager, service):
    out = subprocess.run([warren, "--manager", manager, "service", "ps", service, "-o", "json"],
                         capture_output=True, text=True, timeout=10)
    if out.returncode != 0:
        return []
    data = json.loads(out.stdout or "[]")
    tasks = data.get("tasks", []) if isinstance(data, dict) else data
    ready = []
    for t in tasks:
        st = t.get("status", {})
        health = st.get("health", {}).get("state", "")
        if (t.get("desiredState") == "TASK_STATE_RUNNING" and
                st.get("state") == "TASK_STATE_RUNNING" and
                health in ("HEALTH_STATE_HEALTHY", "HEALTH_STATE_NONE")):
            ready.append((t["address"], t.get("port", 8080)))
    return ready


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--warren", required=True)
    p.add_argument("--manager", required=True)
    p.add_argument("--service", required=True)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--max-requests", type=int, default=20000)
    p.add_argument("--until-version", default="")
    args = p.parse_args()

    versions = collections.Counter()
    failures = []
    sent = 0
    deadline = time.monotonic() + args.seconds
    only_target_since = None
    while time.monotonic() < deadline and sent < args.max_requests:
        round_versions = set()
        for ip, port in healthy_tasks(args.warren, args.manager, args.service):
            sent += 1
            try:
                with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=2) as r:
                    body = r.read().decode()
                    v = body.split("version=")[1].split()[0] if "version=" in body else "?"
                    versions[v] += 1
                    round_versions.add(v)
            except Exception as e:  # noqa: BLE001 - every failure is counted and shown
                failures.append(f"{ip}:{port}: {e}")
        if args.until_version and round_versions == {args.until_version}:
            only_target_since = only_target_since or time.monotonic()
            if time.monotonic() - only_target_since > 2:
                break
        time.sleep(0.05)
    print(f"load: {sent} requests, {len(failures)} failed; answers by version: "
          + ", ".join(f"{v}={n}" for v, n in sorted(versions.items())))
    for f in failures[:5]:
        print("  failed:", f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
