#!/usr/bin/env bash
# Install the pinned Python tools (cfn-lint, moto server) if they are missing
# or at another version. Needs only Python 3 with pip.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
need=0
cfn-lint --version 2>/dev/null | grep -q "1.51.0" || need=1
python3 -c "import moto, sys; sys.exit(moto.__version__ != '5.2.1')" 2>/dev/null || need=1
command -v moto_server >/dev/null || need=1
if [ "$need" = 1 ]; then
  echo "setup-tools: installing $(grep -v '^#' "$here/tools/requirements.txt" | xargs)" >&2
  python3 -m pip install --quiet --disable-pip-version-check -r "$here/tools/requirements.txt"
fi
command -v cfn-lint >/dev/null && command -v moto_server >/dev/null || {
  echo "setup-tools: cfn-lint or moto_server is not on PATH after install;" >&2
  echo "  add pip's script folder (python3 -m site --user-base)/bin to PATH" >&2
  exit 1
}
