#!/usr/bin/env python3
"""authgate behind a real gateway: nginx auth_request in front of a service.

Starts authgate (production mode, random secrets, PORT 3301, trusting 127.0.0.1
as a proxy, UNKNOWN_KEY_LIMIT=20), a tiny upstream service (http.server on
127.0.0.1 that answers 200 with a JSON echo of the path, method, body and the
X-Authgate-* and X-Forwarded-For headers it received, counting its hits) and
nginx with deploy/nginx/authgate.conf, its placeholders filled in, wrapped in a
complete nginx.conf of its own (nothing of the system's nginx configuration is
read). Then, through nginx:

- a valid key and a valid token reach the upstream with the right identity;
- bad, malformed, revoked and expired keys, a bad token and no credential get 401
  from nginx and never reach the upstream; forged X-Authgate-* headers never do;
- a key limited to 2 requests a minute gets 429 (with Retry-After) on its third;
- a flood of unknown keys from one client address (127.0.0.2) throttles that
  client after UNKNOWN_KEY_LIMIT, while another (127.0.0.3) is unaffected;
- with authgate stopped, nginx answers 502 and lets nothing through.

nginx must be installed (/usr/sbin/nginx, or NGINX=path); .ci/run installs it.
Redis is not used: every counter is in this authgate's memory, fresh each run.

Usage: DATABASE_URL=postgres://… tests/gateway.py [authgate-cli]
"""

import http.client
import http.server
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
import zlib
from datetime import datetime, timedelta, timezone

import harness

BINARY = sys.argv[1] if len(sys.argv) > 1 else "target/debug/authgate-cli"
DATABASE_URL = os.environ["DATABASE_URL"]
NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_BLOCK = os.path.join(ROOT, "deploy", "nginx", "authgate.conf")
AUTHGATE_PORT = 3301
UNKNOWN_KEY_LIMIT = 20
PASSWORD = "correct horse battery"
CLIENT_A, CLIENT_B = "127.0.0.2", "127.0.0.3"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mint_key():
    """A well-formed key (sk_ + 28 random bytes + their CRC32) no one created."""
    random_bytes = os.urandom(28)
    return "sk_" + random_bytes.hex() + zlib.crc32(random_bytes).to_bytes(4, "big").hex()


