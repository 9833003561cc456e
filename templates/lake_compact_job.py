"""lake-compact fanned out over a Spark cluster (EMR's YARN).

The driver fetches lake-compact by its content address, has it plan the
run (`--dry-run --output json`), and starts one task per worker (at most
one per group, at most --parallelism, which the lake steps script sets
from the spec's core and task nodes; else the cluster's default
parallelism). Each task fetches the same binary and runs
`lake-compact --worker-index I --worker-count N`: the worker compacts the
groups whose shard key (a partition directory) is its own, with the
crash-safe journal protocol, and checks the ingest lease table itself. A
task whose lake-compact is killed or fails fatally raises, and Spark runs
it again (spark.task.maxFailures); the retry rolls its journals forward,
so no row is lost or doubled. Groups that fail on their own (exit 2:
their files untouched) are reported, not retried. With several workers,
each keeps a manifest of its own (lake-compact names it `NAME-INDEX`).

The run's summary (groups done and failed, bytes in and out, duration,
retried workers) is printed as JSON and written to --summary, where
`lakectl status` reads it.

    spark-submit lake_compact_job.py --binary-url URL --sha256 HEX
        [--parallelism N] [--summary URL] -- LAKE_COMPACT_ARGS...

Rendered into the lake steps script by lakectl (render::steps); runs on
EMR's Python 3 (3.9 on emr-7.x): no syntax newer than that.
"""

import argparse
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def fetch(url, sha256):
    """lake-compact by its content address, once per machine."""
    cache = os.path.join(tempfile.gettempdir(), "lake-compact-" + sha256)
    path = os.path.join(cache, "lake-compact")
    if os.path.exists(path):
        return path  # verified before it was renamed into place
    os.makedirs(cache, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache)
    os.close(fd)
    try:
        if url.startswith("s3://"):
            subprocess.run(["aws", "s3", "cp", "--only-show-errors", url, tmp], check=True)
        else:
            shutil.copyfile(url, tmp)
        digest = hashlib.sha256()
        with open(tmp, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != sha256:
            raise RuntimeError(
                "%s has sha256 %s, not %s: not the published lake-compact" % (url, digest.hexdigest(), sha256)
            )
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _die_with_parent():
    # lake-compact dies with the Python worker that started it (a task
    # Spark kills must not leave its lake-compact running beside the retry).
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def worker(index, count, url, sha256, args):
    """One task: lake-compact for worker `index` of `count`."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    attempt = ctx.attemptNumber() if ctx is not None else 0
    binary = fetch(url, sha256)
    cmd = [binary] + list(args)
    cmd += ["--worker-index", str(index), "--worker-count", str(count), "--output", "json"]
    started = time.time()
    proc = subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, preexec_fn=_die_with_parent
    )
    sys.stderr.write(proc.stderr)
    if proc.returncode not in (0, 2):
        # Killed (a negative code) or a fatal error: Spark runs the task
        # again, and the retry rolls this worker's journals forward.
        raise RuntimeError(
            "lake-compact worker %d of %d (attempt %d) exited %d: %s"
            % (index, count, attempt, proc.returncode, proc.stderr[-2000:])
        )
    report = json.loads(proc.stdout)
    report.update(worker=index, attempt=attempt, seconds=round(time.time() - started, 3))
    return report


def plan(binary, args):
    proc = subprocess.run(
        [binary] + list(args) + ["--dry-run", "--output", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=True,
    )
    if proc.returncode != 0:
        raise RuntimeError("planning failed (lake-compact exited %d): %s" % (proc.returncode, proc.stderr[-2000:]))
    return json.loads(proc.stdout)


def summarize(started, planned, count, reports, error=None):
    failed = [dict(f, worker=r["worker"]) for r in reports for f in r["failed"]]
    summary = {
        "started": datetime.datetime.fromtimestamp(started, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seconds": round(time.time() - started, 3),
        "planned_groups": planned,
        "workers": count,
        "groups_done": sum(r["groups"] for r in reports) - len(failed),
        "groups_failed": len(failed),
        "files_compacted": sum(r["files_compacted"] for r in reports),
        "rows": sum(r["rows"] for r in reports),
        "bytes_in": sum(r["bytes_in"] for r in reports),
        "bytes_out": sum(r["bytes_out"] for r in reports),
        "uncommitted_files_left": max([r["skipped"]["uncommitted"] for r in reports] or [0]),
        "retried_workers": sorted(r["worker"] for r in reports if r["attempt"] > 0),
        "per_worker": [
            {k: r[k] for k in ("worker", "attempt", "groups", "files_compacted", "bytes_in", "seconds")}
            for r in sorted(reports, key=lambda r: r["worker"])
        ],
        "failed": failed,
    }
    if error is not None:
        summary["error"] = error
    return summary


def write_summary(url, summary):
    body = json.dumps(summary, indent=2) + "\n"
    if url.startswith("s3://"):
        subprocess.run(
            ["aws", "s3", "cp", "--only-show-errors", "-", url], input=body, universal_newlines=True, check=True
        )
    else:
        path = url[len("file://"):] if url.startswith("file://") else url
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as f:
            f.write(body)


def main(argv):
    parser = argparse.ArgumentParser(prog="lake_compact_job.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary-url", required=True, help="lake-compact: s3://… or a local path")
    parser.add_argument("--sha256", required=True, help="its content address")
    parser.add_argument("--parallelism", type=int, default=0, help="workers at most (default: the cluster's)")
    parser.add_argument("--summary", help="where the run's summary JSON goes (s3://… or a path)")
    if "--" not in argv:
        parser.error("lake-compact's arguments follow `--`")
    split = argv.index("--")
    opts = parser.parse_args(argv[:split])
    args = argv[split + 1 :]
    if any(a.split("=")[0] in ("--worker-index", "--worker-count", "--output", "--dry-run") for a in args):
        parser.error("--worker-index, --worker-count, --output and --dry-run are the job's to set")
    if opts.parallelism < 0:
        parser.error("--parallelism must be 0 (the cluster's) or more")

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("lake-compact").getOrCreate()
    sc = spark.sparkContext
    started = time.time()
    planned, count, reports, error = 0, 0, [], None
    try:
        binary = fetch(opts.binary_url, opts.sha256)
        planning = plan(binary, args)
        planned = planning["groups"]
        if planning["empty_source"]:
            print("lake-compact job: the source holds no files: nothing to do", file=sys.stderr)
        count = max(1, min(opts.parallelism or sc.defaultParallelism, planned))
        if planned:
            url, sha, rest = opts.binary_url, opts.sha256, args
            reports = (
                sc.parallelize(range(count), count).map(lambda i: worker(i, count, url, sha, rest)).collect()
            )
    except Exception as e:  # reported in the summary, then the step fails
        error = str(e)[-4000:]
    summary = summarize(started, planned, count if planned else 0, reports, error)
    print(json.dumps(summary))
    if opts.summary:
        write_summary(opts.summary, summary)
    spark.stop()
    if error is not None:
        print("lake-compact job: " + error.splitlines()[0] if error else "lake-compact job failed", file=sys.stderr)
        return 1
    return 1 if summary["groups_failed"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
