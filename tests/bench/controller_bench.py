#!/usr/bin/env python3
"""backupop-controller at scale, on the real kube-apiserver of tests/env/k8s-local.sh.

N BackupSchedules (default 1000) are created at once (spread over 10 namespaces, each
referring to a password Secret and one BackupStorage); the controller, started before
them, must make a Secret, a StatefulSet and a Service for each and write a Ready status.
Prints: the time until every runner object exists and every status is Ready, the
controller's peak RSS (VmHWM), its CPU time over an idle minute afterwards, and the
figures against the targets of DESIGN.md §7 (convergence with no busy polling, idle CPU
~0, RSS <= 32 MiB with 10,000 schedules cached).

Usage: controller_bench.py --controller BUILD/controller/backupop-controller
       [--kubeconfig FILE] [--schedules N] [--idle-seconds S]
Needs BOP_TEST_KUBECONFIG (an admin kubeconfig) or --kubeconfig.
"""
import argparse
import base64
import concurrent.futures
import json
import os
import random
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml  # python3-yaml

GROUP = "/apis/backupop.io/v1alpha1"
SYS = "backupop-system"


class Kube:
    def __init__(self, kubeconfig):
        with open(kubeconfig) as f:
            cfg = yaml.safe_load(f)
        ctx = {c["name"]: c["context"] for c in cfg["contexts"]}[cfg["current-context"]]
        cluster = {c["name"]: c["cluster"] for c in cfg["clusters"]}[ctx["cluster"]]
        user = {u["name"]: u["user"] for u in cfg["users"]}[ctx["user"]]
        self.server = cluster["server"]
        self.token = user["token"]
        self.ssl = ssl.create_default_context()
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
        self.ssl.load_verify_locations(cadata=ca)

    def req(self, method, path, body=None, ctype="application/json"):
        data = json.dumps(body).encode() if body is not None else None
        r = urllib.request.Request(self.server + path, data=data, method=method)
        r.add_header("Authorization", "Bearer " + self.token)
        if data is not None:
            r.add_header("Content-Type", ctype)
        for attempt in range(5):
            try:
                with urllib.request.urlopen(r, context=self.ssl, timeout=60) as resp:
                    return resp.status, json.loads(resp.read() or b"null")
            except urllib.error.HTTPError as e:
                if e.code in (429, 500, 503) and attempt < 4:
                    time.sleep(0.5 * (attempt + 1))
                    continue
                return e.code, json.loads(e.read() or b"null")

    def list_all(self, path):
        items, cont = [], ""
        while True:
            sep = "&" if "?" in path else "?"
            _, d = self.req("GET", path + sep + "limit=500" + ("&continue=" + cont if cont else ""))
            items += d.get("items", [])
            cont = d.get("metadata", {}).get("continue")
            if not cont:
                return items


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def proc_stats(pid):
    with open(f"/proc/{pid}/status") as f:
        st = dict(l.split(":", 1) for l in f if ":" in l)
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tick
    return int(st["VmHWM"].split()[0]) / 1024, int(st["VmRSS"].split()[0]) / 1024, cpu


