#!/usr/bin/env python3
"""authgate under faults: a PostgreSQL outage under load, half-open connections,
a flood of minted keys, parallel wrong passwords, concurrent key creation at the
cap, three instances migrating one empty database, and last-used times across
SIGTERM and SIGKILL.

Every instance runs in production mode on 127.0.0.1 with random secrets and trusts
127.0.0.1 as a proxy: Redis keeps per-IP counters across runs, so each test poses
as its own random client IP in X-Forwarded-For. Each test prints what it measured.

The outage test stops and restarts the local PostgreSQL cluster with pg_ctlcluster
(it is always started again, whatever happens). The script creates and drops its own
extra databases (authgate_faults_*) on the server of DATABASE_URL.

Usage: DATABASE_URL=postgres://…/<db> [REDIS_URL=redis://…] tests/faults.py [authgate-cli]
(FAULTS_ONLY=name,name runs only those tests.)
"""

import collections
import datetime
import http.client
import json
import os
import random
import re
import resource
import secrets
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
import zlib

import harness

BINARY = sys.argv[1] if len(sys.argv) > 1 else "target/debug/authgate-cli"
DATABASE_URL = os.environ["DATABASE_URL"]
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
PASSWORD = "correct horse battery"
JWT_SECRET = secrets.token_hex(24)
JWT_REFRESH_SECRET = secrets.token_hex(24)

# Instances started by the running test; main stops them (and shows their logs
# when the test failed).
INSTANCES = []

Response = collections.namedtuple("Response", "status headers body latency error")


def random_ip():
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def database_url(name):
    parts = urllib.parse.urlsplit(DATABASE_URL)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}", query=""))


ADMIN_URL = database_url("postgres")


