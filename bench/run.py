#!/usr/bin/env python3
"""bsi benchmark (docs/performance.md): prints, in one run, median wall time, throughput and peak
RSS for apply, status and verify against baselines measured in the same run, as ratios.

Usage: python3 bench/run.py [--quick] [--dir /dev/shm/bsi-bench]
Needs: hyperfine, openssl, coreutils; builds bsi in release mode. Runs on tmpfs by default.
bench/peers.py compares bsi with OSTree, on tmpfs and on disk, and at 100,000 files and 8 GiB.
--quick uses smaller payloads (64 MiB instead of 1 GiB, 2,000 files, no 4 GiB run).
"""
import argparse, json, os, resource, shutil, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BSI = os.path.join(ROOT, "target", "release", "bsi")
KEY = os.path.join(ROOT, "fixtures", "keys", "test-only.key")
PUB = KEY + ".pub"
MiB = 1 << 20


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, **kw)


def hyperfine(name, cmd, prepare=None, runs=5, work=None):
    out = os.path.join(work, f"hf-{name}.json")
    plain = not prepare and not any(c in cmd for c in ";&|>")
    args = ["hyperfine", "--style", "none", "--export-json", out, "--runs", str(runs), "-N" if plain else "--shell=bash"]
    if prepare:
        args += ["--prepare", prepare]
    args.append(cmd)
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)["results"][0]["median"]


def rss_of(cmd):
    """Peak RSS (KiB) of `cmd`, measured in a fresh Python child so earlier runs do not count."""
    code = f"import resource,subprocess;subprocess.run({cmd!r},shell=True,check=True,stdout=subprocess.DEVNULL);print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    return int(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)


