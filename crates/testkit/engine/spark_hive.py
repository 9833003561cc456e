#!/usr/bin/env python3
"""The test tier's query engine: Spark SQL with Hive support (pyspark from
PyPI, Java from Debian, a local Derby metastore), serving the `hive` command
the lake's EMR step scripts run.

On EMR, the step scripts call `hive -f FILE` / `hive -S -e SQL` and read
`s3://` locations. Here one long-lived SparkSession answers those calls (a
JVM start per call would cost ~10 s), and `s3://BUCKET/...` locations are
read from a local mirror of the moto server's buckets, refreshed before
every call (Spark's S3 connector is not in pyspark). Every call starts from
fresh file listings, as a new `hive` process on EMR would.

    spark_hive.py serve --socket PATH --warehouse DIR --mirror DIR
    spark_hive.py hive [-S] (-f FILE | -e SQL)       # what the scripts run
    spark_hive.py query --json -e SQL                # what the tests read

`hive` and `query` find the server through LAKE_SQL_SOCKET, and the
database through LAKE_SQL_DATABASE (one per test, so tests run in
parallel against one server). Exit codes follow the hive CLI: 0 ok, 1 a
statement failed (its error on stderr).

The server exits when its parent process does (no orphan JVMs after a test
binary ends).
"""

import argparse
import json
import os
import re
import socket
import socketserver
import sys
import threading
import time


def hive_only(stmt):
    """Hive syntax Spark SQL does not parse, where Spark's meaning is the
    same without it: `ALTER TABLE … ADD COLUMNS (…) CASCADE` makes Hive add
    the columns to every existing partition's metadata too; Spark keeps no
    column list per partition (it reads each with the table's columns), so
    it is that statement without the keyword. Nothing else is rewritten."""
    m = re.match(r"(?is)^(\s*ALTER\s+TABLE\s+\S+\s+ADD\s+COLUMNS\s*\(.*\))\s*CASCADE\s*$", stmt)
    return m.group(1) if m else stmt


def split_statements(text):
    """SQL text -> statements, split at `;` outside quotes and comments (as
    the hive and spark-sql CLIs do)."""
    out, cur, quote, i = [], [], None, 0
    while i < len(text):
        c = text[i]
        if quote:
            cur.append(c)
            if c == "\\" and i + 1 < len(text):
                cur.append(text[i + 1])
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "'\"`":
            quote = c
            cur.append(c)
        elif c == "-" and text[i:i + 2] == "--":
            j = text.find("\n", i)
            i = len(text) if j < 0 else j
            continue
        elif c == ";":
            stmt = "".join(cur).strip()
            if stmt:
                out.append(stmt)
            cur = []
        else:
            cur.append(c)
        i += 1
    stmt = "".join(cur).strip()
    if stmt:
        out.append(stmt)
    return out


