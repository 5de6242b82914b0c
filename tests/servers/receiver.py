#!/usr/bin/env python3
"""An HTTP receiver for the notification and metrics tests.

    receiver.py PORT_FILE LOG_FILE [--fail N] [--slow SECONDS]

Listens on 127.0.0.1 (a free port, written to PORT_FILE), answers every POST or PUT and appends
one JSON line per request to LOG_FILE: method, path, content type and body. A body sent to a
path under /metrics/ is also parsed with the Prometheus client's text parser (when the Python
running this has it) and its samples are logged. --fail N answers the first N requests with
HTTP 500; --slow S waits S seconds before answering.
"""
import argparse
import http.server
import json
import threading
import time

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # the notification tests need no parser
    text_string_to_metric_families = None

lock = threading.Lock()
state = {"failed": 0}


def samples(text):
    out = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.append({"name": s.name, "labels": s.labels, "value": s.value})
    return out


class Handler(http.server.BaseHTTPRequestHandler):
    def handle_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        entry = {
            "method": self.command,
            "path": self.path,
            "content_type": self.headers.get("Content-Type"),
            "body": body,
        }
        if self.path.startswith("/metrics/") and text_string_to_metric_families:
            entry["samples"] = samples(body)
        if args.slow:
            time.sleep(args.slow)
        with lock:
            failing = state["failed"] < args.fail
            state["failed"] += failing
            entry["answered"] = 500 if failing else 200
            with open(args.log, "a") as f:
                f.write(json.dumps(entry) + "\n")
        self.send_response(entry["answered"])
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = handle_body
    do_PUT = handle_body

    def log_message(self, *a):
        pass


parser = argparse.ArgumentParser()
parser.add_argument("port_file")
parser.add_argument("log")
parser.add_argument("--fail", type=int, default=0)
parser.add_argument("--slow", type=float, default=0)
args = parser.parse_args()
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(args.port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os

os.rename(args.port_file + ".tmp", args.port_file)
server.serve_forever()