def make_file(path, size):
    chunk = min(size, 1 << 30)
    sh(f"openssl rand -out {path}.part {chunk}")
    parts = " ".join([f"{path}.part"] * (size // chunk))
    sh(f"cat {parts} > {path} && rm {path}.part")


def make_bundle(work, name, os_dir, build="25D771280a", extra="(a)"):
    out = os.path.join(work, name)
    sh(f"{BSI} bundle create --product macOS --version 26.3.1 --prerequisite 25D2128 --extra '{extra}' --build {build} --os {os_dir} --out {out} --force >/dev/null")
    sh(f"{BSI} bundle sign {out} --key {KEY} >/dev/null")
    sh(f"{BSI} bundle pack {out} --out {out}.tar --force >/dev/null")
    return out


def fresh(dev):
    return f"rm -rf {dev} && {BSI} init --root {dev} --trust {PUB} >/dev/null"


def row(label, seconds, nbytes=None, baseline=None, rss=None):
    s = f"{label:<58} {seconds*1000:10.1f} ms"
    if nbytes:
        s += f" {nbytes / MiB / seconds:9.0f} MiB/s"
    else:
        s += " " * 15
    if baseline:
        s += f"   x{seconds / baseline:5.2f}"
    if rss:
        s += f"   peak RSS {rss / 1024:6.1f} MiB"
    print(s, flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--dir", default="/dev/shm/bsi-bench")
    p.add_argument("--only", default="abcde", help="sections to run, e.g. cd")
    a = p.parse_args()
    sh(f"cd {ROOT} && cargo build --release --quiet")
    work = a.dir
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    big = (64 if a.quick else 1024) * MiB
    nfiles = 2000 if a.quick else 20000
    print(f"bsi benchmark in {work} ({'quick' if a.quick else 'full'}); medians of 5 runs; ratios against the same run's baselines\n")

    dev = os.path.join(work, "dev")
    dest = os.path.join(work, "copy")
    if "a" in a.only or "e" in a.only:
        section_a_e(a, work, big, dev, dest)
    if "b" in a.only:
        section_b(work, nfiles, dev, dest)
    if "c" in a.only:
        section_c(a, work, dev)
    if "d" in a.only:
        section_d(work, dev)
    shutil.rmtree(work, ignore_errors=True)


def section_a_e(a, work, big, dev, dest):
    # (a) one large OS file.
    os_dir = os.path.join(work, "os1")
    os.makedirs(os_dir + "/System/Library/dyld")
    f = os_dir + "/System/Library/dyld/dyld_shared_cache_arm64e"
    make_file(f, big)
    b1 = make_bundle(work, "big.bsi", os_dir)
    hashf = hyperfine("hash", f"openssl dgst -sha256 {f}", work=work)
    cpf = hyperfine("cp", f"rm -f {dest}; cp {f} {dest} && sync", work=work)
    naive = hyperfine("naive", f"rm -f {dest}; sha256sum {f} >/dev/null && cp {f} {dest} && sync", work=work)
    ad = hyperfine("apply-dir", f"{BSI} --root {dev} apply {b1}", prepare=fresh(dev), work=work)
    at = hyperfine("apply-tar", f"{BSI} --root {dev} apply {b1}.tar", prepare=fresh(dev), work=work)
    floor = max(hashf, cpf)
    print(f"(a) apply of one {big // MiB} MiB OS file")
    row("hash floor: openssl dgst -sha256", hashf, big)
    row("copy floor: cp + sync", cpf, big)
    row("naive: sha256sum && cp && sync", naive, big)
    row("bsi apply, directory form (vs max of floors)", ad, big, floor)
    row("bsi apply, tar form (vs max of floors)", at, big, floor)
    print(f"    target: apply/floor <= 1.25 -> dir {ad/floor:.2f}, tar {at/floor:.2f}; naive/apply >= 3 -> dir {naive/ad:.2f}, tar {naive/at:.2f}\n")

    # (e) verify of the large file, then of many files below.
    sh(fresh(dev) + f" && {BSI} --root {dev} apply {b1} --restart >/dev/null")
    ver = hyperfine("verify", f"{BSI} --root {dev} verify", work=work)
    print("(e) verify of the active response")
    row("hash floor: openssl dgst -sha256 of the same file", hashf, big)
    row("bsi verify, one large file (vs hash floor)", ver, big, hashf)
    print(f"    target: verify throughput >= 0.9x floor -> {hashf/ver:.2f}x\n")


def section_b(work, nfiles, dev, dest):
    # (b) many small files.
    tree = os.path.join(work, "tree")
    os.makedirs(tree)
    each = 10 * 1024
    blob = os.urandom(each * 64)
    for i in range(nfiles):
        d = os.path.join(tree, f"d{i // 500:03d}")
        if i % 500 == 0:
            os.makedirs(d)
        off = (i * 977) % (len(blob) - each)
        with open(os.path.join(d, f"f{i:05d}.dylib"), "wb") as fh:
            fh.write(blob[off:off + each])
    total = nfiles * each
    b2 = make_bundle(work, "many.bsi", tree, build="25D771280b", extra="(b)")
    listf = os.path.join(work, "files.txt")
    sh(f"find {tree} -type f > {listf}")
    cpa = hyperfine("cp-a", f"rm -rf {dest}; cp -a {tree} {dest} && sync", work=work)
    htree = hyperfine("hash-tree", f"xargs -a {listf} openssl dgst -sha256 >/dev/null", work=work)
    md = hyperfine("apply-many-dir", f"{BSI} --root {dev} apply {b2}", prepare=fresh(dev), work=work)
    mt = hyperfine("apply-many-tar", f"{BSI} --root {dev} apply {b2}.tar", prepare=fresh(dev), work=work)
    print(f"(b) apply of {nfiles} files ({total // MiB} MiB)")
    row("cp -a + sync", cpa, total)
    row("hash floor of the tree: openssl dgst -sha256 (xargs)", htree, total)
    row("bsi apply, directory form (vs cp -a + hash floor)", md, total, cpa + htree)
    row("bsi apply, tar form (vs cp -a + hash floor)", mt, total, cpa + htree)
    print(f"    target: <= 1.5 -> dir {md/(cpa+htree):.2f}, tar {mt/(cpa+htree):.2f}")
    sh(fresh(dev) + f" && {BSI} --root {dev} apply {b2} --restart >/dev/null")
    vm = hyperfine("verify-many", f"{BSI} --root {dev} verify", work=work)
    row("bsi verify, many files (vs hash floor of the tree)", vm, total, htree)
    print(f"    target: verify throughput >= 0.9x floor -> {htree/vm:.2f}x\n")


def section_c(a, work, dev):
    # (c) peak RSS against payload size.
    print("(c) peak RSS of apply by payload size")
    sizes = [64, 256] if a.quick else [256, 1024, 4096]
    rss = {}
    for mib in sizes:
        d = os.path.join(work, f"rss{mib}")
        os.makedirs(d + "/System")
        make_file(d + "/System/payload", mib * MiB)
        b = make_bundle(work, f"rss{mib}.bsi", d)
        shutil.rmtree(d)
        sh(fresh(dev))
        t0 = time.monotonic()
        rss[mib] = rss_of(f"{BSI} --root {dev} apply {b}")
        row(f"bsi apply, {mib} MiB (directory form)", time.monotonic() - t0, mib * MiB, rss=rss[mib])
        shutil.rmtree(b)
    first, last = rss[sizes[0]], rss[sizes[-1]]
    print(f"    target: <= 32 MiB each, largest within 10 % of smallest -> max {max(rss.values())/1024:.1f} MiB, {last/first:.2f}x\n")


def section_d(work, dev):
    # (d) status with 0 and 10,000 history entries.
    small = os.path.join(work, "small.txt")
    with open(small, "w") as fh:
        fh.write("x\n")
    sh(fresh(dev))
    catf = hyperfine("cat", f"cat {small}", runs=200, work=work)
    s0 = hyperfine("status0", f"{BSI} --root {dev} status --json", runs=200, work=work)
    hist = os.path.join(dev, "private/var/db/bsi/history.jsonl")
    with open(hist) as fh:
        line = fh.readline()
    with open(hist, "a") as fh:
        fh.write(line * 10000)
    s1 = hyperfine("status10k", f"{BSI} --root {dev} status --json", runs=200, work=work)
    print("(d) status --json")
    row("process-start floor: cat of a small file", catf)
    row("bsi status --json, 0 history entries (vs cat)", s0, baseline=catf)
    row("bsi status --json, 10,000 history entries (vs cat)", s1, baseline=catf)
    print(f"    target: <= 3x cat -> {s0/catf:.2f}x and {s1/catf:.2f}x")


if __name__ == "__main__":
    main()
