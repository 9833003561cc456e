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
repeated at the end. Heaviest first onto the first free lane; the binaries in ALONE
(timing-sensitive) run by themselves after the lanes.

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

# Binaries whose tests time lease failovers and rebalancing: run alone,
# after the lanes, as `cargo test` would (beside the lake tests' Spark they
# missed a 30 s rebalance deadline once in a fresh-clone CI run).
ALONE = {"ingest"}

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
                    "alone": target["name"] in ALONE and target["kind"][0] == "test",
                }
            )
    return found


def run(binary, logs):
    log = os.path.join(logs, re.sub(r"[^A-Za-z0-9_.-]+", "_", binary["label"]) + ".log")
    env = dict(os.environ, CARGO_MANIFEST_DIR=binary["dir"])
    start = time.monotonic()
    with open(log, "w") as out:
        code = subprocess.call([binary["exe"]], cwd=binary["dir"], env=env, stdout=out, stderr=subprocess.STDOUT)
    binary.update(seconds=time.monotonic() - start, code=code, log=log)
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
    queue = [b for b in todo if not b["alone"]]
    alone = [b for b in todo if b["alone"]]
    started = time.monotonic()

    def lane(n):
        while True:
            with lock:
                if not queue:
                    return
                binary = queue.pop(0)
            run(binary, logs)
            with lock:
                show(binary)
                print(
                    "  lane %d: %-4s %6.1f s  %3d passed  %s"
                    % (n, "ok" if binary["code"] == 0 else "FAIL", binary["seconds"], binary["passed"], binary["label"]),
                    flush=True,
                )

    print("test_lanes: %d binaries in %d lanes" % (len(todo), args.lanes), flush=True)
    threads = [threading.Thread(target=lane, args=(n,)) for n in range(args.lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for binary in alone:
        run(binary, logs)
        show(binary)
        print(
            "  alone:  %-4s %6.1f s  %3d passed  %s"
            % ("ok" if binary["code"] == 0 else "FAIL", binary["seconds"], binary["passed"], binary["label"]),
            flush=True,
        )
    failures = [b for b in todo if b["code"] != 0]
    for b in failures:
        print("\n==== %s failed (exit %d); its output:" % (b["label"], b["code"]))
        sys.stdout.write(open(b["log"], encoding="utf-8", errors="replace").read())
    total = sum(b["passed"] for b in todo)
    print(
        "\ntest_lanes: %d tests passed, %d failed, %d binaries failed, in %.0f s (sum of binaries %.0f s)"
        % (total, sum(b["failed"] for b in todo), len(failures), time.monotonic() - started, sum(b["seconds"] for b in todo))
    )
    for b in sorted(todo, key=lambda b: -b["seconds"]):
        print("  %6.1f s  %s" % (b["seconds"], b["label"]))
    if failures or total == 0:
        sys.exit(1)


if __name__ == "__main__":
    main()
