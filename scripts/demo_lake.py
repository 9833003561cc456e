#!/usr/bin/env python3
"""The demo's checks against the emulator in AWS_ENDPOINT_URL.

put-bad STREAM: put three malformed records (not JSON, no order time, a KPL
aggregate with a corrupted digest).
verify BUCKET PREFIX BIN SCHEMA LEASES STREAM PAGEVIEWS_PREFIX PAGEVIEWS: show the
orders lake `lake-ingest run` wrote, compact its largest partition with
lake-compact, and check that every good order is there exactly once and
every malformed one is a dead letter; then read the pageviews dataset's
Parquet folder with DuckDB (hive_partitioning) and check its row count."""

import collections
import hashlib
import subprocess
import sys

import boto3


def put_bad(stream):
    kinesis = boto3.client("kinesis")
    # AggregatedRecord{partition_key_table: ["k"], records: [{0, data: "{}"}]}
    body = bytes([0x0A, 0x01]) + b"k" + bytes([0x1A, 0x06, 0x08, 0x00, 0x1A, 0x02]) + b"{}"
    digest = bytearray(hashlib.md5(body).digest())
    digest[-1] ^= 0xFF
    for key, data in [("bad-1", b"not json"), ("bad-2", b'{"orderid":1}'),
                      ("bad-3", bytes([0xF3, 0x89, 0x9A, 0xC2]) + body + bytes(digest))]:
        kinesis.put_record(StreamName=stream, PartitionKey=key, Data=data)
    print("put 3 malformed records")


def expected_rows(bin_dir, schema):
    rows = []
    for seed, start in [("7", None), ("8", "1573700400000")]:
        gen = [f"{bin_dir}/lake-ingest", "datagen", "--count", "10000", "--seed", seed]
        if start:
            gen += ["--start-ms", start]
        orders = subprocess.run(gen, check=True, capture_output=True).stdout
        flat = subprocess.run([f"{bin_dir}/lake-ingest", "flatten", "--format", "csv", "--schema", schema],
                              input=orders, check=True, capture_output=True).stdout.decode()
        header, *lines = flat.splitlines()  # lake files are headerless
        rows += lines
    return collections.Counter(rows)


def lake(s3, bucket, prefix):
    objects = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        objects += page.get("Contents", [])
    return objects


def verify(bucket, prefix, bin_dir, schema, leases, stream, pv_prefix, pv_count):
    s3 = boto3.client("s3")
    expected = expected_rows(bin_dir, schema)
    before = [o for o in lake(s3, bucket, prefix) if "/dt=" in o["Key"]]
    by_partition = collections.Counter("/".join(o["Key"].split("/")[-3:-1]) for o in before)
    print(f"\n== s3://{bucket}/{prefix}: {len(before)} files in {len(by_partition)} hourly partitions")
    for part, n in sorted(by_partition.items()):
        print(f"  {part}: {n} files")

    part, n = by_partition.most_common(1)[0]
    url = f"s3://{bucket}/{prefix}/{part}"
    print(f"\n== lake-compact --src {url} --dest {url} --delete-on-success --lease-table {leases} "
          f"--lease-stream {stream} ({n} small files)")
    # The manifest goes under _compaction/, which Hive and Spark skip; the
    # lease table keeps files of windows not yet checkpointed out of it.
    subprocess.run([f"{bin_dir}/lake-compact", "--src", url, "--dest", url, "--delete-on-success",
                    "--output-manifest", "_compaction/manifest.gz", "--lease-table", leases,
                    "--lease-stream", stream], check=True)

    print("\n== the lake after compaction")
    rows, dead, files = collections.Counter(), [], collections.Counter()
    for o in lake(s3, bucket, prefix):
        key = o["Key"]
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        if "/_errors/" in key:
            dead += [line for line in body.decode().splitlines() if line]
        elif "/dt=" in key and key.endswith(".csv"):
            rows.update(body.decode().splitlines())
            files["/".join(key.split("/")[-3:-1])] += 1
    for p, k in sorted(files.items()):
        print(f"  {p}: {k} files{'  <- compacted' if p == part else ''}")
    reasons = sorted(__import__("json").loads(d)["reason"] for d in dead)
    print(f"  _errors/: {len(dead)} dead letters")
    for r in reasons:
        print(f"    {r[:100]}")
    ok = rows == expected and files[part] == 1 and len(dead) == 3
    print(f"\n== verdict: {sum(rows.values())} orders in the lake, {sum(expected.values())} expected, "
          f"duplicates {sum(c - 1 for c in rows.values() if c > 1)}, missing {sum((expected - rows).values())}, "
          f"dead letters {len(dead)} of 3 injected -> {'OK: every good order exactly once' if ok else 'FAILED'}")
    pv_ok = pageviews(s3, bucket, pv_prefix, int(pv_count))
    sys.exit(0 if ok and pv_ok else 1)


def pageviews(s3, bucket, prefix, want):
    """The pageviews folder as users read it: DuckDB over the Parquet files
    with Hive-style partition discovery (dt=, a day by arrival)."""
    import os
    import tempfile
    import duckdb
    local = tempfile.mkdtemp()
    for o in lake(s3, bucket, prefix):
        rel = o["Key"][len(prefix) + 1:]
        if rel.startswith("_") or "/_" in rel:
            continue
        os.makedirs(os.path.join(local, os.path.dirname(rel)), exist_ok=True)
        s3.download_file(bucket, o["Key"], os.path.join(local, rel))
    rows, days, pages = duckdb.sql(
        f"SELECT count(*), count(DISTINCT dt), count(DISTINCT pageid) "
        f"FROM read_parquet('{local}/*/*.parquet', hive_partitioning = true)").fetchall()[0]
    ok = rows == want
    print(f"\n== s3://{bucket}/{prefix} through DuckDB: {rows} pageviews ({want} sent) in {days} day "
          f"partition(s), {pages} pages -> {'OK' if ok else 'FAILED'}")
    return ok


if __name__ == "__main__":
    if sys.argv[1] == "put-bad":
        put_bad(sys.argv[2])
    else:
        verify(*sys.argv[2:10])