def psql(url, sql):
    result = subprocess.run(
        ["psql", url, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, f"psql failed: {result.stderr.strip()}"
    return result.stdout.strip()


def create_database(name):
    psql(ADMIN_URL, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    psql(ADMIN_URL, f"CREATE DATABASE {name}")
    return database_url(name)


def drop_database(name):
    psql(ADMIN_URL, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = max(0, min(len(ordered) - 1, -(-len(ordered) * p // 100) - 1))
    return ordered[int(index)]


def ms(seconds):
    return f"{seconds * 1000:.0f} ms"


def epoch_of(rfc3339):
    """Unix seconds of an RFC 3339 time as chrono writes it (up to nanoseconds)."""
    match = re.fullmatch(
        r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", rfc3339
    )
    assert match, f"not an RFC 3339 time: {rfc3339!r}"
    zone = "+00:00" if match[3] == "Z" else match[3]
    seconds = datetime.datetime.fromisoformat(match[1] + zone).timestamp()
    return seconds + (float("0" + match[2]) if match[2] else 0.0)


def is_error_body(body, status):
    return (
        isinstance(body, dict)
        and body.get("statusCode") == status
        and isinstance(body.get("error"), str)
        and "message" in body
    )


def mint_key():
    """A key in the accepted shape (sk_ + hex of 28 random bytes + their CRC32,
    big-endian) that no one created."""
    random_bytes = os.urandom(28)
    checksum = zlib.crc32(random_bytes).to_bytes(4, "big")
    return "sk_" + random_bytes.hex() + checksum.hex()


class Client:
    """One keep-alive HTTP/1.1 connection posing as one client IP."""

    def __init__(self, port, ip, timeout=5.0):
        self.port, self.ip, self.timeout = port, ip, timeout
        self.connection = None

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def request(self, method, path, body=None, token=None, key=None):
        headers = {"x-forwarded-for": self.ip}
        if token:
            headers["authorization"] = f"Bearer {token}"
        if key:
            headers["x-api-key"] = key
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        for attempt in (0, 1):
            reused = self.connection is not None
            if not reused:
                self.connection = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=self.timeout
                )
            started = time.monotonic()
            try:
                if not reused:
                    self.connection.connect()
                    self.connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.connection.request(method, path, body=data, headers=headers)
                response = self.connection.getresponse()
                raw = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as error:
                self.close()
                # A server may close an idle keep-alive connection; a GET is retried once.
                if reused and attempt == 0 and method == "GET":
                    continue
                return Response(0, {}, None, time.monotonic() - started, repr(error))
            except (OSError, http.client.HTTPException) as error:
                self.close()
                return Response(0, {}, None, time.monotonic() - started, repr(error))
            latency = time.monotonic() - started
            if response.will_close:
                self.close()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = raw[:200]
            headers = {name.lower(): value for name, value in response.getheaders()}
            return Response(response.status, headers, parsed, latency, None)
        raise AssertionError("unreachable")


def call(port, method, path, body=None, token=None, key=None, ip=None, timeout=5.0):
    client = Client(port, ip or random_ip(), timeout)
    try:
        return client.request(method, path, body, token, key)
    finally:
        client.close()


class Instance:
    """One authgate process with its output in a temporary file."""

    def __init__(self, port, database=DATABASE_URL, **env):
        with socket.socket() as probe:
            probe.settimeout(1)
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} is already in use"
        self.port = port
        self.log = tempfile.NamedTemporaryFile(
            prefix=f"authgate-faults-{port}-", suffix=".log", delete=False
        )
        environment = dict(
            os.environ,
            LOCO_ENV="production",
            DATABASE_URL=database,
            REDIS_URL=REDIS_URL,
            JWT_SECRET=JWT_SECRET,
            JWT_REFRESH_SECRET=JWT_REFRESH_SECRET,
            TRUSTED_PROXIES="127.0.0.1",
            LOG_LEVEL="warn",
            PORT=str(port),
            BCRYPT_COST="4",
            LAST_USED_FLUSH_INTERVAL="1s",
        )
        environment.update(env)
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            [BINARY, "start"], env=environment, stdout=self.log, stderr=subprocess.STDOUT
        )
        INSTANCES.append(self)

    def wait_healthy(self, timeout=30.0):
        """Seconds from the start of the process to its first /health 200."""
        deadline = self.started_at + timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            assert code is None, f"instance on port {self.port} exited with {code} while starting"
            if call(self.port, "GET", "/health", timeout=1).status == 200:
                return time.monotonic() - self.started_at
            time.sleep(0.05)
        raise AssertionError(f"instance on port {self.port} not healthy within {timeout:.0f} s")

    def stop(self):
        harness.stop(self.process)
        self.log.close()

    def tail(self, lines=20, width=600):
        with open(self.log.name, errors="replace") as log:
            output = log.readlines()
        # Loco's start-up banner ends with the "listening on" line: keep only that line of it.
        listening = [n for n, line in enumerate(output) if line.startswith("listening on")]
        if listening:
            output = output[listening[0]:]
        return "".join(line[:width].rstrip("\n") + "\n" for line in output[-lines:])


def started(port, **env):
    instance = Instance(port, **env)
    instance.wait_healthy()
    return instance


def signup(port, ip):
    email = f"faults-{uuid.uuid4().hex[:12]}@example.com"
    response = call(port, "POST", "/auth/signup", {"email": email, "password": PASSWORD}, ip=ip)
    assert response.status == 201, f"signup: {response.status} {response.body}"
    return email, response.body["accessToken"]


def create_key(port, ip, token, name="svc"):
    response = call(port, "POST", "/keys/create", {"name": name}, token=token, ip=ip)
    assert response.status == 201, f"create key: {response.status} {response.body}"
    return response.body


def run_threads(targets, timeout):
    threads = [threading.Thread(target=target, daemon=True) for target in targets]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "worker threads did not finish"


# --- 1. PostgreSQL outage under load -------------------------------------------

OUTAGE_SECONDS = 4.0


def pg_cluster(action):
    version = sorted(os.listdir("/etc/postgresql"))[0]
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action]
    if action == "stop":
        command += ["-m", "fast"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def wait_postgres_ready(timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = subprocess.run(
            ["pg_isready", "-h", "127.0.0.1", "-p", "5432"], capture_output=True, timeout=10
        )
        if ready.returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"PostgreSQL not ready {timeout:.0f} s after restarting it")


def postgres_outage_under_load():
    port, ip = 3201, random_ip()
    # A 1 s cache TTL: during the 4 s outage every cached credential is stale,
    # so only AUTH_STALE_IF_ERROR keeps it working.
    started(port, AUTH_CACHE_TTL="1s")
    _, token = signup(port, ip)
    key = create_key(port, ip, token)
    routes = [
        ("service", "/protected/service-only", None, key["key"]),
        ("user", "/protected/user-only", token, None),
        ("keys", "/keys", token, None),
    ]
    for _ in range(3):
        for name, path, bearer, api_key in routes[:2]:
            warm = call(port, "GET", path, token=bearer, key=api_key, ip=ip)
            assert warm.status == 200, f"warming {name}: {warm.status} {warm.body}"

    records, lock, stop = [], threading.Lock(), threading.Event()

    def load(offset):
        client, mine = Client(port, ip), []
        deadline = time.monotonic() + 60
        for i in range(offset, offset + 200_000):
            if stop.is_set() or time.monotonic() > deadline:
                break
            name, path, bearer, api_key = routes[i % len(routes)]
            sent = time.time()
            mine.append((sent, name, client.request("GET", path, token=bearer, key=api_key)))
        client.close()
        with lock:
            records.extend(mine)

    workers = [threading.Thread(target=load, args=(n,), daemon=True) for n in range(4)]
    ready_polls = []
    down_at = stopped_at = up_at = pg_ready_at = None
    try:
        for worker in workers:
            worker.start()
        time.sleep(1.0)
        down_at = time.time()
        stopping = pg_cluster("stop")
        assert stopping.returncode == 0, f"pg_ctlcluster stop: {stopping.stderr.strip()}"
        stopped_at = time.time()
        while time.time() < stopped_at + OUTAGE_SECONDS:
            ready_polls.append(call(port, "GET", "/ready", ip=ip))
            time.sleep(0.2)
        up_at = time.time()
    finally:
        stop.set()
        starting = pg_cluster("start")
        wait_postgres_ready()
        pg_ready_at = time.time()
        for worker in workers:
            worker.join(10)
    assert starting.returncode == 0, f"pg_ctlcluster start: {starting.stderr.strip()}"
    assert not any(worker.is_alive() for worker in workers), "load threads did not stop"

    recovery, recovered_in = [], None
    client = Client(port, ip)
    while time.time() < pg_ready_at + 10:
        response = client.request("GET", "/keys", token=token)
        recovery.append((time.time(), "keys", response))
        if response.status == 200:
            recovered_in = time.time() - pg_ready_at
            break
        time.sleep(0.1)
    ready_after = None
    while time.time() < pg_ready_at + 20:
        ready_after = call(port, "GET", "/ready", ip=ip)
        if ready_after.status == 200:
            break
        time.sleep(0.2)

    last_outage_use = max(
        (sent for sent, name, r in records
         if name == "service" and r.status == 200 and stopped_at <= sent <= up_at),
        default=None,
    )
    stored_last_used = None
    flush_deadline = time.time() + 5
    while last_outage_use is not None and recovered_in is not None:
        listed = client.request("GET", "/keys", token=token)
        if listed.status == 200:
            mine = [k for k in listed.body if k["id"] == key["id"]]
            if mine and mine[0].get("lastUsedAt"):
                stored_last_used = epoch_of(mine[0]["lastUsedAt"])
                if stored_last_used >= last_outage_use - 1:
                    break
        if time.time() > flush_deadline:
            break
        time.sleep(0.25)
    after = [client.request("GET", path, token=bearer, key=api_key) for _, path, bearer, api_key in routes[:2]]
    client.close()

    cached = [r for _, name, r in records if name in ("service", "user")]
    cached_bad = [r for r in cached if not 200 <= r.status < 300]
    database_routes = [(sent, r) for sent, name, r in records + recovery if name == "keys"]
    unavailable = [r for _, r in database_routes if r.status == 503]
    statuses = collections.Counter(r.status for _, r in database_routes)
    wrong = [
        (r.status, r.error or r.body)
        for _, r in database_routes
        if not 200 <= r.status < 300
        and not (r.status == 503 and "retry-after" in r.headers and is_error_body(r.body, 503))
    ]
    latencies = [r.latency for r in unavailable]
    ready_statuses = collections.Counter(r.status for r in ready_polls)
    gap = (
        f"{last_outage_use - stored_last_used:+.2f} s"
        if last_outage_use and stored_last_used else "n/a"
    )
    print(
        f"    outage: cached {len(cached_bad)} non-2xx of {len(cached)}; db routes "
        f"{len(unavailable)} x 503 (p50 {ms(percentile(latencies, 50))}, p99 "
        f"{ms(percentile(latencies, 99))}, max {ms(max(latencies, default=0))}), "
        f"{statuses.get(500, 0)} x 500, statuses {dict(statuses)}; /ready during the outage "
        f"{dict(ready_statuses)} (Retry-After on {sum('retry-after' in r.headers for r in ready_polls if r.status == 503)} "
        f"of its 503s), after {ready_after.status if ready_after else None}; "
        f"PostgreSQL down {up_at - down_at:.1f} s; recovered in "
        f"{'%.2f s' % recovered_in if recovered_in is not None else 'never'}; last outage use "
        f"minus stored lastUsedAt {gap}"
    )

    assert not cached_bad, f"cached credentials failed: {[(r.status, r.error or r.body) for r in cached_bad[:5]]}"
    assert not wrong, f"database routes answered other than 2xx or 503+Retry-After+JSON: {wrong[:5]}"
    assert unavailable, "no 503 during the outage: did requests needing the database hang or succeed?"
    assert percentile(latencies, 99) < 0.25, f"p99 of 503s {ms(percentile(latencies, 99))} >= 250 ms"
    ready_down = [r for r in ready_polls if r.status == 503]
    assert ready_down, f"/ready never 503 during the outage: {dict(ready_statuses)}"
    body = ready_down[0].body
    assert isinstance(body, dict) and isinstance(body.get("checks"), dict), f"/ready 503 body: {body}"
    assert body["checks"].get("database") == "down", f"/ready 503 body: {body}"
    assert recovered_in is not None, "GET /keys not 200 within 10 s of PostgreSQL's return"
    assert ready_after is not None and ready_after.status == 200, (
        f"/ready after recovery: {ready_after.status if ready_after else None} "
        f"{ready_after.body if ready_after else None}"
    )
    assert ready_after.body.get("status") == "ready", f"/ready body: {ready_after.body}"
    assert set(ready_after.body.get("checks", {})) >= {"database", "redis", "notifications"}, (
        f"/ready checks: {ready_after.body}"
    )
    assert ready_after.body["checks"]["database"] == "ok", f"/ready body: {ready_after.body}"
    assert last_outage_use is not None, "no successful service-only use during the outage"
    assert stored_last_used is not None and stored_last_used >= last_outage_use - 1, (
        f"lastUsedAt after recovery {stored_last_used} older than the last outage use "
        f"{last_outage_use} by over 1 s: outage uses were lost"
    )
    assert all(r.status == 200 for r in after), f"after recovery: {[r.status for r in after]}"


# --- 2. Half-open connections ---------------------------------------------------

HALF_OPEN = 600
HEADER_TIMEOUT = 2.0


def half_open_connections_are_closed():
    port = 3202
    started(port, HEADER_TIMEOUT=f"{HEADER_TIMEOUT:.0f}s")
    selector = selectors.DefaultSelector()
    sockets, closed_after, answered = [], {}, set()
    try:
        for _ in range(HALF_OPEN):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sockets.append(sock)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, time.monotonic())
        opened = time.monotonic()
        health = call(port, "GET", "/health", timeout=2)
        health_latency = time.monotonic() - opened
        deadline = time.monotonic() + 15
        while len(closed_after) < HALF_OPEN and time.monotonic() < deadline:
            for selected, _ in selector.select(timeout=0.5):
                sock, sent = selected.fileobj, selected.data
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    answered.add(sock.fileno())
                    continue
                closed_after[sock.fileno()] = time.monotonic() - sent
                selector.unregister(sock)
    finally:
        selector.close()
        for sock in sockets:
            sock.close()
    times = list(closed_after.values())
    print(
        f"    half-open: {len(times)} of {HALF_OPEN} closed (p50 {percentile(times, 50):.2f} s, "
        f"max {max(times, default=float('nan')):.2f} s; {len(answered)} sent bytes first); "
        f"/health meanwhile {health.status} in {ms(health_latency)}"
    )
    assert health.status == 200, f"/health on a fresh connection: {health.status} {health.error}"
    assert len(times) == HALF_OPEN, f"only {len(times)} of {HALF_OPEN} connections closed within 15 s"
    assert max(times) <= HEADER_TIMEOUT + 3, f"slowest close {max(times):.2f} s > {HEADER_TIMEOUT + 3:.0f} s"


# --- 3. A flood of minted keys ----------------------------------------------------

UNKNOWN_KEY_LIMIT = 60
FLOOD_KEYS = 20_000
FLOOD_THREADS = 4
FLOOD_DATABASE = "authgate_faults_flood"


def transactions(database):
    time.sleep(1.5)  # backends report their counters to pg_stat at most once a second
    return int(psql(ADMIN_URL, f"SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{database}'"))


def minted_key_flood_is_throttled():
    port, ip, other_ip = 3203, random_ip(), random_ip()
    try:
        url = create_database(FLOOD_DATABASE)
        started(port, database=url, UNKNOWN_KEY_LIMIT=str(UNKNOWN_KEY_LIMIT))
        _, token = signup(port, ip)
        legit = create_key(port, ip, token)["key"]
        raw = bytes.fromhex(legit[3:])
        assert zlib.crc32(raw[:28]).to_bytes(4, "big") == raw[28:], "mint_key's format differs from the service's"
        for client_ip in (ip, other_ip):
            warm = call(port, "GET", "/protected/service-only", key=legit, ip=client_ip)
            assert warm.status == 200, f"legit key before the flood: {warm.status} {warm.body}"

        minted = [mint_key() for _ in range(FLOOD_KEYS)]
        outcomes, legit_during, lock, done = [], [], threading.Lock(), threading.Event()
        deadline = time.monotonic() + 60

        def flood(share):
            client, mine = Client(port, ip), []
            for minted_key in share:
                if time.monotonic() > deadline:
                    break
                mine.append(client.request("GET", "/protected/service-only", key=minted_key))
            client.close()
            with lock:
                outcomes.extend(mine)

        def legit_user():
            clients = {client_ip: Client(port, client_ip) for client_ip in (ip, other_ip)}
            for i in range(10_000):
                if done.is_set() or time.monotonic() > deadline:
                    break
                client_ip = (ip, other_ip)[i % 2]
                legit_during.append((client_ip, clients[client_ip].request("GET", "/protected/service-only", key=legit)))
                time.sleep(0.02)
            for client in clients.values():
                client.close()

        before = transactions(FLOOD_DATABASE)
        flood_started = time.monotonic()
        checker = threading.Thread(target=legit_user, daemon=True)
        checker.start()
        run_threads(
            [lambda share=minted[n::FLOOD_THREADS]: flood(share) for n in range(FLOOD_THREADS)], 75
        )
        flood_seconds = time.monotonic() - flood_started
        done.set()
        checker.join(5)
        legit_after = [
            (client_ip, call(port, "GET", "/protected/service-only", key=legit, ip=client_ip))
            for client_ip in (ip, other_ip, ip, other_ip)
        ]
        after = transactions(FLOOD_DATABASE)
        during_flood = after - before

        baseline_seconds = min(flood_seconds, 20.0)
        idle_before = transactions(FLOOD_DATABASE)
        time.sleep(baseline_seconds)
        idle = transactions(FLOOD_DATABASE) - idle_before
    finally:
        for instance in INSTANCES:
            instance.stop()
        drop_database(FLOOD_DATABASE)

    statuses = collections.Counter(r.status for r in outcomes)
    limited = [r for r in outcomes if r.status == 429]
    without_retry_after = [r for r in limited if "retry-after" not in r.headers or not is_error_body(r.body, 429)]
    legit_bad = [(who, r.status, r.error or r.body) for who, r in legit_during + legit_after if r.status != 200]
    print(
        f"    flood: {len(outcomes)} minted keys in {flood_seconds:.1f} s "
        f"({len(outcomes) / max(flood_seconds, 1e-9):.0f}/s): {statuses.get(401, 0)} x 401, "
        f"{statuses.get(429, 0)} x 429, other {dict((s, n) for s, n in statuses.items() if s not in (401, 429))}; "
        f"legit key {len(legit_during) + len(legit_after) - len(legit_bad)} of "
        f"{len(legit_during) + len(legit_after)} x 200 (same IP and another); database transactions "
        f"{during_flood} during the flood, {idle} idle over {baseline_seconds:.1f} s"
    )
    assert len(outcomes) == FLOOD_KEYS, f"only {len(outcomes)} of {FLOOD_KEYS} keys sent within 60 s"
    assert set(statuses) <= {401, 429}, f"unexpected statuses for minted keys: {dict(statuses)}"
    # A fixed one-minute window may roll over once during the flood.
    assert UNKNOWN_KEY_LIMIT <= statuses.get(401, 0) <= 2 * UNKNOWN_KEY_LIMIT, (
        f"{statuses.get(401, 0)} unknown keys answered 401; expected {UNKNOWN_KEY_LIMIT} (one window) "
        f"to {2 * UNKNOWN_KEY_LIMIT} (two)"
    )
    assert not without_retry_after, f"{len(without_retry_after)} 429s without Retry-After or the error shape"
    assert not legit_bad, f"legit key refused during/after the flood: {legit_bad[:5]}"
    assert during_flood < 1000, f"{during_flood} database transactions during the flood"


# --- 4. Parallel wrong passwords ---------------------------------------------------

LOGIN_FAILURES_PER_ACCOUNT_IP = 5
PARALLEL_LOGINS = 20


def parallel_wrong_password_logins_are_bounded():
    port, ip = 3204, random_ip()
    started(port)
    email, _ = signup(port, ip)
    barrier = threading.Barrier(PARALLEL_LOGINS, timeout=10)
    results, lock = [], threading.Lock()

    def attempt():
        barrier.wait()
        response = call(port, "POST", "/auth/login", {"email": email, "password": "wrong password!"}, ip=ip, timeout=15)
        with lock:
            results.append(response)

    run_threads([attempt] * PARALLEL_LOGINS, 30)
    right = call(port, "POST", "/auth/login", {"email": email, "password": PASSWORD}, ip=ip)
    statuses = collections.Counter(r.status for r in results)
    print(
        f"    logins: {PARALLEL_LOGINS} parallel wrong passwords -> {dict(statuses)}; "
        f"then the right password -> {right.status}"
    )
    assert 1 <= statuses.get(401, 0) <= LOGIN_FAILURES_PER_ACCOUNT_IP, f"401s: {dict(statuses)}"
    assert statuses.get(401, 0) + statuses.get(429, 0) == PARALLEL_LOGINS, f"statuses: {dict(statuses)}"
    assert all("retry-after" in r.headers for r in results if r.status == 429), "429 without Retry-After"
    assert right.status == 429 and "retry-after" in right.headers, (
        f"right password after the lockout: {right.status} {right.body}"
    )


# --- 5. The key cap under concurrent creation ---------------------------------------

KEY_CAP = 100


def key_cap_holds_under_concurrent_creates():
    port, ip = 3205, random_ip()
    started(port, MAX_ACTIVE_KEYS_PER_USER=str(KEY_CAP))
    _, token = signup(port, ip)
    threads, per_thread = 50, 3
    barrier = threading.Barrier(threads, timeout=10)
    results, lock = [], threading.Lock()

    def create(n):
        barrier.wait()
        mine = [
            call(port, "POST", "/keys/create", {"name": f"cap-{n}-{j}"}, token=token, ip=ip, timeout=15)
            for j in range(per_thread)
        ]
        with lock:
            results.extend(mine)

    started_at = time.monotonic()
    run_threads([lambda n=n: create(n) for n in range(threads)], 60)
    elapsed = time.monotonic() - started_at
    listed = call(port, "GET", "/keys", token=token, ip=ip)
    listed_count = len(listed.body) if listed.status == 200 else None
    statuses = collections.Counter(r.status for r in results)
    others = collections.Counter(
        (r.status, r.error or (r.body.get("message") if isinstance(r.body, dict) else r.body))
        for r in results if r.status not in (201, 409)
    )
    print(
        f"    key cap: {threads * per_thread} concurrent creates in {elapsed:.1f} s -> {dict(statuses)}"
        f"{f' (other: {dict(others)})' if others else ''}; GET /keys -> {listed.status}, "
        f"lists {listed_count}"
    )
    assert statuses == {201: KEY_CAP, 409: threads * per_thread - KEY_CAP}, f"statuses: {dict(statuses)}"
    assert listed.status == 200, f"GET /keys: {listed.status} {listed.body}"
    assert listed_count == KEY_CAP, f"GET /keys lists {listed_count} keys"


# --- 6. Three instances on an empty database ------------------------------------------

THREE_DATABASE = "authgate_faults_three"


def three_instances_start_together_on_an_empty_database():
    ports = (3211, 3212, 3213)
    for round_number in range(1, 4):
        try:
            url = create_database(THREE_DATABASE)
            instances = [Instance(port, database=url) for port in ports]
            try:
                healthy = [instance.wait_healthy(60) for instance in instances]
            except AssertionError as error:
                raise AssertionError(f"round {round_number}: {error}") from None
            ready = [call(port, "GET", "/ready").status for port in ports]
            signups = [
                call(port, "POST", "/auth/signup",
                     {"email": f"three-{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD}).status
                for port in ports
            ]
            print(
                f"    round {round_number}: /health 200 after "
                f"{', '.join(f'{t:.1f} s' for t in healthy)}; /ready {ready}; signups {signups}"
            )
            assert ready == [200] * 3, f"round {round_number}: /ready {ready}"
            assert signups == [201] * 3, f"round {round_number}: signups {signups}"
        finally:
            for instance in INSTANCES:
                instance.stop()
            drop_database(THREE_DATABASE)


# --- 7. Last-used times across SIGTERM and SIGKILL ---------------------------------------

FLUSH_INTERVAL = 5.0
SHUTDOWN_TIMEOUT = 10.0


def stored_last_used(key_id):
    value = psql(DATABASE_URL, f"SELECT extract(epoch from last_used_at) FROM api_keys WHERE id = '{key_id}'")
    return float(value) if value else None


def sigterm_writes_last_used():
    port, ip = 3207, random_ip()
    instance = started(port, LAST_USED_FLUSH_INTERVAL=f"{FLUSH_INTERVAL:.0f}s")
    _, token = signup(port, ip)
    key = create_key(port, ip, token)
    sent = time.time()
    used = call(port, "GET", "/protected/service-only", key=key["key"], ip=ip)
    answered = time.time()
    assert used.status == 200, f"service-only: {used.status} {used.body}"
    instance.process.send_signal(signal.SIGTERM)
    try:
        code = instance.process.wait(timeout=SHUTDOWN_TIMEOUT + 5)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running {SHUTDOWN_TIMEOUT + 5:.0f} s after SIGTERM") from None
    exited_in = time.time() - answered
    stored = stored_last_used(key["id"])
    print(
        f"    sigterm: exit {code} after {exited_in:.2f} s; stored last_used_at "
        f"{'NULL' if stored is None else f'{stored - sent:+.3f} s from the use'}"
    )
    assert stored is not None, "last_used_at is NULL after SIGTERM"
    assert sent - 1 <= stored <= answered + 1, f"last_used_at {stored} not within 1 s of the use at {sent}"


def kill9_loses_at_most_one_interval():
    port, ip = 3208, random_ip()
    instance = started(port, LAST_USED_FLUSH_INTERVAL=f"{FLUSH_INTERVAL:.0f}s")
    _, token = signup(port, ip)
    key = create_key(port, ip, token)
    client, uses, failures = Client(port, ip), [], []
    first_use = time.time()
    for _ in range(1000):
        if time.time() - first_use > FLUSH_INTERVAL + 1.5:
            break
        sent = time.time()
        response = client.request("GET", "/protected/service-only", key=key["key"])
        (uses if response.status == 200 else failures).append((sent, response.status))
        time.sleep(0.05)
    client.close()
    instance.process.kill()
    instance.process.wait(timeout=10)
    stored = stored_last_used(key["id"])
    last_use = max(sent for sent, _ in uses) if uses else None
    window = (last_use - first_use) if uses else 0.0
    gap = (last_use - stored) if stored is not None and last_use is not None else None
    print(
        f"    kill -9: {len(uses)} uses over {window:.1f} s; stored last_used_at "
        f"{'NULL' if gap is None else f'{gap:.2f} s behind the last use'} (one interval is {FLUSH_INTERVAL:.0f} s)"
    )
    assert not failures, f"service-only failed: {failures[:5]}"
    assert window > FLUSH_INTERVAL, f"uses spanned only {window:.1f} s"
    assert stored is not None, "last_used_at is NULL although uses spanned more than one interval"
    assert gap <= FLUSH_INTERVAL + 1, f"last_used_at {gap:.2f} s behind the last use"
    assert stored <= last_use + 1, f"last_used_at {stored} is after the last use {last_use}"


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tests = [
        postgres_outage_under_load,
        half_open_connections_are_closed,
        minted_key_flood_is_throttled,
        parallel_wrong_password_logins_are_bounded,
        key_cap_holds_under_concurrent_creates,
        three_instances_start_together_on_an_empty_database,
        sigterm_writes_last_used,
        kill9_loses_at_most_one_interval,
    ]
    selected = os.environ.get("FAULTS_ONLY", "")
    if selected:
        tests = [test for test in tests if test.__name__ in selected.split(",")]
    passed = failed = 0
    for test in tests:
        failure = None
        try:
            test()
        except AssertionError as error:
            failure = f"FAILED {error}"
        except Exception:  # any other error fails this test, not the run
            failure = f"FAILED with an error:\n{traceback.format_exc()}"
        finally:
            for instance in INSTANCES:
                instance.stop()
        if failure is None:
            print(f"test {test.__name__} ... ok")
            passed += 1
        else:
            print(f"test {test.__name__} ... {failure}")
            for instance in INSTANCES:
                print(f"--- last lines of the instance on port {instance.port} ({instance.log.name}):")
                print(instance.tail(), end="")
            failed += 1
        if failure is None:
            for instance in INSTANCES:
                os.unlink(instance.log.name)
        INSTANCES.clear()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