def metrics(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    rec = sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
              if l.startswith("backupop_controller_reconcile_total"))
    wr = sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
             if l.startswith("backupop_controller_writes_total"))
    return rec, wr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--controller", required=True)
    ap.add_argument("--kubeconfig", default=os.environ.get("BOP_TEST_KUBECONFIG"))
    ap.add_argument("--schedules", type=int, default=1000)
    ap.add_argument("--namespaces", type=int, default=10)
    ap.add_argument("--idle-seconds", type=int, default=60)
    a = ap.parse_args()
    if not a.kubeconfig:
        print("controller bench: skipped: no API server (BOP_TEST_KUBECONFIG)")
        return 0
    k = Kube(a.kubeconfig)
    tag = "%04x" % random.getrandbits(16)
    nss = ["bench-%s-%d" % (tag, i) for i in range(a.namespaces)]
    store = "bench-" + tag
    k.req("POST", "/api/v1/namespaces", {"metadata": {"name": SYS}})
    for ns in nss:
        k.req("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
        k.req("POST", f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": "db"},
              "stringData": {"password": "bench-pw"}})
    k.req("POST", f"/api/v1/namespaces/{SYS}/secrets", {"metadata": {"name": store},
          "stringData": {"accessKeyId": "AK", "secretAccessKey": "SK"}})
    k.req("POST", GROUP + "/backupstorages", {"apiVersion": "backupop.io/v1alpha1",
          "kind": "BackupStorage", "metadata": {"name": store},
          "spec": {"s3": {"endpoint": "http://127.0.0.1:9", "bucket": "b", "region": "us-east-1"},
                   "credentialsSecretRef": {"namespace": SYS, "name": store},
                   "allowedNamespaces": {"from": "All"}}})

    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="bop-ctl-bench-", suffix=".log", delete=False)
    ctl = subprocess.Popen([a.controller, "--kubeconfig", a.kubeconfig, "--namespace", SYS,
                            "--runner-image", "backupop/runner:bench", "--metrics-addr",
                            f"127.0.0.1:{port}", "--log-format", "json", "--log-level", os.environ.get("BOP_BENCH_LOG_LEVEL", "warn")],
                           stdout=log, stderr=log)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except Exception:
                time.sleep(0.1)

        def make(i):
            ns = nss[i % len(nss)]
            body = {"apiVersion": "backupop.io/v1alpha1", "kind": "BackupSchedule",
                    "metadata": {"name": f"s{i}"},
                    "spec": {"schedule": "0 3 * * *", "storage": {"name": store},
                             "engine": {"postgres": {"host": f"db{i}.{ns}.svc", "database": "app",
                                                     "user": "backup",
                                                     "passwordSecretRef": {"name": "db", "key": "password"}}},
                             "retention": {"keepLast": 3}}}
            st, d = k.req("POST", f"{GROUP}/namespaces/{ns}/backupschedules", body)
            if st != 201:
                raise RuntimeError(f"create s{i}: {st} {d}")

        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            list(ex.map(make, range(a.schedules)))
        t_created = time.monotonic() - t0
        sel = "?labelSelector=app.kubernetes.io/managed-by%3Dbackupop-controller"
        while True:
            n_obj = sum(len(k.list_all(p + sel)) for p in (
                f"/api/v1/namespaces/{SYS}/secrets", f"/apis/apps/v1/namespaces/{SYS}/statefulsets",
                f"/api/v1/namespaces/{SYS}/services"))
            scheds = [s for ns in nss for s in k.list_all(f"{GROUP}/namespaces/{ns}/backupschedules")]
            ready = sum(1 for s in scheds for c in s.get("status", {}).get("conditions", [])
                        if c["type"] == "Ready" and c["status"] == "True")
            if n_obj >= 3 * a.schedules and ready >= a.schedules:
                break
            if time.monotonic() - t0 > 1800 or ctl.poll() is not None:
                print(f"controller bench: did not converge: {n_obj} objects, {ready} Ready")
                return 1
            time.sleep(1)
        t_conv = time.monotonic() - t0
        time.sleep(5)   # the last status writes echo back as watch events
        hwm, rss, cpu0 = proc_stats(ctl.pid)
        m0 = metrics(port)
        time.sleep(a.idle_seconds)
        hwm2, rss2, cpu1 = proc_stats(ctl.pid)
        m1 = metrics(port)
        idle = cpu1 - cpu0
        print(f"controller bench: {a.schedules} schedules created in {t_created:.1f} s; "
              f"{3 * a.schedules} runner objects + {a.schedules} Ready statuses after {t_conv:.1f} s")
        print(f"controller bench: peak RSS {max(hwm, hwm2):.1f} MiB (target <= 32 MiB at 10,000); "
              f"RSS now {rss2:.1f} MiB")
        print(f"controller bench: CPU over an idle {a.idle_seconds} s: {idle:.2f} s "
              f"({100 * idle / a.idle_seconds:.2f}% of a core; target ~0); reconciles "
              f"{m1[0] - m0[0]:.0f}, writes {m1[1] - m0[1]:.0f} meanwhile")
        return 0
    finally:
        ctl.terminate()
        try:
            ctl.wait(20)
        except subprocess.TimeoutExpired:
            ctl.kill()
        for ns in nss:
            for s in k.list_all(f"{GROUP}/namespaces/{ns}/backupschedules"):
                k.req("PATCH", f"{GROUP}/namespaces/{ns}/backupschedules/{s['metadata']['name']}",
                      {"metadata": {"finalizers": None}}, "application/merge-patch+json")
            k.req("DELETE", f"/api/v1/namespaces/{ns}")
        for p in (f"/api/v1/namespaces/{SYS}/secrets", f"/apis/apps/v1/namespaces/{SYS}/statefulsets",
                  f"/api/v1/namespaces/{SYS}/services"):
            for o in k.list_all(p + sel):
                k.req("DELETE", p + "/" + o["metadata"]["name"])
        k.req("DELETE", GROUP + "/backupstorages/" + store)


if __name__ == "__main__":
    sys.exit(main())