def request(port, method, path, headers=None, body=None, source=None, timeout=5.0):
    """One request on its own connection, from `source` (a loopback address) when
    given. Returns (status, headers with lowercase names, parsed body)."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=timeout, source_address=(source, 0) if source else None
    )
    try:
        data = None
        headers = dict(headers or {})
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers.setdefault("content-type", "application/json")
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        if data is not None:
            connection.putheader("content-length", str(len(data)))
        connection.endheaders(data)
        response = connection.getresponse()
        raw = response.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw[:200]
        return response.status, {k.lower(): v for k, v in response.getheaders()}, parsed
    finally:
        connection.close()


# --- the upstream service -------------------------------------------------------


class Upstream:
    """A service that trusts nginx: echoes what it received and counts hits."""

    def __init__(self):
        self.hits = []
        self.lock = threading.Lock()
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_any(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode(errors="replace") if length else ""
                seen = {
                    "path": self.path,
                    "method": self.command,
                    "body": body,
                    "forwardedFor": self.headers.get_all("x-forwarded-for") or [],
                    # Every X-Authgate-* header (or X_Authgate_*), each with all
                    # the values it came with.
                    "authgate": {
                        name.lower(): self.headers.get_all(name)
                        for name in set(self.headers.keys())
                        if name.lower().replace("_", "-").startswith("x-authgate-")
                    },
                }
                with upstream.lock:
                    upstream.hits.append(seen)
                payload = json.dumps(seen).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self):
        with self.lock:
            return len(self.hits)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# --- authgate and nginx ---------------------------------------------------------


class Authgate:
    def __init__(self, workdir):
        self.log_path = os.path.join(workdir, "authgate.log")
        self.log = open(self.log_path, "wb")
        environment = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        jwt_secret = secrets.token_hex(24)
        environment.update(
            LOCO_ENV="production",
            DATABASE_URL=DATABASE_URL,
            JWT_SECRET=jwt_secret,
            JWT_REFRESH_SECRET=secrets.token_hex(24),
            TRUSTED_PROXIES="127.0.0.1",
            UNKNOWN_KEY_LIMIT=str(UNKNOWN_KEY_LIMIT),
            BCRYPT_COST="4",
            LOG_LEVEL="warn",
            PORT=str(AUTHGATE_PORT),
            BINDING="127.0.0.1",
        )
        with socket.socket() as probe:
            probe.settimeout(1)
            in_use = probe.connect_ex(("127.0.0.1", AUTHGATE_PORT)) == 0
        assert not in_use, f"port {AUTHGATE_PORT} is already in use"
        self.process = subprocess.Popen(
            [BINARY, "start"], env=environment, stdout=self.log, stderr=subprocess.STDOUT
        )

    def wait_healthy(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            assert code is None, f"authgate exited with {code} while starting"
            try:
                if request(AUTHGATE_PORT, "GET", "/health", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"authgate not healthy within {timeout:.0f} s")

    def stop(self):
        harness.stop(self.process)
        self.log.close()


NGINX_CONF = """\
worker_processes 1;
events {{ worker_connections 256; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/authgate.conf;
}}
"""


class Nginx:
    """nginx in the foreground with deploy/nginx/authgate.conf, filled in."""

    def __init__(self, workdir, port, upstream_port):
        self.workdir, self.port = workdir, port
        with open(SERVER_BLOCK) as source:
            server_block = source.read()
        for placeholder in ("__LISTEN__", "__AUTHGATE__", "__UPSTREAM__"):
            assert placeholder in server_block, f"{SERVER_BLOCK} lacks {placeholder}"
        server_block = (
            server_block.replace("__LISTEN__", f"127.0.0.1:{port}")
            .replace("__AUTHGATE__", f"127.0.0.1:{AUTHGATE_PORT}")
            .replace("__UPSTREAM__", f"127.0.0.1:{upstream_port}")
        )
        with open(os.path.join(workdir, "authgate.conf"), "w") as target:
            target.write(server_block)
        self.conf = os.path.join(workdir, "nginx.conf")
        with open(self.conf, "w") as target:
            target.write(NGINX_CONF.format(tmp=workdir))
        self.error_log = os.path.join(workdir, "error.log")
        globals_ = f"daemon off; pid {workdir}/nginx.pid; error_log {self.error_log} warn;"
        self.command = [NGINX, "-p", workdir, "-e", self.error_log, "-c", self.conf, "-g", globals_]
        check = subprocess.run(self.command + ["-t", "-q"], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, f"nginx -t failed:\n{check.stderr}{self.tail()}"
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def wait_listening(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            assert code is None, f"nginx exited with {code}:\n{self.tail()}"
            with socket.socket() as probe:
                probe.settimeout(1)
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"nginx not listening within {timeout:.0f} s")

    def tail(self, lines=20):
        try:
            with open(self.error_log, errors="replace") as log:
                return "".join(log.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self):
        harness.stop(self.process, grace=10)  # nginx: SIGTERM is its fast shutdown


# --- helpers against authgate directly ----------------------------------------


def direct(method, path, body=None, token=None):
    """A call straight to authgate (account and key management), posing as a
    random client behind the trusted 127.0.0.1 so per-IP limits stay out of it."""
    headers = {"x-forwarded-for": f"10.{random.randrange(256)}.{random.randrange(256)}.7"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return request(AUTHGATE_PORT, method, path, headers, body)


def new_user():
    email = f"gateway-{uuid.uuid4().hex[:12]}@example.com"
    status, _, body = direct("POST", "/auth/signup", {"email": email, "password": PASSWORD})
    assert status == 201, f"signup: {status} {body}"
    return body["user"]["id"], body["accessToken"]


def create_key(token, **fields):
    body = {"name": f"gw-{uuid.uuid4().hex[:8]}", **fields}
    status, _, created = direct("POST", "/keys/create", body, token=token)
    assert status == 201, f"create key: {status} {created}"
    return created


# --- the tests --------------------------------------------------------------------


class Gateway:
    """What every test gets: nginx's port, the upstream, and one user with a key."""

    def __init__(self, nginx, upstream):
        self.nginx, self.upstream = nginx, upstream
        self.user_id, self.token = new_user()
        self.key = create_key(self.token)

    def get(self, path="/", headers=None, source=None, method="GET", body=None):
        return request(self.nginx.port, method, path, headers, body, source)

    def refused(self, headers, what, source=None):
        """Through nginx: 401 with WWW-Authenticate, and the upstream not reached."""
        before = self.upstream.count()
        status, response_headers, body = self.get("/orders", headers, source)
        assert status == 401, f"{what}: {status} {body}"
        assert "www-authenticate" in response_headers, f"{what}: 401 without WWW-Authenticate"
        assert isinstance(body, dict) and body.get("statusCode") == 401, f"{what}: body {body}"
        assert self.upstream.count() == before, f"{what}: the upstream was reached"
        return response_headers


