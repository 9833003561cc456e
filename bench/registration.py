#!/usr/bin/env python3
"""Partition registration of a lake with many partitions when few are new:
the lake steps script's `table` action as `lakectl render` writes it
(`published/emr/steps/…/lake-steps.sh`), run by bash with the real AWS CLI
against a moto server, `hive` served by Spark SQL (the test tier's engine,
crates/testkit/engine/spark_hive.py), against the script the project
shipped before (list every partition, `ALTER TABLE … ADD IF NOT EXISTS`
each, every run), both over the hourly `dt=…/hr=…` layout.

    python3 bench/registration.py [--partitions 5000]

Needs what the tests need (scripts/setup-tools.sh) and a release build.
Figures are relative: a Derby metastore and a local mirror here, Aurora
and S3 on EMR.
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINE = os.path.join(ROOT, "crates", "testkit", "engine", "spark_hive.py")

# The script before this change (every partition, one statement each).
OLD = r"""#!/bin/bash
set -euo pipefail
bucket="$1"
aws s3 ls --recursive "s3://$bucket/lake/orders/" | awk '{ print $4 }' | sed -n 's|^lake/orders/\(dt=[^/]*/hr=[^/]*\)/.*|\1|p' | sort -u | while read -r dir; do
  dt="${dir%%/*}"; hr="${dir#*/}"
  echo "ALTER TABLE lake_old.orders ADD IF NOT EXISTS PARTITION (\`dt\`='${dt#dt=}', \`hr\`='${hr#hr=}') LOCATION 's3://$bucket/lake/orders/$dir/';"
done > /tmp/lake-partitions.sql
if [ -s /tmp/lake-partitions.sql ]; then hive -f /tmp/lake-partitions.sql; fi
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--partitions", type=int, default=5000)
    args = ap.parse_args()
    for tool in ("aws", "moto_server", "java"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed: scripts/setup-tools.sh installs it")
    subprocess.run(["cargo", "build", "--release", "-q", "--workspace", "--bins"], cwd=ROOT, check=True)
    tmp = tempfile.mkdtemp(prefix="registration-bench-")
    subprocess.run([os.path.join(ROOT, "target/release/lakectl"), "render", "poc", "--out", f"{tmp}/render"],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    import glob
    new_script = open(glob.glob(f"{tmp}/render/published/emr/steps/*/lake-steps.sh")[0]).read()

    port = free_port()
    env = dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    sock = f"{tmp}/engine.sock"
    engine = subprocess.Popen([sys.executable, ENGINE, "serve", "--socket", sock, "--warehouse", f"{tmp}/wh",
                               "--mirror", f"{tmp}/mirror"], env=env, stdout=subprocess.DEVNULL,
                              stderr=open(f"{tmp}/engine.log", "w"))
    try:
        import boto3
        for _ in range(300):
            try:
                s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                                  aws_access_key_id="testing", aws_secret_access_key="testing")
                s3.create_bucket(Bucket="lake")
                break
            except Exception:
                time.sleep(0.1)
        print(f"putting {args.partitions} partitions (one small file each) into moto ...", file=sys.stderr)
        t0 = 1573657200
        values = [time.strftime("dt=%Y-%m-%d/hr=%H", time.gmtime(t0 + 3600 * i)) for i in range(args.partitions + 1)]
        for v in values[:-1]:
            s3.put_object(Bucket="lake", Key=f"lake/orders/{v}/part-0.parquet", Body=b"PAR1")
        bindir = f"{tmp}/bin"
        os.makedirs(bindir)
        with open(f"{bindir}/hive", "w") as f:
            f.write(f"#!/bin/sh\nexec {sys.executable} {ENGINE} hive \"$@\"\n")
        os.chmod(f"{bindir}/hive", 0o755)
        for _ in range(600):
            if os.path.exists(sock):
                break
            time.sleep(0.2)

        def run(script, db, label):
            path = f"{tmp}/{label}.sh"
            open(path, "w").write(script)
            e = dict(env, PATH=f"{bindir}:{env['PATH']}", LAKE_SQL_SOCKET=sock, LAKE_SQL_DATABASE=db)
            start = time.perf_counter()
            argv = ["lake", "artifacts", "-", "us-east-1", "table", "orders"] if label.startswith("new") else ["lake"]
            out = subprocess.run(["bash", path, *argv], env=e, capture_output=True, text=True)
            took = time.perf_counter() - start
            if out.returncode != 0:
                sys.exit(f"{label}: exit {out.returncode}\n{out.stderr[-3000:]}")
            return took, out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""

        # The same table for both; the old script registers into its own database.
        ddl = "CREATE DATABASE IF NOT EXISTS lake;\n" + re.search(r"<<'SQL'\n(.*?)SQL\n", new_script, re.S).group(1).replace("@BUCKET@", "lake")
        rows = []
        for label, script, db in [("new", new_script, "bench_new"), ("old", "cat > /tmp/t.sql <<'SQL'\n" + ddl.replace("lake.", "lake_old.").replace("DATABASE IF NOT EXISTS lake;", "DATABASE IF NOT EXISTS lake_old;") +
                                   "SQL\nhive -f /tmp/t.sql\n" + OLD.split("set -euo pipefail\n", 1)[1], "bench_old")]:
            script = script if label == "new" else "#!/bin/bash\nset -euo pipefail\nbucket=\"$1\"\n" + script
            first, _ = run(script, db, f"{label}-first")
            s3.put_object(Bucket="lake", Key=f"lake/orders/{values[-1]}/part-0.parquet", Body=b"PAR1")
            one_new, said = run(script, db, f"{label}-one-new")
            s3.delete_object(Bucket="lake", Key=f"lake/orders/{values[-1]}/part-0.parquet")
            rows.append((label, first, one_new, said))
        print(f"\n{args.partitions} partitions in the lake; engine: Spark SQL 3.5 (Derby metastore), moto S3\n")
        print("| script | first registration | a run with 1 new partition | what it said |")
        print("| --- | ---: | ---: | --- |")
        for label, first, one_new, said in rows:
            name = "new (diff of listing and SHOW PARTITIONS)" if label == "new" else "old (ALTER every partition)"
            print(f"| {name} | {first:.1f} s | {one_new:.1f} s | {said} |")
        print(f"\nratio (old / new, one new partition): {rows[1][2] / rows[0][2]:.1f}x")
    finally:
        engine.kill()
        moto.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
