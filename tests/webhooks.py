#!/usr/bin/env python3
"""Webhook deliveries end to end, checked by a receiver that is not ours.

A local receiver (http.server on 127.0.0.1) verifies every delivery with the
`standardwebhooks` library from PyPI (`Webhook(secret).verify(body, headers)`),
not with authgate's own code. Instances run in development mode (http to
loopback is allowed there) on one PostgreSQL database, with
WEBHOOK_RETRY_SCHEDULE=1s,1s,1s unless a test says otherwise:

- a key created, rotated and revoked: three signed deliveries, in order, with
  the right data and no key in them;
- a receiver failing twice, then answering 200: three attempts, one webhook-id;
- a 410: the endpoint is disabled;
- kill -9 while a delivery waits for a receiver that is down: delivered once
  the instance is back (and the receiver up);
- two instances on one database: every attempt made once (a first attempt that
  fails and its retry: two requests per event, never more);
- a burst of 200 events: deliveries per second to the local receiver;
- production: http, loopback and private URLs refused at creation, and a name
  that resolves to a private address refused when connecting.

Usage: DATABASE_URL=postgres://…/<db> python tests/webhooks.py [authgate-cli]
(the Python must have `standardwebhooks`; WEBHOOKS_ONLY=name,name runs only those)
"""

import collections
import http.server
import ipaddress
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

import harness

BINARY = sys.argv[1] if len(sys.argv) > 1 else "target/debug/authgate-cli"
DATABASE_URL = os.environ["DATABASE_URL"]
PASSWORD = "correct horse battery"
PORTS = (3361, 3362)
INSTANCES = []


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- the receiver --------------------------------------------------------------


