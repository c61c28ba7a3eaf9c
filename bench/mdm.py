#!/usr/bin/env python3
"""A fleet over MDM: enrollment and one DDM cycle through NanoMDM, timed, with CPU and memory.

Starts a SCEP CA, KMFDDM (in-memory storage) and NanoMDM (in-memory storage, KMFDDM behind it)
on free ports of 127.0.0.1, as scripts/mdm-lab does. For each fleet size it makes a fleet with
`bsi fleet init`, then measures:

  enroll  `bsi fleet enroll`: per device a key pair, SCEP (GetCACaps, GetCACert, PKCSReq),
          then Authenticate and TokenUpdate signed with the new identity;
  assign  putting every enrollment in KMFDDM's declaration set (the admin API; KMFDDM queues a
          DeclarativeManagement command for each device through NanoMDM);
  cycle   `bsi fleet poll --then-auto`: per device Idle, the DeclarativeManagement command
          answered, a DDM sync through the MDM channel (tokens, declaration-items, four
          declarations, the enforcement acted on, a status report);

bsi's CPU (its children's rusage) against the servers' CPU over the same time (/proc/PID/stat),
and bsi's peak RSS. Then `bsi fleet init` and `bsi fleet status` at 10,000 devices.

    python3 bench/mdm.py                        # 1000 devices, Keysize 1024 and 2048
    python3 bench/mdm.py --count 250 --keysize 2048
    python3 bench/mdm.py --count 1000 --large 0 # skip the 10,000-device figures

Needs target/release/bsi (cargo build --release) and Go (the servers are installed into
target/ on first use, as the tests do).
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

from fleet import cpu_seconds, free_port  # bench/fleet.py: the same measurements

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "bench"
CHALLENGE = "bench-challenge"
MODULES = {
    "scepserver": ("mdm", "github.com/micromdm/scep/v2/cmd/scepserver@v2.3.0"),
    "nanomdm": ("mdm", "github.com/micromdm/nanomdm/cmd/nanomdm@v0.9.0"),
    "kmfddm": ("kmfddm", "github.com/jessepeterson/kmfddm/cmd/kmfddm@v0.8.3"),
}


def installed(name):
    sub, module = MODULES[name]
    path = os.path.join(ROOT, "target", sub, name)
    if not os.path.exists(path):
        env = dict(os.environ, GOBIN=os.path.join(ROOT, "target", sub))
        subprocess.run(["go", "install", module], check=True, env=env)
    return path


def wait_port(port):
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def run_measured(*args):
    """bsi with its peak RSS (MiB) and CPU seconds, from wait4."""
    start = time.monotonic()
    p = subprocess.Popen([BSI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bsi {' '.join(args)}: exit {status}\n{err.decode()}")
    return wall, out.decode(), usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


class Lab:
    def __init__(self, tmp):
        self.procs = []
        depot = os.path.join(tmp, "depot")
        subprocess.run([installed("scepserver"), "ca", "-init", "-keySize", "2048", "-depot", depot],
                       check=True, capture_output=True)
        self.scep, self.mdm, self.ddm = free_port(), free_port(), free_port()
        log = open(os.path.join(tmp, "servers.log"), "w")
        self.procs.append(subprocess.Popen(
            [installed("scepserver"), "-depot", depot, "-port", str(self.scep), "-challenge", CHALLENGE],
            stdout=log, stderr=log))
        self.procs.append(subprocess.Popen(
            [installed("kmfddm"), "-api", KEY, "-listen", f"127.0.0.1:{self.ddm}", "-storage", "inmem",
             "-enqueue", f"http://127.0.0.1:{self.mdm}/v1/enqueue/", "-enqueue-key", KEY],
            stdout=log, stderr=log))
        self.procs.append(subprocess.Popen(
            [installed("nanomdm"), "-ca", os.path.join(depot, "ca.pem"), "-api", KEY,
             "-listen", f"127.0.0.1:{self.mdm}", "-storage", "inmem", "-storage-dsn", "",
             "-dm", f"http://127.0.0.1:{self.ddm}/"],
            stdout=log, stderr=log))
        for port in (self.scep, self.ddm, self.mdm):
            wait_port(port)
        self.conn = http.client.HTTPConnection("127.0.0.1", self.ddm)
        self.auth = "Basic " + base64.b64encode(f"kmfddm:{KEY}".encode()).decode()

    def cpu(self):
        return sum(cpu_seconds(p.pid) for p in self.procs)

    def put(self, path, body=None):
        self.conn.request("PUT", "/v1" + path, body=body, headers={"Authorization": self.auth})
        r = self.conn.getresponse()
        r.read()
        if r.status >= 400:
            sys.exit(f"PUT {path}: HTTP {r.status}")

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait()


def profile(lab, keysize):
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadIdentifier</key><string>com.example.bench</string>
<key>PayloadUUID</key><string>8C1D6C5E-0000-4000-8000-000000000001</string>
<key>PayloadVersion</key><integer>1</integer>
<key>PayloadContent</key><array>
<dict><key>PayloadType</key><string>com.apple.security.scep</string>
<key>PayloadIdentifier</key><string>com.example.bench.scep</string>
<key>PayloadUUID</key><string>8C1D6C5E-0000-4000-8000-000000000002</string>
<key>PayloadVersion</key><integer>1</integer>
<key>PayloadContent</key><dict>
<key>URL</key><string>http://127.0.0.1:{lab.scep}/scep</string>
<key>Challenge</key><string>{CHALLENGE}</string>
<key>Keysize</key><integer>{keysize}</integer>
<key>Subject</key><array><array><array><string>CN</string><string>%UDID%</string></array></array></array>
</dict></dict>
<dict><key>PayloadType</key><string>com.apple.mdm</string>
<key>PayloadIdentifier</key><string>com.example.bench.mdm</string>
<key>PayloadUUID</key><string>8C1D6C5E-0000-4000-8000-000000000003</string>
<key>PayloadVersion</key><integer>1</integer>
<key>ServerURL</key><string>http://127.0.0.1:{lab.mdm}/mdm</string>
<key>Topic</key><string>com.apple.mgmt.External.bench</string>
<key>IdentityCertificateUUID</key><string>8C1D6C5E-0000-4000-8000-000000000002</string>
<key>SignMessage</key><true/>
</dict></array></dict></plist>"""


