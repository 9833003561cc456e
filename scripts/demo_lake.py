#!/usr/bin/env python3
"""The demo's S3 part, against the emulator in AWS_ENDPOINT_URL: lay the
flattened orders out as small hourly files (what `lake-ingest run` will do,
issue 6), compact them in place with lake-compact, and check that every good
order is in the lake exactly once."""

import collections
import datetime
import gzip
import subprocess
import sys

import boto3

csv_path, dead_path, compact = sys.argv[1:4]
BUCKET, PREFIX = "lake-local-data", "lake/orders"
s3 = boto3.client("s3")
s3.create_bucket(Bucket=BUCKET)

header, *rows = open(csv_path, "rb").read().decode().splitlines()
by_hour = collections.defaultdict(list)
for row in rows:
    hour = datetime.datetime.fromtimestamp(int(row.split(",")[0]) / 1000, datetime.timezone.utc)
    by_hour[hour.strftime("ordertime=%Y%m%d%H")].append(row)
files = 0
for part, part_rows in sorted(by_hour.items()):
    for i in range(0, len(part_rows), 250):
        body = "\n".join([header] + part_rows[i:i + 250]) + "\n"
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{part}/part-{i // 250:04d}.csv", Body=body.encode())
        files += 1
print(f"\n== s3://{BUCKET}/{PREFIX}: {len(rows)} orders in {files} small files over {len(by_hour)} hourly partitions")

print("\n== lake-compact --src s3://... --dest s3://... --delete-on-success --output-manifest manifest.gz")
url = f"s3://{BUCKET}/{PREFIX}"
subprocess.run([compact, "--src", url, "--dest", url, "--delete-on-success", "--output-manifest", "manifest.gz"], check=True)

print("\n== the lake after compaction")
lake_rows = collections.Counter()
objects = s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX + "/")["Contents"]
for o in objects:
    key = o["Key"]
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    if key.endswith("manifest.gz"):
        listed = gzip.decompress(body).decode().splitlines()
        print(f"  {key}: {len(listed)} compacted source files listed")
        continue
    lines = body.decode().splitlines()
    assert lines[0] == header, f"{key} lost its header"
    lake_rows.update(lines[1:])
    print(f"  {key}: {len(lines) - 1} orders, {o['Size']} bytes")

expected = collections.Counter(rows)
dead = sum(1 for _ in open(dead_path))
ok = lake_rows == expected and len(listed) == files and dead == 5
print(f"\n== verdict: {sum(lake_rows.values())} orders in the lake, {len(expected)} expected, "
      f"duplicates {sum(c - 1 for c in lake_rows.values() if c > 1)}, missing {len(expected - lake_rows)}, "
      f"dead letters {dead} of 5 injected -> {'OK: every good order exactly once' if ok else 'FAILED'}")
sys.exit(0 if ok else 1)
