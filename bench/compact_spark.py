#!/usr/bin/env python3
"""The compaction job (templates/lake_compact_job.py) against one process,
in one run, on local disk:

A backlog of PARTITIONS hourly partitions (dt=/hr=, 90 days is 2,160) of
FILES small CSV files each, compacted in place three times from the same
copy: by one `lake-compact` process (what the EMR step ran before), and by
the Spark job (spark-submit, local master) with 1 and with 2 executors.
The three lakes must come out byte-identical (exactly once, same files).

    python3 bench/compact_spark.py [--partitions 2000] [--files 4] [--rows 25]

Needs the release binaries (cargo build --release --workspace) and
pyspark with Java (scripts/setup-tools.sh).
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
INGEST = os.path.join(ROOT, "target", "release", "lake-ingest")
COMPACT = os.path.join(ROOT, "target", "release", "lake-compact")
JOB = os.path.join(ROOT, "templates", "lake_compact_job.py")
SCHEMA = os.path.join(ROOT, "crates", "dataplane", "tests", "data", "orders.avsc")


def make_backlog(root, partitions, files, rows):
    """Headerless CSV files as lake-ingest lays them out."""
    lines = subprocess.run(
        f"{INGEST} datagen --count {partitions * files * rows} | {INGEST} flatten --format csv --schema {SCHEMA}",
        shell=True, check=True, capture_output=True,
    ).stdout.split(b"\n")[1:]  # without flatten's header
    n = 0
    for p in range(partitions):
        day, hour = divmod(p, 24)
        part = os.path.join(root, f"dt=2019-{1 + day // 28:02d}-{1 + day % 28:02d}", f"hr={hour:02d}")
        os.makedirs(part, exist_ok=True)
        for f in range(files):
            with open(os.path.join(part, f"shardId-000000000000-{n:08d}.csv"), "wb") as out:
                out.write(b"\n".join(lines[n * rows:(n + 1) * rows]) + b"\n")
            n += 1


def tree(root):
    """Relative path -> sha256 of every lake file (bookkeeping excluded)."""
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            rel = os.path.relpath(os.path.join(d, f), root)
            if any(part.startswith("_") for part in rel.split(os.sep)):
                continue
            with open(os.path.join(d, f), "rb") as fh:
                out[rel] = hashlib.sha256(fh.read()).hexdigest()
    return out


def sha256(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--partitions", type=int, default=2000)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--rows", type=int, default=25)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="compact-spark-")
    try:
        base = os.path.join(work, "backlog")
        make_backlog(base, args.partitions, args.files, args.rows)
        files = args.partitions * args.files
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(base) for f in fs)
        results = []

        lake = os.path.join(work, "one")
        shutil.copytree(base, lake)
        start = time.perf_counter()
        subprocess.run([COMPACT, "--src", lake, "--dest", lake, "--delete-on-success"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        results.append(("one lake-compact process (--concurrency 4)", time.perf_counter() - start, None))
        want = tree(lake)
        assert len(want) == args.partitions, len(want)

        for executors in (1, 2):
            lake = os.path.join(work, f"spark{executors}")
            shutil.copytree(base, lake)
            start = time.perf_counter()
            out = subprocess.run(
                ["spark-submit", "--master", f"local[{executors}]", "--conf", "spark.ui.enabled=false",
                 "--conf", "spark.log.level=ERROR", JOB, "--binary-url", COMPACT, "--sha256", sha256(COMPACT),
                 "--parallelism", str(executors), "--", "--src", lake, "--dest", lake, "--delete-on-success"],
                check=True, capture_output=True, text=True,
            )
            wall = time.perf_counter() - start
            summary = next(json.loads(l) for l in out.stdout.splitlines() if l.startswith('{"started"'))
            assert summary["groups_done"] == args.partitions and summary["groups_failed"] == 0, summary
            got = tree(lake)
            assert got == want, "the job's lake differs from one process's"
            results.append((f"Spark job, {executors} executor(s)", wall, summary["seconds"]))

        print(f"backlog: {args.partitions} partitions, {files} files, {size / 1e6:.1f} MB; "
              f"all three lakes byte-identical ({len(want)} files)")
        print("| run | wall s | job s (after Spark start) | files/s | vs one process |")
        print("| --- | ---: | ---: | ---: | ---: |")
        one = results[0][1]
        for name, wall, job in results:
            job_s = f"{job:.1f}" if job is not None else "—"
            print(f"| {name} | {wall:.1f} | {job_s} | {files / wall:,.0f} | {one / wall:.2f}× |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