def valid_key_reaches_upstream_as_a_service(gw):
    status, headers, seen = gw.get("/orders/42?x=1", {"x-api-key": gw.key["key"]})
    assert status == 200, (status, seen)
    assert seen["path"] == "/orders/42?x=1", seen
    assert seen["authgate"] == {
        "x-authgate-access-type": ["service"],
        "x-authgate-user-id": [gw.user_id],
        "x-authgate-key-id": [gw.key["id"]],
    }, seen["authgate"]
    assert seen["forwardedFor"] == ["127.0.0.1"], seen["forwardedFor"]
    print(f"    service: {json.dumps(seen['authgate'])}")


def valid_token_reaches_upstream_as_a_user(gw):
    status, _, seen = gw.get("/me", {"authorization": f"Bearer {gw.token}"})
    assert status == 200, (status, seen)
    assert seen["authgate"] == {
        "x-authgate-access-type": ["user"],
        "x-authgate-user-id": [gw.user_id],
    }, seen["authgate"]
    print(f"    user: {json.dumps(seen['authgate'])}")


def a_post_with_a_body_is_verified_and_passed_on(gw):
    # The auth subrequest is always a bodiless GET (proxy_method GET): authgate's
    # /auth/verify answers only GET, and the client's body goes to the upstream.
    status, _, seen = gw.get(
        "/orders", {"x-api-key": gw.key["key"]}, method="POST", body={"item": "book", "n": 2}
    )
    assert status == 200, (status, seen)
    assert seen["method"] == "POST" and json.loads(seen["body"]) == {"item": "book", "n": 2}, seen
    assert seen["authgate"]["x-authgate-key-id"] == [gw.key["id"]], seen["authgate"]
    before = gw.upstream.count()
    status, _, _ = gw.get("/orders", {"x-api-key": mint_key()}, method="POST", body={"n": 1})
    assert status == 401 and gw.upstream.count() == before, status


