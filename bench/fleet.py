#!/usr/bin/env python3
"""Fleet sync against a local KMFDDM: throughput, latency, and CPU of bsi against the server's.

For each storage backend of the server (filekv and inmem by default) it starts KMFDDM on a free
port of 127.0.0.1, uploads three declarations (settings, an enforcement, an activation) into one
set, makes a fleet with `bsi fleet init`, assigns every enrollment to the set through the admin
API, then runs `bsi fleet sync` (each device: tokens, items, three declarations, a full status
report) and prints bsi's figures next to the CPU time the server used meanwhile (from
/proc/PID/stat). Needs the KMFDDM binary (BSI_KMFDDM, or target/kmfddm/kmfddm as `.ci/run`
installs it with `go install github.com/jessepeterson/kmfddm/cmd/kmfddm@v0.8.3`).

    python3 bench/fleet.py                  # 1000 devices, concurrency 16, filekv and inmem
    python3 bench/fleet.py --count 200 --storage inmem
"""

import argparse
import base64
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "bench"


_GIVEN = set()


def free_port():
    """A loopback port nothing listens on, never one this run has given before: servers bind
    theirs later, and two calls before then could otherwise get the same one."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Api:
    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port)
        self.auth = "Basic " + base64.b64encode(f"kmfddm:{KEY}".encode()).decode()

    def put(self, path, body=None):
        self.conn.request("PUT", "/v1" + path, body=body, headers={"Authorization": self.auth})
        r = self.conn.getresponse()
        r.read()
        if r.status >= 400:
            sys.exit(f"PUT {path}: HTTP {r.status}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--storage", action="append", choices=["filekv", "inmem"])
    p.add_argument("--dir", default=None, help="where fleets go (default: a temp dir)")
    args = p.parse_args()
    storages = args.storage or ["filekv", "inmem"]
    kmfddm = os.environ.get("BSI_KMFDDM", os.path.join(ROOT, "target/kmfddm/kmfddm"))
    if not os.path.exists(kmfddm):
        sys.exit(f"no KMFDDM at {kmfddm}: GOBIN={ROOT}/target/kmfddm go install github.com/jessepeterson/kmfddm/cmd/kmfddm@v0.8.3")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    bsi = os.path.join(ROOT, "target/release/bsi")
    work = args.dir or tempfile.mkdtemp(prefix="bsi-fleet-bench-")
    decls = [json.load(open(os.path.join(ROOT, "fixtures/declarations", f"{n}.json")))
             for n in ("settings", "enforcement", "activation")]
    print(f"{args.count} devices, concurrency {args.concurrency}, {os.cpu_count()} cores")
    for storage in storages:
        port = free_port()
        store = os.path.join(work, f"kmfddm-{storage}")
        server = subprocess.Popen(
            [kmfddm, "-api", KEY, "-listen", f"127.0.0.1:{port}", "-storage", storage, "-storage-dsn", store],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            api = Api(port)
            for d in decls:
                api.put("/declarations", json.dumps(d).encode())
                api.put(f"/set-declarations/bench?declaration={d['Identifier']}")
            fleet = os.path.join(work, f"fleet-{storage}")
            shutil.rmtree(fleet, ignore_errors=True)
            subprocess.run([bsi, "fleet", "init", "--dir", fleet, "--count", str(args.count),
                            "--trust", os.path.join(ROOT, "fixtures/keys/test-only.key.pub"), "-q"], check=True)
            for d in json.load(open(os.path.join(fleet, "fleet.json")))["devices"]:
                api.put(f"/enrollment-sets/{d['enrollment_id']}?set=bench")
            before = cpu_seconds(server.pid)
            out = subprocess.run([bsi, "fleet", "sync", "--dir", fleet, "--server", f"http://127.0.0.1:{port}",
                                  "--concurrency", str(args.concurrency), "--json"],
                                 capture_output=True, text=True)
            server_cpu = cpu_seconds(server.pid) - before
            if out.returncode != 0:
                print(out.stdout, out.stderr)
                sys.exit(f"fleet sync failed ({out.returncode})")
            r = json.loads(out.stdout)
            lat = r["latency_ms"]
            print(f"KMFDDM -storage {storage}: {r['ok']}/{r['devices']} synced in {r['seconds']:.2f} s "
                  f"({r['syncs_per_second']:.0f} syncs/s); latency p50 {lat['p50']:.1f} ms, p90 {lat['p90']:.1f} ms, "
                  f"p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms; CPU: bsi {r['cpu_seconds']:.2f} s, "
                  f"server {server_cpu:.2f} s (bsi/server {r['cpu_seconds'] / max(server_cpu, 1e-9):.2f})")
        finally:
            server.kill()
            server.wait()
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
