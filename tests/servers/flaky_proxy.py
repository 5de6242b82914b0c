#!/usr/bin/env python3
"""An HTTP proxy in front of an S3 server that fails on purpose, for the retry tests.

    flaky_proxy.py UPSTREAM_URL STATS_FILE [--record LOG_FILE] [--latency MS] [--random RATE --seed N]

With --record, no fault is injected: every request is forwarded and logged to LOG_FILE as one
line "METHOD PATH" (query included), so that a test can tell which objects were read. With
--latency, each request waits MS milliseconds before it is forwarded and MS more before its
answer is sent (a distant region's round trip, for benchmarks).

Listens on a free port of 127.0.0.1 and prints it on the first line of stdout. Request number n
(counting from 1) is treated by a fixed plan, so every run injects the same faults:

- n % 5 == 2: answered 503 SlowDown without reaching the server (throttling);
- n % 7 == 3: answered 500 InternalError without reaching the server;
- n % 11 == 5: the connection is closed after the request was read, with no answer;
- a GET whose body is larger than 4 KiB, every third one: the headers and half the body are
  sent, then the connection is closed (a body that breaks off).

With --random, the plan is replaced by chance: each request meets a fault with probability RATE
(0.05 for 5%), drawn from a generator seeded with N so that a run can be replayed. The fault is
one of the four above or a slow body (the answer's body sent in small pieces over about two
seconds), chosen with equal odds; a body can only be cut or slowed on a GET whose body is larger
than 4 KiB. Any other request drawn for those two is forwarded and then answered 503: a write
that landed although its client was told it failed.

Everything else is forwarded unchanged. Counts of each fault are written to STATS_FILE as JSON
after every request.
"""

import http.client
import http.server
import json
import os
import random
import socket
import sys
import threading
import time
import urllib.parse

UPSTREAM = urllib.parse.urlsplit(sys.argv[1])
STATS_FILE = sys.argv[2]
OPTIONS = dict(zip(sys.argv[3::2], sys.argv[4::2]))
RECORD = OPTIONS.get("--record")
LATENCY = float(OPTIONS.get("--latency", "0")) / 1000
RANDOM_RATE = float(OPTIONS.get("--random", "0"))
CHANCE = random.Random(int(OPTIONS.get("--seed", "0")))
LOCK = threading.Lock()
STATS = {
    "requests": 0,
    "slowdown": 0,
    "internal_error": 0,
    "dropped": 0,
    "cut_body": 0,
    "slow_body": 0,
}
BIG_GETS = [0]

ERROR_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>{code}</Code><Message>{message}</Message></Error>"
)


def count(key):
    STATS[key] += 1
    with open(STATS_FILE + ".tmp", "w") as f:
        json.dump(STATS, f)
    os.replace(STATS_FILE + ".tmp", STATS_FILE)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def error_reply(self, status, code, message):
        body = ERROR_BODY.format(code=code, message=message).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        with LOCK:
            STATS["requests"] += 1
            n = STATS["requests"]
            if RECORD:
                with open(RECORD, "a") as f:
                    f.write(f"{self.command} {self.path}\n")
                fault = None
            elif RANDOM_RATE:
                fault = None
                if CHANCE.random() < RANDOM_RATE:
                    fault = CHANCE.choice(["slowdown", "internal", "drop", "cut", "slow"])
                if fault == "drop":
                    count("dropped")
                elif fault in ("slowdown", "internal"):
                    count("slowdown" if fault == "slowdown" else "internal_error")
            elif n % 5 == 2:
                count("slowdown")
                fault = "slowdown"
            elif n % 7 == 3:
                count("internal_error")
                fault = "internal"
            elif n % 11 == 5:
                count("dropped")
                fault = "drop"
            else:
                fault = None
        if fault == "slowdown":
            return self.error_reply(503, "SlowDown", "Please reduce your request rate.")
        if fault == "internal":
            return self.error_reply(500, "InternalError", "Injected by the test proxy.")
        if fault == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if LATENCY:
            time.sleep(LATENCY)
        conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        cut = slow = False
        big_get = self.command == "GET" and resp.status < 300 and len(data) > 4096
        if fault in ("cut", "slow") and not big_get:
            # No body to cut or slow down: the fault becomes throttling.
            with LOCK:
                count("slowdown")
            return self.error_reply(503, "SlowDown", "Please reduce your request rate.")
        if fault in ("cut", "slow"):
            with LOCK:
                count("cut_body" if fault == "cut" else "slow_body")
            cut, slow = fault == "cut", fault == "slow"
        elif not RECORD and not RANDOM_RATE and big_get:
            with LOCK:
                BIG_GETS[0] += 1
                if BIG_GETS[0] % 3 == 0:
                    count("cut_body")
                    cut = True
        if LATENCY:
            time.sleep(LATENCY)
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        if self.command == "HEAD":
            self.send_header("Content-Length", resp.getheader("Content-Length") or "0")
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if cut:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if slow:
            piece = max(1, len(data) // 20)
            for start in range(0, len(data), piece):
                self.wfile.write(data[start : start + piece])
                self.wfile.flush()
                time.sleep(0.1)
            return
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
