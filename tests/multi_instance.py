#!/usr/bin/env python3
"""Two authgate instances on one PostgreSQL database (two ports) and one Redis.

A credential is created and used on instance A, used on B (warming B's cache),
then revoked on A, or the user deactivated by the admin task; B must refuse it
within one second. The cache TTL is set to a minute, so only the NOTIFY/LISTEN
eviction can make these pass. A key's rate limit is shared through Redis: uses
on A and on B count against one limit. Uses counted on each instance add up
exactly in the stored usage.

Redis outlives a run, and so do its per-IP counters (signups are limited per IP
per hour). Each run therefore poses as its own client IP, sent in X-Forwarded-For
from 127.0.0.1, which the instances are told to trust.

Usage: DATABASE_URL=postgres://… [REDIS_URL=redis://…] tests/multi_instance.py [authgate-cli]
"""

import json
import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import harness

BINARY = sys.argv[1] if len(sys.argv) > 1 else "target/debug/authgate-cli"
DATABASE_URL = os.environ["DATABASE_URL"]
PORT_A, PORT_B = 3101, 3102
DEADLINE_SECONDS = 1.0
PASSWORD = "correct horse battery"
CLIENT_IP = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"

ENV = dict(
    os.environ,
    DATABASE_URL=DATABASE_URL,
    LOCO_ENV="development",
    LOG_LEVEL="warn",
    AUTH_CACHE_TTL="60s",
    LAST_USED_FLUSH_INTERVAL="1s",
    REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"),
    TRUSTED_PROXIES="127.0.0.1",
)


def call(port, method, path, body=None, token=None, key=None):
    headers = {"content-type": "application/json", "x-forwarded-for": CLIENT_IP}
    if token:
        headers["authorization"] = f"Bearer {token}"
    if key:
        headers["x-api-key"] = key
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def start(port):
    process = subprocess.Popen(
        [BINARY, "start"],
        env=dict(ENV, PORT=str(port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            if call(port, "GET", "/health")[0] == 200:
                return process
        except OSError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"instance on port {port} did not start")


def new_user(key_body=None):
    email = f"multi-{uuid.uuid4().hex[:12]}@example.com"
    status, body = call(PORT_A, "POST", "/auth/signup", {"email": email, "password": PASSWORD})
    assert status == 201, (status, body)
    token = body["accessToken"]
    key_body = key_body or {"name": "svc"}
    status, created = call(PORT_A, "POST", "/keys/create", key_body, token=token)
    assert status == 201, (status, created)
    return email, token, created


def warm_on_b(token, key):
    for _ in range(2):
        assert call(PORT_B, "GET", "/protected/service-only", key=key)[0] == 200
        assert call(PORT_B, "GET", "/protected/user-only", token=token)[0] == 200


def refused_on_b_within_deadline(path, token=None, key=None):
    start_time = time.monotonic()
    while time.monotonic() - start_time < DEADLINE_SECONDS:
        if call(PORT_B, "GET", path, token=token, key=key)[0] == 401:
            return True
        time.sleep(0.02)
    return False


def key_revoked_on_a_is_refused_on_b():
    _, token, created = new_user()
    warm_on_b(token, created["key"])
    status, _ = call(PORT_A, "DELETE", f"/keys/{created['id']}", token=token)
    assert status == 200
    assert refused_on_b_within_deadline("/protected/service-only", key=created["key"])


def logout_on_a_is_refused_on_b():
    _, token, created = new_user()
    warm_on_b(token, created["key"])
    assert call(PORT_A, "POST", "/auth/logout", token=token)[0] == 200
    assert refused_on_b_within_deadline("/protected/user-only", token=token)


def deactivation_by_task_is_refused_on_b():
    email, token, created = new_user()
    warm_on_b(token, created["key"])
    subprocess.run(
        [BINARY, "task", "user:deactivate", f"email:{email}"],
        env=ENV,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert refused_on_b_within_deadline("/protected/service-only", key=created["key"])
    assert refused_on_b_within_deadline("/protected/user-only", token=token)


def a_keys_rate_limit_is_shared_by_both_instances():
    _, _, created = new_user({"name": "limited", "rateLimit": {"requests": 4, "perSeconds": 60}})
    key = created["key"]
    for port in (PORT_A, PORT_B, PORT_A, PORT_B):
        assert call(port, "GET", "/protected/service-only", key=key)[0] == 200
    # Each instance alone has seen two uses; together they have seen four.
    assert call(PORT_A, "GET", "/protected/service-only", key=key)[0] == 429
    assert call(PORT_B, "GET", "/protected/service-only", key=key)[0] == 429


def uses_on_both_instances_add_up_exactly():
    _, token, created = new_user()
    key = created["key"]
    uses = {PORT_A: 37, PORT_B: 23}
    for port, count in uses.items():
        for _ in range(count):
            assert call(port, "GET", "/protected/service-only", key=key)[0] == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, report = call(PORT_A, "GET", f"/keys/{created['id']}/usage", token=token)
        assert status == 200, (status, report)
        if report["totals"]["valid"] >= sum(uses.values()):
            break
        time.sleep(0.2)
    time.sleep(1.5)  # one more flush of each instance: nothing may be counted twice
    status, report = call(PORT_B, "GET", f"/keys/{created['id']}/usage", token=token)
    assert status == 200, (status, report)
    assert report["totals"]["valid"] == sum(uses.values()), report["totals"]
    assert report["totals"]["total"] == sum(uses.values()), report["totals"]


def main():
    instances = [start(PORT_A)]
    instances.append(start(PORT_B))
    passed = failed = 0
    try:
        for test in (
            key_revoked_on_a_is_refused_on_b,
            logout_on_a_is_refused_on_b,
            deactivation_by_task_is_refused_on_b,
            a_keys_rate_limit_is_shared_by_both_instances,
            uses_on_both_instances_add_up_exactly,
        ):
            try:
                test()
                print(f"test {test.__name__} ... ok")
                passed += 1
            except AssertionError as error:
                print(f"test {test.__name__} ... FAILED {error!r}")
                failed += 1
    finally:
        for process in instances:
            harness.stop(process, grace=10)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
