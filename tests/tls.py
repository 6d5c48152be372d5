#!/usr/bin/env python3
"""HTTPS end to end, with a certificate made by openssl at test time: the service
started with TLS_CERT_FILE/TLS_KEY_FILE answers over HTTPS (h2 and HTTP/1.1 by
ALPN) with Strict-Transport-Security, plain HTTP on that port gets no answer, a
client that never finishes its handshake is dropped after HEADER_TIMEOUT, and a
key that does not match the certificate, or a certificate that cannot be read,
stops start-up with a message naming the variable.

Usage: python3 tests/tls.py target/debug/authgate-cli
"""

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import harness


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_certificate(directory, name):
    cert, key = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )
    return cert, key


def environment(directory, port, cert, key):
    return dict(
        os.environ,
        LOCO_ENV="development",
        PORT=str(port),
        BINDING="127.0.0.1",
        DATABASE_URL=f"sqlite://{directory}/tls.sqlite?mode=rwc",
        TLS_CERT_FILE=cert,
        TLS_KEY_FILE=key,
        HEADER_TIMEOUT="2s",
        LOG_LEVEL="info",
    )


def refused_start(binary, env, variable):
    """The service must exit at start-up, naming `variable`."""
    try:
        result = subprocess.run([binary, "start"], env=env, capture_output=True, text=True,
                                timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the service started despite a bad {variable}")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert variable in output, output
    print(f"ok: a bad {variable} stops start-up: "
          f"{next(line for line in output.splitlines() if variable in line).strip()[:160]}")


def main():
    binary = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as directory:
        cert, key = make_certificate(directory, "server")
        _, other_key = make_certificate(directory, "other")
        port = free_port()
        context = ssl.create_default_context(cafile=cert)

        refused_start(binary, environment(directory, port, cert, other_key), "TLS_KEY_FILE")
        refused_start(binary, environment(directory, port, os.path.join(directory, "absent.crt"),
                                          key), "TLS_CERT_FILE")

        log_path = os.path.join(directory, "service.log")
        with open(log_path, "w") as log:
            service = subprocess.Popen([binary, "start"], env=environment(directory, port, cert, key),
                                       stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"https://127.0.0.1:{port}/health"
            for _ in range(600):
                try:
                    with urllib.request.urlopen(url, context=context, timeout=2) as response:
                        status, hsts = response.status, response.headers["strict-transport-security"]
                        request_id = response.headers["x-request-id"]
                    break
                except (OSError, urllib.error.URLError):
                    if service.poll() is not None:
                        raise AssertionError(open(log_path).read())
                    time.sleep(0.1)
            else:
                raise AssertionError("no HTTPS answer:\n" + open(log_path).read())
            assert status == 200, status
            assert hsts == "max-age=31536000", hsts
            assert request_id, "no x-request-id"
            print(f"ok: HTTPS /health 200, Strict-Transport-Security: {hsts}")

            for offered, expected in ((["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1")):
                alpn = ssl.create_default_context(cafile=cert)
                alpn.set_alpn_protocols(offered)
                with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                        alpn.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    assert tls.selected_alpn_protocol() == expected, tls.selected_alpn_protocol()
            print("ok: ALPN offers h2, and HTTP/1.1 to a client without h2")

            plain = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                plain.request("GET", "/health")
                answer = plain.getresponse().status
            except (OSError, http.client.HTTPException) as error:
                answer = type(error).__name__
            assert answer != 200, "plain HTTP got a 200 on the TLS port"
            print(f"ok: plain HTTP on the TLS port gets no answer ({answer})")

            with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
                started = time.monotonic()
                closed = idle.recv(1) == b""
                waited = time.monotonic() - started
            assert closed and waited < 8, (closed, waited)
            print(f"ok: a client that never starts its handshake is dropped after {waited:.1f} s")

            time.sleep(0.5)
            lines = [json.loads(line) for line in open(log_path) if line.startswith('{"time"')]
            health = [line for line in lines if line.get("requestId") == request_id]
            assert health and health[0]["route"] == "/health", lines
            print(f"ok: access log line: {json.dumps(health[0])}")
        finally:
            harness.stop(service, grace=20)
    print("tls: all passed")


if __name__ == "__main__":
    main()