def one(count, keysize, concurrency, where):
    tmp = tempfile.mkdtemp(prefix="bsi-bench-mdm-", dir=where)
    lab = Lab(tmp)
    try:
        fleet = os.path.join(tmp, "fleet")
        run_measured("fleet", "init", "--dir", fleet, "--count", str(count), "--platform", "macOS",
                     "--supervised-percent", "100", "--battery-spread", "50-100",
                     "--trust", os.path.join(ROOT, "fixtures/keys/test-only.key.pub"), "--seed", "1")
        prof = os.path.join(tmp, "enroll.mobileconfig")
        with open(prof, "w") as f:
            f.write(profile(lab, keysize))
        for name in ("settings", "enforcement", "subscriptions", "activation"):
            with open(os.path.join(ROOT, "fixtures/declarations", name + ".json"), "rb") as f:
                lab.put("/declarations", f.read())
        for i in ("com.example.bsi.settings", "com.example.bsi.enforce-26.3.1-a",
                  "com.example.bsi.subscriptions", "com.example.bsi.activation"):
            lab.put(f"/set-declarations/bench?declaration={i}")
        bundles = os.path.join(tmp, "bundles")
        os.mkdir(bundles)
        shutil.copy(os.path.join(ROOT, "fixtures/bundles/macos-26.3.1-a.bsi.tar"), bundles)

        c0 = lab.cpu()
        enroll_wall, out, enroll_rss, enroll_cpu = run_measured(
            "--json", "fleet", "enroll", "--dir", fleet, "--profile", prof,
            "--concurrency", str(concurrency))
        enrolled = json.loads(out)
        c1 = lab.cpu()
        udids = []
        for d in sorted(os.listdir(os.path.join(fleet, "devices"))):
            with open(os.path.join(fleet, "devices", d, "private/var/db/bsi/mdm/enrollment.json")) as f:
                udids.append(json.load(f)["udid"])
        t = time.monotonic()
        for u in udids:
            lab.put(f"/enrollment-sets/{u}?set=bench")
        assign = time.monotonic() - t
        time.sleep(0.5)  # KMFDDM queues the commands in NanoMDM as it goes
        c2 = lab.cpu()
        cycle_wall, out, cycle_rss, cycle_cpu = run_measured(
            "--now", "2026-12-01T12:30:00Z", "--json", "fleet", "poll", "--dir", fleet,
            "--concurrency", str(concurrency), "--then-auto", "--from", bundles)
        polled = json.loads(out)
        c3 = lab.cpu()
        # A second cycle with nothing to install: a changed declaration, fetched and reported.
        with open(os.path.join(ROOT, "fixtures/declarations/settings.json")) as f:
            settings = json.load(f)
        settings["Payload"].setdefault("Notifications", True)
        lab.put("/declarations", json.dumps(settings).encode())
        time.sleep(0.5 + count / 2000)
        c4 = lab.cpu()
        again_wall, out, again_rss, again_cpu = run_measured(
            "--now", "2026-12-01T13:00:00Z", "--json", "fleet", "poll", "--dir", fleet,
            "--concurrency", str(concurrency), "--then-auto", "--from", bundles)
        again = json.loads(out)
        c5 = lab.cpu()
        status_wall, out, _, _ = run_measured("--json", "fleet", "status", "--dir", fleet)
        status = json.loads(out)
        return {
            "count": count, "keysize": keysize,
            "enrolled": enrolled["ok"], "enroll_failed": enrolled["failed"],
            "enroll_s": enroll_wall, "enroll_bsi_cpu": enroll_cpu, "enroll_server_cpu": c1 - c0,
            "enroll_rss": enroll_rss,
            "assign_s": assign,
            "cycle_s": cycle_wall, "cycle_bsi_cpu": cycle_cpu, "cycle_server_cpu": c3 - c2,
            "cycle_rss": cycle_rss, "polled": polled["ok"], "poll_failed": polled["failed"],
            "dm_commands": polled["commands"].get("DeclarativeManagement", 0),
            "versions": status["by_version"],
            "again_s": again_wall, "again_bsi_cpu": again_cpu, "again_server_cpu": c5 - c4,
            "again_dm": again["commands"].get("DeclarativeManagement", 0),
        }
    finally:
        lab.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def large(count, where):
    tmp = tempfile.mkdtemp(prefix="bsi-bench-fleet-", dir=where)
    try:
        fleet = os.path.join(tmp, "fleet")
        init_wall, _, init_rss, _ = run_measured(
            "fleet", "init", "--dir", fleet, "--count", str(count),
            "--trust", os.path.join(ROOT, "fixtures/keys/test-only.key.pub"), "--seed", "1")
        status_wall, out, status_rss, _ = run_measured("--json", "fleet", "status", "--dir", fleet)
        assert json.loads(out)["devices"] == count
        return init_wall, init_rss, status_wall, status_rss
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    global BSI
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, nargs="+", default=[250, 1000])
    p.add_argument("--keysize", type=int, nargs="+", default=[1024, 2048])
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--large", type=int, default=10000, help="devices for fleet init/status (0: skip)")
    p.add_argument("--bsi", default=os.path.join(ROOT, "target/release/bsi"))
    p.add_argument("--dir", default=None,
                   help="where the fleet and the servers' files go (default: the system's temporary"
                        " directory; /dev/shm keeps them in memory, as the servers' storage is)")
    a = p.parse_args()
    BSI = a.bsi
    if not os.path.exists(BSI):
        sys.exit(f"{BSI} is missing: cargo build --release")
    print(f"bsi {subprocess.run([BSI, '--version'], capture_output=True, text=True).stdout.strip()}, "
          f"{os.cpu_count()} CPUs, concurrency {a.concurrency}, fleet in {a.dir or tempfile.gettempdir()}")
    print(f"{'devices':>7} {'key':>5} {'enroll s':>9} {'assign s':>9} {'cycle s':>8} {'total s':>8}"
          f" {'bsi CPU/dev ms':>15} {'servers CPU/dev ms':>19} {'peak RSS MiB':>13}  result")
    for keysize in a.keysize:
        for count in a.count:
            r = one(count, keysize, a.concurrency, a.dir)
            total = r["enroll_s"] + r["assign_s"] + r["cycle_s"]
            bsi_cpu = (r["enroll_bsi_cpu"] + r["cycle_bsi_cpu"]) / count * 1000
            srv_cpu = (r["enroll_server_cpu"] + r["cycle_server_cpu"]) / count * 1000
            rss = max(r["enroll_rss"], r["cycle_rss"])
            print(f"{count:>7} {keysize:>5} {r['enroll_s']:>9.2f} {r['assign_s']:>9.2f} {r['cycle_s']:>8.2f}"
                  f" {total:>8.2f} {bsi_cpu:>15.1f} {srv_cpu:>19.1f} {rss:>13.1f}"
                  f"  enrolled {r['enrolled']}, DM commands {r['dm_commands']}, versions {r['versions']}"
                  f" (enroll: bsi {r['enroll_bsi_cpu'] / count * 1000:.1f} ms/dev, servers"
                  f" {r['enroll_server_cpu'] / count * 1000:.1f}; cycle: bsi"
                  f" {r['cycle_bsi_cpu'] / count * 1000:.1f}, servers {r['cycle_server_cpu'] / count * 1000:.1f})")
            print(f"{'':>7} {'':>5} second cycle, nothing to install: {r['again_s']:.2f} s,"
                  f" {r['again_dm']} DM commands, bsi {r['again_bsi_cpu'] / count * 1000:.1f} ms/dev,"
                  f" servers {r['again_server_cpu'] / count * 1000:.1f} ms/dev")
            sys.stdout.flush()
    if a.large:
        init_wall, init_rss, status_wall, status_rss = large(a.large, a.dir)
        print(f"{a.large} devices: fleet init {init_wall:.2f} s (peak {init_rss:.1f} MiB),"
              f" fleet status {status_wall:.2f} s (peak {status_rss:.1f} MiB)")


if __name__ == "__main__":
    main()