def cell(v):
    """A value as the hive CLI prints it."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


class Engine:
    def __init__(self, warehouse, mirror):
        from pyspark.sql import SparkSession

        self.mirror = mirror
        os.makedirs(mirror, exist_ok=True)
        self.spark = (
            SparkSession.builder.master("local[1]")
            .appName("lake-sql-tests")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.sql.warehouse.dir", os.path.join(warehouse, "warehouse"))
            .config(
                "spark.hadoop.javax.jdo.option.ConnectionURL",
                "jdbc:derby:;databaseName=%s;create=true" % os.path.join(warehouse, "metastore_db"),
            )
            .config("spark.driver.extraJavaOptions", "-Dderby.system.home=%s" % warehouse)
            .enableHiveSupport()
            .getOrCreate()
        )
        self.spark.sparkContext.setLogLevel("ERROR")
        self.lock = threading.Lock()
        # (bucket, key) -> ETag of the mirrored copy (kept out of the mirror:
        # any file there is data to Hive and Spark).
        self.etags = {}

    def sync_mirror(self, mirror, buckets, endpoint):
        """Copy the buckets the SQL names from the S3 endpoint to `mirror`
        (and remove what is gone there), so reads see the store as it is."""
        import boto3

        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        for bucket in buckets:
            root = os.path.join(mirror, bucket)
            want = {}
            token = None
            while True:
                kw = {"Bucket": bucket}
                if token:
                    kw["ContinuationToken"] = token
                try:
                    resp = s3.list_objects_v2(**kw)
                except s3.exceptions.NoSuchBucket:
                    break
                for o in resp.get("Contents", []):
                    want[o["Key"]] = (o["Size"], o["ETag"])
                if not resp.get("IsTruncated"):
                    break
                token = resp["NextContinuationToken"]
            have = set()
            for d, _, files in os.walk(root):
                for f in files:
                    have.add(os.path.relpath(os.path.join(d, f), root))
            for key in have - set(want):
                os.remove(os.path.join(root, key))
                self.etags.pop((root, key), None)
            for key, (size, etag) in want.items():
                if key.endswith("/"):
                    continue
                path = os.path.join(root, key)
                if os.path.exists(path) and self.etags.get((root, key)) == etag:
                    continue
                os.makedirs(os.path.dirname(path), exist_ok=True)
                s3.download_file(bucket, key, path)
                self.etags[(root, key)] = etag
            # Empty directories left by deletes would read as empty partitions.
            for d, dirs, files in os.walk(root, topdown=False):
                if d != root and not os.listdir(d):
                    os.rmdir(d)

    def run(self, sql, database, endpoint):
        """Execute a script; returns (ok, stdout text, error text, rows).
        Each database has its own mirror: tests share the engine, each with
        its own S3 endpoint (and maybe the same bucket names)."""
        database = database or "default"
        mirror = os.path.join(self.mirror, database)
        with self.lock:
            buckets = set(re.findall(r"s3a?://([a-z0-9][a-z0-9.-]*)", sql))
            self.spark.sql("CREATE DATABASE IF NOT EXISTS `%s`" % database)
            self.spark.sql("USE `%s`" % database)
            for t in self.spark.catalog.listTables(database):
                if t.tableType == "VIEW":
                    continue
                # A new `hive` process on EMR lists files afresh.
                self.spark.sql("REFRESH TABLE `%s`.`%s`" % (database, t.name))
                # Tables already in the metastore read from the mirror: the
                # buckets behind them are refreshed too.
                for r in self.spark.sql("DESCRIBE FORMATTED `%s`.`%s`" % (database, t.name)).collect():
                    if r[0] == "Location" and r[1]:
                        m = re.match(r"file:%s/([^/]+)" % re.escape(mirror), r[1])
                        if m:
                            buckets.add(m.group(1))
            self.sync_mirror(mirror, sorted(buckets), endpoint)
            local = re.sub(r"s3a?://", "file://%s/" % mirror, sql)
            out, rows = [], []
            for stmt in split_statements(local):
                stmt = hive_only(stmt)
                try:
                    df = self.spark.sql(stmt)
                    result = df.collect()
                except Exception as e:  # noqa: BLE001 - reported like the hive CLI
                    msg = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
                    return False, "\n".join(out), "FAILED: %s\n  in: %s" % (msg, stmt[:500]), rows
                for r in result:
                    vals = [r[i] for i in range(len(r))]
                    rows.append(vals)
                    out.append("\t".join(cell(v) for v in vals))
            return True, "\n".join(out), "", rows


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        req = json.loads(self.rfile.readline())
        if req.get("ping"):
            reply = {"ok": True}
        else:
            try:
                ok, out, err, rows = self.server.engine.run(req["sql"], req.get("database"), req.get("endpoint"))
            except Exception as e:  # noqa: BLE001 - the caller gets the reason
                ok, out, err, rows = False, "", "engine: %r" % e, []
            reply = {"ok": ok, "out": out, "err": err, "rows": rows}
        self.wfile.write((json.dumps(reply, default=str) + "\n").encode())


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve(args):
    if os.path.exists(args.socket):
        os.remove(args.socket)
    engine = Engine(args.warehouse, args.mirror)
    parent = os.getppid()

    def orphaned():
        while True:
            time.sleep(1)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=orphaned, daemon=True).start()
    with Server(args.socket, Handler) as server:
        server.engine = engine
        server.serve_forever()


def call(req):
    path = os.environ.get("LAKE_SQL_SOCKET")
    if not path:
        sys.exit("LAKE_SQL_SOCKET is not set: start the engine with `spark_hive.py serve` (lake-testkit does)")
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall((json.dumps(req) + "\n").encode())
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    return json.loads(data)


def hive(argv):
    """The hive CLI's calling convention: -f FILE, -e SQL, -S (silent)."""
    ap = argparse.ArgumentParser(prog="hive")
    ap.add_argument("-S", action="store_true")
    ap.add_argument("-f")
    ap.add_argument("-e")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if bool(a.f) == bool(a.e):
        sys.exit("hive: give one of -f FILE or -e SQL")
    sql = open(a.f).read() if a.f else a.e
    reply = call({
        "sql": sql,
        "database": os.environ.get("LAKE_SQL_DATABASE"),
        "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
    })
    if a.json:
        print(json.dumps(reply))
    elif reply["out"]:
        print(reply["out"])
    if not reply["ok"]:
        print(reply["err"], file=sys.stderr)
        return 1
    return 0


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("hive", "query"):
        sys.exit(hive(sys.argv[2:]))
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--socket", required=True)
    s.add_argument("--warehouse", required=True)
    s.add_argument("--mirror", required=True)
    args = ap.parse_args()
    serve(args)


if __name__ == "__main__":
    main()