class Receiver:
    """Records every POST per path after verifying it with `standardwebhooks`.
    A path answers with its scripted statuses in turn, then 200; in
    `fail_first` mode, the first request of each webhook-id gets 500."""

    def __init__(self, port=None):
        self.lock = threading.Lock()
        self.secrets = {}
        self.scripts = {}
        self.fail_first = set()
        self.seen = collections.defaultdict(list)
        self.bad = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                status = receiver.record(self.path, dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port or 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def record(self, path, headers, body):
        with self.lock:
            secret = self.secrets.get(path)
        try:
            if secret is None:
                raise WebhookVerificationError(f"no endpoint registered at {path}")
            payload = Webhook(secret).verify(body, headers)
        except Exception as error:  # any failure to verify is a failed delivery check
            with self.lock:
                self.bad.append((path, repr(error)))
            return 400
        message_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
        with self.lock:
            earlier = [m for m, _, _ in self.seen[path] if m == message_id]
            self.seen[path].append((message_id, payload, time.monotonic()))
            script = self.scripts.get(path)
            if script:
                return script.pop(0)
            if path in self.fail_first and not earlier:
                return 500
        return 200

    def deliveries(self, path):
        with self.lock:
            return list(self.seen[path])

    def wait_for(self, path, count, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.deliveries(path)) >= count:
                return self.deliveries(path)
            time.sleep(0.05)
        raise AssertionError(
            f"{path}: {len(self.deliveries(path))} of {count} deliveries within {timeout:.0f} s"
        )

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# --- the service ---------------------------------------------------------------


def call(port, method, path, body=None, token=None, ip=None, timeout=10):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    if ip:
        headers["x-forwarded-for"] = ip
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


class Instance:
    def __init__(self, port, **env):
        self.port = port
        self.log = tempfile.NamedTemporaryFile(prefix=f"authgate-webhooks-{port}-", suffix=".log", delete=False)
        environment = dict(
            os.environ,
            LOCO_ENV="development",
            DATABASE_URL=DATABASE_URL,
            PORT=str(port),
            LOG_LEVEL="warn",
            BCRYPT_COST="4",
            WEBHOOK_RETRY_SCHEDULE="1s,1s,1s",
            TRUSTED_PROXIES="127.0.0.1",
        )
        environment.pop("REDIS_URL", None)
        environment.update(env)
        self.process = subprocess.Popen(
            [BINARY, "start"], env=environment, stdout=self.log, stderr=subprocess.STDOUT
        )
        INSTANCES.append(self)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"instance on {port} exited while starting"
            try:
                if call(port, "GET", "/health", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"instance on {port} did not start")

    def kill9(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self):
        harness.stop(self.process)
        self.log.close()

    def tail(self, lines=15):
        with open(self.log.name, errors="replace") as log:
            return "".join(log.readlines()[-lines:])


def random_ip():
    return f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{1 + secrets.randbelow(254)}"


class User:
    def __init__(self, port):
        self.port, self.ip = port, random_ip()
        email = f"hooks-{uuid.uuid4().hex[:12]}@example.com"
        status, body = call(port, "POST", "/auth/signup", {"email": email, "password": PASSWORD}, ip=self.ip)
        assert status == 201, (status, body)
        self.token = body["accessToken"]

    def call(self, method, path, body=None, port=None):
        return call(port or self.port, method, path, body, token=self.token, ip=self.ip)

    def webhook(self, receiver, path, events, port=None):
        url = f"http://127.0.0.1:{port}{path}" if port else receiver.url(path)
        status, body = self.call("POST", "/webhooks", {"url": url, "events": events})
        assert status == 201, (status, body)
        if receiver is not None:
            with receiver.lock:
                receiver.secrets[path] = body["secret"]
        return body

    def key(self, name, port=None):
        status, body = self.call("POST", "/keys/create", {"name": name}, port=port)
        assert status == 201, (status, body)
        return body

    def attempts(self, hook):
        status, body = self.call("GET", f"/webhooks/{hook['id']}/deliveries?limit=100")
        assert status == 200, (status, body)
        return body["deliveries"]


def wait_until(check, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout:.0f} s")


# --- the tests -----------------------------------------------------------------


def key_lifecycle_is_delivered_signed_and_in_order(receiver):
    Instance(PORTS[0])
    user = User(PORTS[0])
    user.webhook(receiver, "/lifecycle", ["key.created", "key.rotated", "key.revoked"])
    created = user.key("billing")
    status, rotated = user.call("POST", f"/keys/{created['id']}/rotate", {"gracePeriodSeconds": 60})
    assert status == 201, (status, rotated)
    status, _ = user.call("DELETE", f"/keys/{rotated['id']}")
    assert status == 200
    receiver.wait_for("/lifecycle", 3)
    time.sleep(1.5)
    deliveries = receiver.deliveries("/lifecycle")
    assert len(deliveries) == 3, f"{len(deliveries)} deliveries"
    payloads = [payload for _, payload, _ in deliveries]
    assert [p["type"] for p in payloads] == ["key.created", "key.rotated", "key.revoked"], payloads
    first, rotation, revocation = (p["data"] for p in payloads)
    assert first["keyId"] == created["id"] and first["name"] == "billing", first
    assert first["prefix"] == created["key"][:11], first
    assert rotation["keyId"] == created["id"] and rotation["rotatedTo"] == rotated["id"], rotation
    assert revocation["keyId"] == rotated["id"] and revocation["rotatedFrom"] == created["id"], revocation
    for payload in payloads:
        text = json.dumps(payload)
        assert created["key"][11:] not in text and rotated["key"][11:] not in text, "a key was delivered"
        assert set(payload) == {"type", "timestamp", "data"}, payload
    print(f"    3 deliveries verified by standardwebhooks, in order: {[p['type'] for p in payloads]}")


def failing_twice_then_succeeding_is_three_attempts_of_one_id(receiver):
    Instance(PORTS[0])
    user = User(PORTS[0])
    receiver.scripts["/flaky"] = [500, 503]
    hook = user.webhook(receiver, "/flaky", ["key.created"])
    started = time.monotonic()
    user.key("flaky")
    receiver.wait_for("/flaky", 3)
    elapsed = time.monotonic() - started
    time.sleep(2.5)
    deliveries = receiver.deliveries("/flaky")
    assert len(deliveries) == 3, f"{len(deliveries)} attempts"
    ids = {message_id for message_id, _, _ in deliveries}
    assert len(ids) == 1, ids
    attempts = wait_until(
        lambda: (a := user.attempts(hook)) and a[0]["status"] == "succeeded" and a,
        10,
        "the third attempt recorded",
    )
    summary = [(a["attempt"], a["status"], a["responseStatus"]) for a in attempts]
    assert summary == [(3, "succeeded", 200), (2, "failed", 503), (1, "failed", 500)], summary
    gaps = [b - a for (_, _, a), (_, _, b) in zip(deliveries, deliveries[1:])]
    print(f"    3 attempts of webhook-id {ids.pop()} over {elapsed:.1f} s (gaps {', '.join(f'{g:.1f} s' for g in gaps)})")


def gone_disables_the_endpoint(receiver):
    Instance(PORTS[0])
    user = User(PORTS[0])
    receiver.scripts["/gone"] = [410]
    hook = user.webhook(receiver, "/gone", ["*"])
    user.key("gone")

    def disabled():
        status, hooks = user.call("GET", "/webhooks")
        assert status == 200
        return next((h for h in hooks if h["id"] == hook["id"] and not h["enabled"]), None)

    listed = wait_until(disabled, 10, "the endpoint disabled after a 410")
    assert listed["disabledReason"] == "The endpoint answered 410 Gone", listed
    user.key("after")
    time.sleep(2)
    assert len(receiver.deliveries("/gone")) == 1, "a disabled endpoint got another delivery"
    status, _ = user.call("POST", f"/webhooks/{hook['id']}/test")
    assert status == 409, status
    print(f"    disabled: {listed['disabledReason']!r}")


def kill9_with_a_delivery_pending_delivers_after_restart(_receiver):
    port = free_port()
    schedule = ",".join(["1s"] * 20)
    instance = Instance(PORTS[0], WEBHOOK_RETRY_SCHEDULE=schedule)
    user = User(PORTS[0])
    # The receiver is down: nothing listens on its port yet.
    hook = user.webhook(None, "/later", ["key.created"], port=port)
    user.key("pending")
    attempts = wait_until(
        lambda: (a := user.attempts(hook)) and any(x["status"] == "failed" for x in a) and a,
        15,
        "a failed first attempt",
    )
    assert attempts[-1]["error"].startswith("Connection failed"), attempts[-1]
    instance.kill9()
    failed_before = sum(1 for a in attempts if a["status"] == "failed")
    receiver = Receiver(port)
    try:
        receiver.secrets["/later"] = hook["secret"]
        killed_at = time.monotonic()
        Instance(PORTS[0], WEBHOOK_RETRY_SCHEDULE=schedule)
        # Killed between claiming an attempt and recording it, the attempt is
        # due again when its 60 s lease ends: wait past that.
        deliveries = receiver.wait_for("/later", 1, timeout=75)
        after = time.monotonic() - killed_at
        time.sleep(1.5)
        assert len(receiver.deliveries("/later")) == 1, "delivered more than once"
        assert deliveries[0][1]["type"] == "key.created"
        assert not receiver.bad, receiver.bad
        print(
            f"    {failed_before} failed attempt(s) before kill -9; delivered {after:.1f} s after the kill"
        )
    finally:
        receiver.close()


def two_instances_make_each_attempt_once(receiver):
    Instance(PORTS[0])
    Instance(PORTS[1])
    user = User(PORTS[0])
    receiver.fail_first.add("/shared")
    hook = user.webhook(receiver, "/shared", ["key.created"])
    events = 40
    for n in range(events):
        user.key(f"k{n}", port=PORTS[n % 2])
    receiver.wait_for("/shared", 2 * events, timeout=60)
    time.sleep(3)
    deliveries = receiver.deliveries("/shared")
    per_id = collections.Counter(message_id for message_id, _, _ in deliveries)
    assert len(per_id) == events, f"{len(per_id)} events of {events} delivered"
    assert set(per_id.values()) == {2}, collections.Counter(per_id.values())
    attempts = user.attempts(hook)
    assert len(attempts) == 2 * events, len(attempts)
    assert sum(a["status"] == "succeeded" for a in attempts) == events
    print(f"    {events} events over two instances: {len(deliveries)} requests, each attempt once")


def burst_deliveries_per_second(receiver):
    Instance(PORTS[0])
    user = User(PORTS[0])
    results = []
    for endpoints in (1, 5):
        hooks = [user.webhook(receiver, f"/burst{endpoints}-{n}", ["webhook.test"]) for n in range(endpoints)]
        events = 200
        statuses = []

        def queue(offset):
            for n in range(offset, events, 8):
                statuses.append(user.call("POST", f"/webhooks/{hooks[n % endpoints]['id']}/test")[0])

        started = time.monotonic()
        threads = [threading.Thread(target=queue, args=(offset,)) for offset in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        queued = time.monotonic() - started
        assert statuses == [202] * events, collections.Counter(statuses)
        paths = [f"/burst{endpoints}-{n}" for n in range(endpoints)]
        deadline = time.monotonic() + 120
        while sum(len(receiver.deliveries(p)) for p in paths) < events:
            assert time.monotonic() < deadline, "the burst was not delivered within 120 s"
            time.sleep(0.02)
        times = sorted(t for p in paths for _, _, t in receiver.deliveries(p))
        span = times[-1] - times[0]
        total = times[-1] - started
        rate = (events - 1) / span if span > 0 else float("inf")
        results.append((endpoints, rate))
        print(
            f"    {events} events to {endpoints} endpoint(s): queued in {queued:.2f} s ({events / queued:.0f}/s), "
            f"all delivered {total:.2f} s after the first was queued; {rate:.0f} deliveries/s (first to last delivery)"
        )
    assert not receiver.bad, receiver.bad


def production_refuses_private_addresses(receiver):
    port = PORTS[0]
    Instance(
        port,
        LOCO_ENV="production",
        JWT_SECRET=secrets.token_hex(24),
        JWT_REFRESH_SECRET=secrets.token_hex(24),
    )
    user = User(port)
    refused = {
        "http://hooks.example.com/": "url must use https",
        "https://127.0.0.1/hook": "url must not point to a loopback, private or link-local address",
        "https://[::ffff:10.0.0.1]/": "url must not point to a loopback, private or link-local address",
        "https://169.254.169.254/latest/meta-data": "url must not point to a loopback, private or link-local address",
        "https://localhost/": "url must not point to a loopback, private or link-local address",
    }
    for url, problem in refused.items():
        status, body = user.call("POST", "/webhooks", {"url": url, "events": ["*"]})
        assert status == 400 and body["message"] == [problem], (url, status, body)
    status, hooks = user.call("GET", "/webhooks")
    assert status == 200 and hooks == [], hooks
    # A name accepted at creation is still checked where it resolves, when connecting.
    hostname = socket.gethostname()
    address = ipaddress.ip_address(socket.gethostbyname(hostname))
    if address.is_private or address.is_loopback:
        status, hook = user.call("POST", "/webhooks", {"url": f"https://{hostname}:{receiver.port}/x", "events": ["*"]})
        assert status == 201, (status, hook)
        status, _ = user.call("POST", f"/webhooks/{hook['id']}/test")
        assert status == 202
        attempts = wait_until(
            lambda: (a := user.attempts(hook)) and a[-1]["status"] == "failed" and a,
            15,
            "the attempt to a private address refused",
        )
        assert "resolves only to loopback, private or link-local addresses" in attempts[-1]["error"], attempts[-1]
        print(f"    {hostname} ({address}) refused when connecting: {attempts[-1]['error']!r}")
    else:
        print(f"    {hostname} resolves to {address}: no private name to try at connect time")


def main():
    tests = [
        key_lifecycle_is_delivered_signed_and_in_order,
        failing_twice_then_succeeding_is_three_attempts_of_one_id,
        gone_disables_the_endpoint,
        kill9_with_a_delivery_pending_delivers_after_restart,
        two_instances_make_each_attempt_once,
        burst_deliveries_per_second,
        production_refuses_private_addresses,
    ]
    selected = os.environ.get("WEBHOOKS_ONLY", "")
    if selected:
        tests = [test for test in tests if test.__name__ in selected.split(",")]
    passed = failed = 0
    for test in tests:
        receiver = Receiver()
        failure = None
        try:
            test(receiver)
            if receiver.bad:
                failure = f"FAILED: deliveries that did not verify: {receiver.bad[:3]}"
        except AssertionError as error:
            failure = f"FAILED {error}"
        except Exception:  # any other error fails this test, not the run
            failure = f"FAILED with an error:\n{traceback.format_exc()}"
        finally:
            receiver.close()
            for instance in INSTANCES:
                instance.stop()
        if failure is None:
            print(f"test {test.__name__} ... ok")
            passed += 1
        else:
            print(f"test {test.__name__} ... {failure}")
            for instance in INSTANCES:
                print(f"--- last lines of the instance on port {instance.port}:")
                print(instance.tail(), end="")
            failed += 1
        for instance in INSTANCES:
            os.unlink(instance.log.name)
        INSTANCES.clear()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
