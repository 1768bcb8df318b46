#!/usr/bin/env python3
"""Inputs and measurements for benches/scale.sh.

  gen.py noise                          10,000 unrelated Secrets and ConfigMaps (YAML)
  gen.py instances N                    N Penpots with their relation Secrets (YAML)
  gen.py render N BIN INPUTS NS         the operator's objects for them, via `render` (YAML)
  gen.py latency NS UPDATES             Secret update -> new pod-template hash, p50/p99
"""
import json
import statistics
import subprocess
import sys
import time


def noise():
    for i in range(5000):
        ns = f"noise-{i % 10}"
        print(f"apiVersion: v1\nkind: Secret\nmetadata: {{name: noise-{i}, namespace: {ns}}}\n"
              f"stringData: {{value: v{i}}}\n---")
        print(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: noise-{i}, namespace: {ns}}}\n"
              f"data: {{value: v{i}}}\n---")


def instance(i):
    p = f"p{i}"
    return f"""apiVersion: v1
kind: Secret
metadata: {{name: {p}-postgresql}}
stringData: {{endpoints: "pg.db.svc.cluster.local:5432", database: penpot, username: penpot, password: pw-{i}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: {p}-redis}}
stringData: {{hostname: valkey.db.svc.cluster.local, port: "6379"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: {p}-s3}}
stringData: {{access-key: penpot, secret-key: s3-{i}, bucket: penpot, endpoint: "http://minio.storage.svc:9000"}}
---
apiVersion: penpot-operator.dev/v1alpha1
kind: Penpot
metadata: {{name: {p}}}
spec:
  publicUri: https://{p}.example.com/
  replicas: 1
  dnsResolver: 10.96.0.10
  postgresql: {{secretRef: {{name: {p}-postgresql}}}}
  redis: {{secretRef: {{name: {p}-redis}}}}
  s3: {{secretRef: {{name: {p}-s3}}}}
---"""


def instances(n):
    for i in range(n):
        print(instance(i))


def render(n, binary, _inputs, _ns):
    for i in range(n):
        out = subprocess.run([binary, "render", "-f", "-"], input=instance(i), capture_output=True, text=True, check=True)
        for doc in out.stdout.split("\n---\n"):
            if "kind: Penpot\n" in doc or not doc.strip():
                continue
            print(doc.strip("-\n"))
            print("---")


def kubectl(*args):
    return subprocess.run(["kubectl", *args], capture_output=True, text=True, check=True).stdout


def latency(ns, updates):
    path = "{.spec.template.metadata.annotations.penpot-operator\\.dev/config-hash}"
    samples = []
    for i in range(updates):
        before = kubectl("-n", ns, "get", "statefulset", "p0", "-o", f"jsonpath={path}")
        patch = json.dumps({"stringData": {"password": f"rotated-{i}-{time.time_ns()}"}})
        start = time.monotonic()
        kubectl("-n", ns, "patch", "secret", "p0-redis", "--type=merge", "-p", patch)
        while kubectl("-n", ns, "get", "statefulset", "p0", "-o", f"jsonpath={path}") == before:
            if time.monotonic() - start > 30:
                raise SystemExit(f"update {i}: no new hash after 30 s")
        samples.append(time.monotonic() - start)
    samples.sort()
    p = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    print(f"Reaction latency over {updates} Secret updates (kubectl patch until the StatefulSet carries the new "
          f"config hash, polled with kubectl, about 40 ms per poll): p50 {p(0.5) * 1000:.0f} ms, "
          f"p99 {p(0.99) * 1000:.0f} ms, max {samples[-1] * 1000:.0f} ms, mean {statistics.mean(samples) * 1000:.0f} ms.")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "noise":
        noise()
    elif mode == "instances":
        instances(int(sys.argv[2]))
    elif mode == "render":
        render(int(sys.argv[2]), *sys.argv[3:6])
    elif mode == "latency":
        latency(sys.argv[2], int(sys.argv[3]))
