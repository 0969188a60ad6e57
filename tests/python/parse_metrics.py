"""Reads a Prometheus text exposition on stdin with the reference Python client's parser
(prometheus_client.parser) and prints every sample as JSON: [family, type, name, labels, value].
Any line the parser rejects fails the script."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        samples.append([family.name, family.type, s.name, s.labels, s.value])
json.dump(samples, sys.stdout)
