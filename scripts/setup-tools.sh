#!/usr/bin/env bash
# Install the pinned tools the tests and the demo use, if missing or at
# another version. Needs Python 3 with pip; Debian packages through apt-get.
#
#   scripts/setup-tools.sh          everything the tests need (checkov in .tools/)
#   scripts/setup-tools.sh demo     only what scripts/demo.sh needs
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-all}

# --no-compile: pip byte-compiles every module it installs (botocore,
# pyspark, checkov's dependencies: CPU a CI build would wait on); Python
# compiles and caches the ones a tool imports on first use instead.
pip_install() {  # requirements file
  echo "setup-tools: installing $(grep -v '^#' "$1" | xargs)" >&2
  python3 -m pip install --quiet --disable-pip-version-check --no-compile -r "$1"
}

need=0
cfn-lint --version 2>/dev/null | grep -q "1.51.0" || need=1
python3 -c "import moto, sys; sys.exit(moto.__version__ != '5.2.1')" 2>/dev/null || need=1
python3 -c "import configobj" 2>/dev/null || need=1
python3 -c "import duckdb, sys; sys.exit(duckdb.__version__ != '2.0.1')" 2>/dev/null || need=1
command -v moto_server >/dev/null || need=1
aws --version 2>&1 | grep -q "aws-cli/1.45.11" || need=1
if [ "$need" = 1 ]; then pip_install "$here/tools/requirements.txt"; fi
for tool in cfn-lint moto_server aws; do
  command -v "$tool" >/dev/null || {
    echo "setup-tools: $tool is not on PATH after install;" >&2
    echo "  add pip's script folder (python3 -m site --user-base)/bin to PATH" >&2
    exit 1
  }
done
[ "$what" = demo ] && exit 0

# checkov in a virtual environment of its own (its pins clash with moto's).
venv="$here/.tools/checkov"
if ! "$venv/bin/checkov" --version 2>/dev/null | grep -qx "3.3.30"; then
  echo "setup-tools: installing checkov 3.3.30 into $venv" >&2
  python3 -m venv "$venv" || {
    echo "setup-tools: python3 -m venv failed; on Debian: apt-get install -y python3-venv" >&2
    exit 1
  }
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile -r "$here/tools/requirements-checkov.txt"
fi

# Debian packages: Java for Spark; shellcheck and systemd's own verifier
# for the scripts and units the stacks start on nodes.
debs=()
command -v java >/dev/null || debs+=(openjdk-17-jre-headless)
command -v shellcheck >/dev/null || debs+=(shellcheck)
command -v systemd-analyze >/dev/null || debs+=(systemd)
command -v unshare >/dev/null || debs+=(util-linux)
# A node's user data booted under systemd as PID 1 (lake_testkit::boot):
# nspawn runs the root mmdebstrap builds below.
command -v systemd-nspawn >/dev/null || debs+=(systemd-container)
command -v mmdebstrap >/dev/null || debs+=(mmdebstrap)
# Hue's metastore TLS (tests/node.rs): a real MariaDB, and the client Hue
# pins (mysqlclient 1.4.6 is Debian's python3-mysqldb).
[ -x /usr/sbin/mariadbd ] || debs+=(mariadb-server-core)
/usr/bin/python3 -c "import MySQLdb" 2>/dev/null || debs+=(python3-mysqldb)
if [ ${#debs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup-tools: need ${debs[*]}: run as root, or: sudo apt-get install -y ${debs[*]}" >&2
    exit 1
  fi
  echo "setup-tools: installing ${debs[*]} (apt)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${debs[@]}" >/dev/null
fi
# The booted node's root filesystem (tests/node.rs): Debian 12 with systemd,
# cloud-init (NoCloud: it runs user data as on EC2), curl, socat and the
# pinned AWS CLI; built once per machine, rebuilt when this line changes.
node_root="$here/.tools/node-root"
node_stamp="bookworm minbase systemd cloud-init curl socat awscli==1.45.11 v1"
if [ "$(cat "$node_root.stamp" 2>/dev/null)" != "$node_stamp" ]; then
  echo "setup-tools: building the test node root in $node_root (mmdebstrap, about 90 s)" >&2
  rm -rf "$node_root" "$node_root.new" "$node_root.stamp"
  mmdebstrap --quiet --variant=minbase \
    --include=systemd,systemd-sysv,dbus,cloud-init,curl,ca-certificates,python3,python3-venv,logrotate,socat,iproute2,procps,passwd \
    bookworm "$node_root.new"
  wheels="$node_root.new/opt/wheels"
  python3 -m pip download --quiet --disable-pip-version-check --dest "$wheels" awscli==1.45.11
  chroot "$node_root.new" /bin/sh -c '
    set -e
    python3 -m venv /opt/awscli
    /opt/awscli/bin/pip install --quiet --no-index --find-links /opt/wheels awscli==1.45.11
    ln -sf /opt/awscli/bin/aws /usr/local/bin/aws
    rm -rf /opt/wheels'
  echo "datasource_list: [ NoCloud, None ]" > "$node_root.new/etc/cloud/cloud.cfg.d/99_lake_test.cfg"
  mv "$node_root.new" "$node_root"
  echo "$node_stamp" > "$node_root.stamp"
fi
python3 -c "import pyspark, pyarrow, sys; sys.exit(pyspark.__version__ != '3.5.2' or pyarrow.__version__ != '26.0.1')" 2>/dev/null \
  || pip_install "$here/tools/requirements-engine.txt"
