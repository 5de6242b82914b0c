#!/usr/bin/env python3
"""Parses a Prometheus text exposition file with the Prometheus client's own parser and prints
its samples as JSON: [{"name", "labels", "value"}]. A file the parser rejects fails, and so does
a family that is not a gauge, unless --any-type (a pushgateway's page has its own counters)."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

with open(sys.argv[1]) as f:
    text = f.read()
out = []
for family in text_string_to_metric_families(text):
    if family.type != "gauge" and "--any-type" not in sys.argv:
        sys.exit(f"{family.name}: type {family.type}, expected gauge")
    for s in family.samples:
        out.append({"name": s.name, "labels": s.labels, "value": s.value})
json.dump(out, sys.stdout)
