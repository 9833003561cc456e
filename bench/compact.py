#!/usr/bin/env python3
"""lake-compact benchmark on local disk, in one run:

1. 10,000 small CSV files across 24 hourly partitions, merged by
   `lake-compact` and by `cat` (the I/O floor: one `cat dir/*.csv > out`
   per partition, which keeps every header and verifies nothing);
2. peak RSS of `lake-compact` on one 2 GiB partition (--mem-gib);
3. Parquet (--parquet-files): one partition of small files as `lake-ingest
   backfill --roll-records` writes them, compacted; row groups, a DuckDB
   scan of the partition (one thread) before and after, and lake-compact's
   time against `cat` of the same files; with --spark, Spark SQL (one core)
   reading and scanning the partition before and after too.

    python3 bench/compact.py [--files 10000] [--partitions 24] [--mem-gib 2]
                             [--parquet-files 2000 --parquet-rows 100] [--spark]
"""

import argparse
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
SCHEMA = os.path.join(ROOT, "crates", "dataplane", "tests", "data", "orders.avsc")


def timed(cmd, shell=False):
    """(seconds, peak RSS MiB) of a command, RSS from GNU time."""
    with tempfile.NamedTemporaryFile("r") as report:
        full = f"/usr/bin/time -f %M -o {report.name} {cmd}" if shell else ["/usr/bin/time", "-f", "%M", "-o", report.name] + cmd
        start = time.perf_counter()
        subprocess.run(full, shell=shell, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        secs = time.perf_counter() - start
        return secs, int(report.read().strip().splitlines()[-1]) / 1024


def make_files(root, files, partitions, rows_per_file):
    """CSV files as the ingest writer lays them out, from generated orders."""
    total = files * rows_per_file
    csv = subprocess.run(
        f"{INGEST} datagen --count {total} | {INGEST} flatten --format csv --schema {SCHEMA}",
        shell=True, check=True, capture_output=True,
    ).stdout.split(b"\n")
    header, rows = csv[0] + b"\n", csv[1:]
    for f in range(files):
        part = os.path.join(root, f"ordertime=20191113{f % partitions:02d}")
        os.makedirs(part, exist_ok=True)
        chunk = rows[f * rows_per_file:(f + 1) * rows_per_file]
        with open(os.path.join(part, f"part-{f:05d}.csv"), "wb") as out:
            out.write(header + b"\n".join(chunk) + b"\n")


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


SPARK_SCAN = r"""
import json, sys, time
from pyspark.sql import SparkSession
spark = (SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "1").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
q = ("SELECT count(*), count(DISTINCT orderid), sum(ordertime), round(sum(orderunits), 6) "
     "FROM t WHERE address_state = 'State_7'")
out = {}
for name, path in zip(("before", "after"), sys.argv[1:3]):
    best = None
    for _ in range(int(sys.argv[3]) + 1):  # the first run warms the JVM
        start = time.perf_counter()
        spark.read.parquet(path).createOrReplaceTempView("t")  # listing and footers count
        rows = [list(r) for r in spark.sql(q).collect()]
        secs = time.perf_counter() - start
        best = secs if best is None else min(best, secs)
    out[name] = [best, rows]
print(json.dumps(out))
"""


def spark_scan(before, after, runs):
    """Spark SQL (local[1], one core) reading the partition before and
    after compaction: listing, footers and the scan, best of runs."""
    got = subprocess.run([sys.executable, "-c", SPARK_SCAN, before, after, str(max(runs, 3))],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(got.strip().splitlines()[-1])


def parquet_section(work, files, rows, runs, spark=False):
    """Small Parquet files of one partition, before and after compaction."""
    import duckdb
    raw = os.path.join(work, "pq-raw")
    os.makedirs(raw)
    subprocess.run([INGEST, "datagen", "--count", str(files * rows), "--output",
                    os.path.join(raw, "orders.ndjson")], check=True)
    src = os.path.join(work, "pq-src")
    subprocess.run([INGEST, "backfill", "--from", raw, "--sink", src, "--format", "parquet",
                    "--schema", SCHEMA, "--partition-format", "p=all",
                    "--roll-records", str(rows)], check=True, capture_output=True)
    shutil.rmtree(os.path.join(src, "_ingest"), ignore_errors=True)
    part = os.path.join(src, "p=all")
    con = duckdb.connect()
    con.execute("SET threads=1")

    def groups(pattern):
        return con.execute(f"SELECT count(DISTINCT (file_name, row_group_id)), min(row_group_num_rows), "
                           f"max(row_group_num_rows) FROM parquet_metadata('{pattern}')").fetchone()

    def scan(pattern):
        q = (f"SELECT count(*), count(DISTINCT orderid), sum(ordertime), round(sum(orderunits), 6) "
             f"FROM read_parquet('{pattern}') WHERE address_state = 'State_7'")
        best, result = None, None
        for _ in range(max(runs, 3)):
            start = time.perf_counter()
            result = con.execute(q).fetchall()
            secs = time.perf_counter() - start
            best = secs if best is None else min(best, secs)
        return best, result

    n_files = len(os.listdir(part))
    mb = du(part) / 1e6
    before_groups, before_scan = groups(f"{part}/*.parquet"), scan(f"{part}/*.parquet")
    best = {}
    for name in ("cat (I/O floor)", "lake-compact"):
        times = []
        for _ in range(runs):
            dest = os.path.join(work, "pq-dest")
            shutil.rmtree(dest, ignore_errors=True)
            os.makedirs(dest)
            if name.startswith("cat"):
                secs, rss = timed(f"sh -c 'cat {part}/*.parquet > {dest}/all'", shell=True)
            else:
                secs, rss = timed([COMPACT, "--src", src, "--dest", dest, "--target-size", "128"])
            times.append((secs, rss))
        best[name] = min(times)
    out = os.path.join(work, "pq-dest", "p=all", "*.parquet")
    after_groups, after_scan = groups(out), scan(out)
    assert before_scan[1] == after_scan[1], "compaction changed the rows"
    print(f"\nParquet: {n_files} files of {rows} rows ({mb:.1f} MB) in one partition, best of {runs}\n")
    print("| | row groups | rows per group (min–max) | DuckDB scan, 1 thread |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| before | {before_groups[0]} | {before_groups[1]}–{before_groups[2]} | {before_scan[0] * 1000:.1f} ms |")
    print(f"| after lake-compact | {after_groups[0]} | {after_groups[1]}–{after_groups[2]} | {after_scan[0] * 1000:.1f} ms |")
    print(f"\nscan {before_scan[0] / after_scan[0]:.1f}x faster after; same result {after_scan[1]}")
    if spark:
        spark_times = spark_scan(f"{part}/*.parquet", out, runs)
        (b_secs, b_rows), (a_secs, a_rows) = spark_times["before"], spark_times["after"]
        assert b_rows == a_rows, "Spark reads other rows after compaction"
        print(f"Spark SQL 1 core (read.parquet + the same query): before {b_secs * 1000:.0f} ms, "
              f"after {a_secs * 1000:.0f} ms, {b_secs / a_secs:.1f}x faster after")
    for name, (secs, rss) in best.items():
        print(f"{name}: {secs:.3f} s, {mb / secs:,.0f} MB/s, {n_files / secs:,.0f} files/s, peak RSS {rss:.1f} MiB")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--partitions", type=int, default=24)
    ap.add_argument("--rows-per-file", type=int, default=150)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mem-gib", type=float, default=2)
    ap.add_argument("--parquet-files", type=int, default=2000)
    ap.add_argument("--parquet-rows", type=int, default=100)
    ap.add_argument("--spark", action="store_true",
                    help="also time Spark SQL (pyspark, Java 17) scanning the partition before and after")
    args = ap.parse_args()
    if not shutil.which("/usr/bin/time"):
        sys.exit("/usr/bin/time is needed: apt-get install -y time")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "lake-dataplane"], cwd=ROOT, check=True)

    work = tempfile.mkdtemp(prefix="compact-bench-")
    src = os.path.join(work, "src")
    make_files(src, args.files, args.partitions, args.rows_per_file)
    size = du(src)
    mb = size / 1e6
    print(f"input: {args.files} CSV files, {args.partitions} partitions, {mb:.0f} MB (warm page cache), best of {args.runs}\n")

    best = {}
    for name in ("cat (I/O floor)", "lake-compact"):
        times = []
        for _ in range(args.runs):
            dest = os.path.join(work, "dest")
            shutil.rmtree(dest, ignore_errors=True)
            os.makedirs(dest)
            if name.startswith("cat"):
                script = " && ".join(
                    f"cat {src}/{p}/*.csv > {dest}/{p}.csv" for p in sorted(os.listdir(src))
                )
                secs, rss = timed(f"sh -c '{script}'", shell=True)
            else:
                secs, rss = timed([COMPACT, "--src", src, "--dest", dest, "--target-size", "128"])
            times.append((secs, rss))
        best[name] = min(times)
    print("| tool | MB/s | files/s | peak RSS MiB |")
    print("| --- | ---: | ---: | ---: |")
    for name, (secs, rss) in best.items():
        print(f"| {name} | {mb / secs:,.0f} | {args.files / secs:,.0f} | {rss:.1f} |")
    ratio = best["cat (I/O floor)"][0] / best["lake-compact"][0]
    print(f"\nlake-compact reaches {ratio:.2f} of cat's throughput (target: at least 0.5)")

    if args.mem_gib:
        big = os.path.join(work, "big", "ordertime=2019111315")
        os.makedirs(big)
        one_mib = open(os.path.join(src, "ordertime=2019111300", "part-00000.csv"), "rb").read()
        header, body = one_mib.split(b"\n", 1)
        block = header + b"\n" + body * (1024 * 1024 // len(body) + 1)
        n = int(args.mem_gib * 1024 * 1024 * 1024 / len(block))
        for i in range(n):
            with open(os.path.join(big, f"part-{i:05d}.csv"), "wb") as out:
                out.write(block)
        gib = du(big) / 2**30
        dest = os.path.join(work, "bigdest")
        secs, rss = timed([COMPACT, "--src", os.path.dirname(big), "--dest", dest, "--target-size", "128"])
        print(f"\none partition of {gib:.2f} GiB ({n} files): {secs:.1f} s, peak RSS {rss:.1f} MiB (target: under 256 MiB)")
    if args.parquet_files:
        parquet_section(work, args.parquet_files, args.parquet_rows, args.runs, args.spark)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
