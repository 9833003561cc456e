#!/usr/bin/env python3
"""Run the workspace's test binaries in parallel lanes (issue 36).

`cargo test` runs its test binaries one after another; ours spend most of
their time waiting (on the moto server, on a Spark JVM, on lease
failovers), so two lanes on two cores finish in about the time of the
longest lane instead of the sum. Input: the JSON messages of
`cargo test --no-run --message-format=json-render-diagnostics`. Each binary
runs as cargo would run it (its package's folder as working directory,
CARGO_MANIFEST_DIR set), its output kept in a log and printed whole, as
cargo prints it ("Running ...", each test's line, "test result: ..."),
once it ends, so lanes never interleave and a failure's output is also
repeated at the end. Heaviest first onto the first free lane. The binaries
in OWN_LANE (timing-sensitive) each get a lane of their own from the start,
at normal CPU priority, while the shared lanes run theirs at `nice +10`: two
cores are shared by priority, not by turns (docs/benchmarks.md, "CI").

    python3 tools/test_lanes.py MESSAGES.json [--lanes N]

Exit 0 when every binary passed and at least one test ran; 1 otherwise.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

# Binaries whose tests time lease failovers and rebalancing (3 s failovers,
# renewals every second): each runs in a lane of its own, beside the others,
# at normal priority. Beside the lake tests' Spark at equal priority they
# missed a 30 s rebalance deadline once in a fresh-clone CI run; the shared
# lanes' binaries (and the JVMs and moto servers they start) run at
# `nice +10`, so whenever a worker needs a core it gets it.
OWN_LANE = {"ingest"}
SHARED_NICE = 10

# Seconds each binary took in the last fresh-clone CI run (docs/benchmarks.md,
# "CI"): only the order matters (heaviest first); unknown ones count as small.
WEIGHTS = {
    "lake": 330,
    "ingest": 270,
    "deploy": 130,
    "node": 80,
    "compact": 80,
    "render": 25,
    "validate": 10,
    "diff": 10,
    "iam": 5,
}


def binaries(path):
    found = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("{"):
                continue
            m = json.loads(line)
            if m.get("reason") != "compiler-artifact" or not m.get("executable"):
                continue
            if not m.get("profile", {}).get("test"):
                continue
            target = m["target"]
            package_dir = os.path.dirname(m["manifest_path"])
            label = "%s %s/%s" % (os.path.basename(package_dir), target["kind"][0], target["name"])
            found.append(
                {
                    "label": label,
                    "exe": m["executable"],
                    "dir": package_dir,
                    "weight": WEIGHTS.get(target["name"], 1),
                    "own_lane": target["name"] in OWN_LANE and target["kind"][0] == "test",
                }
            )
    return found


def run(binary, logs, nice=0):
    log = os.path.join(logs, re.sub(r"[^A-Za-z0-9_.-]+", "_", binary["label"]) + ".log")
    env = dict(os.environ, CARGO_MANIFEST_DIR=binary["dir"])
    start = time.monotonic()
    with open(log, "w") as out:
        # `nice` execs the binary: same process, lower priority.
        argv = (["nice", "-n", str(nice)] if nice else []) + [binary["exe"]]
        child = subprocess.Popen(argv, cwd=binary["dir"], env=env, stdout=out, stderr=subprocess.STDOUT)
        # wait4: the CPU time of the binary and of every process it waited
        # for (its moto servers, the workers and step scripts it ran; not the
        # test binary's shared Spark engine, which is never waited for).
        _, status, usage = os.wait4(child.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    child.returncode = code  # reaped here: Popen must not wait for the pid again
    binary.update(
        seconds=time.monotonic() - start,
        cpu=usage.ru_utime + usage.ru_stime,
        code=code,
        log=log,
    )
    text = open(log, encoding="utf-8", errors="replace").read()
    passed = failed = 0
    for p, f in re.findall(r"test result: \w+\. (\d+) passed; (\d+) failed", text):
        passed += int(p)
        failed += int(f)
    binary.update(passed=passed, failed=failed)


def show(binary):
    """Print a finished binary's whole libtest output as `cargo test` would."""
    print("     Running %s (%s)" % (binary["label"], binary["exe"]), flush=True)
    sys.stdout.write(open(binary["log"], encoding="utf-8", errors="replace").read())
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("messages")
    ap.add_argument("--lanes", type=int, default=int(os.environ.get("LAKE_TEST_LANES", "2")))
    args = ap.parse_args()
    todo = sorted(binaries(args.messages), key=lambda b: -b["weight"])
    if not todo:
        sys.exit("test_lanes: no test binary in %s (did the build fail?)" % args.messages)
    logs = tempfile.mkdtemp(prefix="test-lanes-")
    lock = threading.Lock()
    queue = [b for b in todo if not b["own_lane"]]
    own = [b for b in todo if b["own_lane"]]
    started = time.monotonic()

    def finished(name, binary):
        with lock:
            show(binary)
            print(
                "  %s: %-4s %6.1f s  %6.1f s CPU  %3d passed  %s"
                % (
                    name,
                    "ok" if binary["code"] == 0 else "FAIL",
                    binary["seconds"],
                    binary["cpu"],
                    binary["passed"],
                    binary["label"],
                ),
                flush=True,
            )

    def shared_lane(n):
        while True:
            with lock:
                if not queue:
                    return
                binary = queue.pop(0)
            run(binary, logs, nice=SHARED_NICE)
            finished("lane %d" % n, binary)

    def own_lane(binary):
        run(binary, logs)
        finished("own lane", binary)

    print(
        "test_lanes: %d binaries, %d in %d shared lanes (nice +%d), %d in lanes of their own"
        % (len(todo), len(queue), args.lanes, SHARED_NICE, len(own)),
        flush=True,
    )
    threads = [threading.Thread(target=own_lane, args=(b,)) for b in own]
    threads += [threading.Thread(target=shared_lane, args=(n,)) for n in range(args.lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failures = [b for b in todo if b["code"] != 0]
    for b in failures:
        print("\n==== %s failed (exit %d); its output:" % (b["label"], b["code"]))
        sys.stdout.write(open(b["log"], encoding="utf-8", errors="replace").read())
    total = sum(b["passed"] for b in todo)
    print(
        "\ntest_lanes: %d tests passed, %d failed, %d binaries failed, in %.0f s (sum of binaries %.0f s, %.0f s CPU)"
        % (
            total,
            sum(b["failed"] for b in todo),
            len(failures),
            time.monotonic() - started,
            sum(b["seconds"] for b in todo),
            sum(b["cpu"] for b in todo),
        )
    )
    for b in sorted(todo, key=lambda b: -b["seconds"]):
        print("  %6.1f s  %6.1f s CPU  %s" % (b["seconds"], b["cpu"], b["label"]))
    if failures or total == 0:
        sys.exit(1)


if __name__ == "__main__":
    main()