def refused_credentials_never_reach_upstream(gw):
    _, token = new_user()
    revoked = create_key(token)
    assert gw.get("/", {"x-api-key": revoked["key"]})[0] == 200  # now cached by authgate
    status, _, body = direct("DELETE", f"/keys/{revoked['id']}", token=token)
    assert status == 200, (status, body)
    expires = datetime.now(timezone.utc) + timedelta(seconds=2)
    expiring = create_key(token, expiresAt=expires.isoformat().replace("+00:00", "Z"))
    assert gw.get("/", {"x-api-key": expiring["key"]})[0] == 200
    gw.refused({"x-api-key": revoked["key"]}, "revoked key")
    gw.refused({"x-api-key": mint_key()}, "unknown key")
    gw.refused({"x-api-key": "sk_not-a-key"}, "malformed key")
    gw.refused({"x-api-key": b"sk_\xff\xfe".decode("latin-1")}, "non-UTF-8 key")
    gw.refused({"authorization": "Bearer not.a.jwt"}, "bad token")
    gw.refused({"authorization": f"Basic {gw.token}"}, "token in the wrong scheme")
    # x-api-key decides when present: a bad key is not rescued by a good token.
    gw.refused(
        {"x-api-key": mint_key(), "authorization": f"Bearer {gw.token}"}, "bad key + good token"
    )
    headers = gw.refused({}, "no credential")
    print(f"    401 WWW-Authenticate: {headers['www-authenticate']!r}")
    wait = (expires - datetime.now(timezone.utc)).total_seconds() + 0.3
    time.sleep(max(0.0, wait))
    gw.refused({"x-api-key": expiring["key"]}, "expired key")


def forged_identity_headers_never_reach_upstream(gw):
    forged = {
        "X-Authgate-User-Id": "00000000-0000-0000-0000-000000000000",
        "X-Authgate-Key-Id": "00000000-0000-0000-0000-000000000001",
        "X-Authgate-Access-Type": "admin",
        "X_Authgate_User_Id": "00000000-0000-0000-0000-000000000002",
        "X-Forwarded-For": "203.0.113.9",
    }
    status, _, seen = gw.get("/", {**forged, "x-api-key": gw.key["key"]})
    assert status == 200, (status, seen)
    assert seen["authgate"] == {
        "x-authgate-access-type": ["service"],
        "x-authgate-user-id": [gw.user_id],
        "x-authgate-key-id": [gw.key["id"]],
    }, seen["authgate"]
    assert seen["forwardedFor"] == ["127.0.0.1"], seen["forwardedFor"]
    # A user token has no key id: the client's forged one must not fill the gap.
    status, _, seen = gw.get("/", {**forged, "authorization": f"Bearer {gw.token}"})
    assert status == 200, (status, seen)
    assert seen["authgate"] == {
        "x-authgate-access-type": ["user"],
        "x-authgate-user-id": [gw.user_id],
    }, seen["authgate"]
    gw.refused(forged, "forged identity, no credential")


def rate_limited_key_gets_429_through_nginx(gw):
    limited = create_key(gw.token, rateLimit={"requests": 2, "perSeconds": 60})
    before = gw.upstream.count()
    answers = [gw.get("/", {"x-api-key": limited["key"]}) for _ in range(3)]
    statuses = [status for status, _, _ in answers]
    assert statuses == [200, 200, 429], statuses
    assert gw.upstream.count() == before + 2, "the refused request reached the upstream"
    status, headers, body = answers[2]
    assert int(headers.get("retry-after", "0")) >= 1, headers
    assert isinstance(body, dict) and body.get("statusCode") == 429, body
    assert answers[1][1].get("ratelimit-remaining") == "0", answers[1][1]
    print(
        f"    statuses {statuses}; 429 Retry-After: {headers['retry-after']}, "
        f"RateLimit-Limit {headers.get('ratelimit-limit')}, "
        f"RateLimit-Remaining {headers.get('ratelimit-remaining')}, "
        f"RateLimit-Reset {headers.get('ratelimit-reset')}"
    )


def an_unknown_key_flood_throttles_only_its_client(gw):
    before = gw.upstream.count()
    statuses = []
    retry_after = None
    for n in range(UNKNOWN_KEY_LIMIT + 10):
        # The client also lies in X-Forwarded-For, each time differently: nginx
        # replaces it with the client's real address.
        status, headers, _ = gw.get(
            "/", {"x-api-key": mint_key(), "x-forwarded-for": f"198.51.100.{n}"}, source=CLIENT_A
        )
        statuses.append(status)
        if status == 429 and retry_after is None:
            retry_after = headers.get("retry-after")
    refused = statuses.count(401)
    first_429 = statuses.index(429) + 1 if 429 in statuses else None
    print(
        f"    client {CLIENT_A}: {refused} unknown keys got 401, first 429 at request "
        f"{first_429} (Retry-After {retry_after}); {statuses.count(429)} of "
        f"{len(statuses)} got 429"
    )
    assert statuses[:UNKNOWN_KEY_LIMIT] == [401] * UNKNOWN_KEY_LIMIT, statuses
    assert statuses[UNKNOWN_KEY_LIMIT:] == [429] * 10, statuses
    assert retry_after is not None and int(retry_after) >= 1, retry_after
    # Another client behind the same nginx is not throttled.
    b_unknown = gw.get("/", {"x-api-key": mint_key()}, source=CLIENT_B)[0]
    b_valid, _, seen = gw.get("/", {"x-api-key": gw.key["key"]}, source=CLIENT_B)
    # A known key keeps working for the throttled client too.
    a_valid = gw.get("/", {"x-api-key": gw.key["key"]}, source=CLIENT_A)[0]
    print(
        f"    client {CLIENT_B}: unknown key {b_unknown}, valid key {b_valid}; "
        f"client {CLIENT_A} with a valid key: {a_valid}"
    )
    assert b_unknown == 401, b_unknown
    assert b_valid == 200 and seen["forwardedFor"] == [CLIENT_B], (b_valid, seen)
    assert a_valid == 200, a_valid
    assert gw.upstream.count() == before + 2, "an unknown key reached the upstream"


def authgate_down_fails_closed(gw, authgate):
    before = gw.upstream.count()
    authgate.stop()
    status, headers, body = gw.get("/", {"x-api-key": gw.key["key"]})
    assert status == 502, (status, body)
    assert gw.upstream.count() == before, "the upstream was reached without authgate"
    print(f"    authgate stopped: nginx answers {status} {body}")


def main():
    assert os.path.exists(NGINX), f"{NGINX} not found: install nginx (apt-get install nginx)"
    workdir = tempfile.mkdtemp(prefix="authgate-gateway-")
    authgate = nginx = upstream = None
    passed = failed = 0
    try:
        authgate = Authgate(workdir)
        upstream = Upstream()
        nginx = Nginx(workdir, free_port(), upstream.port)
        authgate.wait_healthy()
        nginx.wait_listening()
        gw = Gateway(nginx, upstream)
        tests = [
            valid_key_reaches_upstream_as_a_service,
            valid_token_reaches_upstream_as_a_user,
            a_post_with_a_body_is_verified_and_passed_on,
            refused_credentials_never_reach_upstream,
            forged_identity_headers_never_reach_upstream,
            rate_limited_key_gets_429_through_nginx,
            an_unknown_key_flood_throttles_only_its_client,
            lambda gw: authgate_down_fails_closed(gw, authgate),  # last: stops authgate
        ]
        names = [t.__name__ for t in tests[:-1]] + ["authgate_down_fails_closed"]
        for name, test in zip(names, tests):
            try:
                test(gw)
                print(f"test {name} ... ok")
                passed += 1
            except AssertionError as error:
                print(f"test {name} ... FAILED {error}")
                failed += 1
            except Exception:  # any other error fails this test, not the run
                print(f"test {name} ... FAILED with an error:\n{traceback.format_exc()}")
                failed += 1
    except Exception:
        print(f"setup failed:\n{traceback.format_exc()}")
        failed += 1
    finally:
        for part in (nginx, authgate, upstream):
            if part is not None:
                part.stop()
        if failed:
            if nginx is not None:
                print(f"--- nginx error log ({nginx.error_log}):\n{nginx.tail()}", end="")
            if authgate is not None:
                with open(authgate.log_path, errors="replace") as log:
                    print(f"--- authgate log ({authgate.log_path}):\n{''.join(log.readlines()[-20:])}", end="")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
