//! The compaction run's EMR step: a bash script that fetches `lake-compact`
//! by its content hash and runs it over one partition or the whole lake.
//!
//! Owns: the script and its arguments (from `compaction.*`, the lake prefix
//! and the lease table). Must not: know the state machine around it
//! (`templates/compaction.yaml.j2` passes the buckets, the hash and the
//! partition as positional arguments) or talk to AWS.

use crate::spec::model::EnvSpec;

/// The step script. Arguments: `$1` data bucket, `$2` artifacts bucket,
/// `$3` sha256 of `lake-compact`, `$4` region, `$5` partition directory
/// (absent or empty: the whole lake).
pub fn script(spec: &EnvSpec, lease_table: &str) -> String {
    let c = &spec.compaction;
    let prefix = spec.storage.lake_prefix.trim_matches('/');
    let mut args = vec![
        format!("--target-size {}", c.target_size_mib),
        // Under `_compaction/`: Hive and Spark skip `_` paths, so the
        // manifest's URLs never read as rows.
        "--output-manifest _compaction/manifest.gz".to_string(),
        // Files of ingest windows not yet checkpointed stay: a replay would
        // write them again next to their compacted copy.
        format!("--lease-table {lease_table}"),
    ];
    if c.delete_on_success {
        args.push("--delete-on-success".into());
    }
    format!(
        r#"#!/bin/bash
# Created by lakectl: one compaction run of the lake, as an EMR step.
# $1 data bucket, $2 artifacts bucket, $3 sha256 of lake-compact, $4 region,
# $5 partition directory (absent or empty: the whole lake).
set -euo pipefail
if [ $# -lt 4 ] || [ $# -gt 5 ]; then
  echo "compaction: want 4 or 5 arguments (data bucket, artifacts bucket, sha256, region[, partition]), got $#" >&2
  exit 2
fi
data="$1" artifacts="$2" sha="$3" region="$4" partition="${{5:-}}"
if ! [[ "$partition" =~ ^[A-Za-z0-9_.:+=-]*$ ]]; then
  echo "compaction: '$partition' is not a partition directory of the lake" >&2
  exit 2
fi
bin="$(mktemp -d)/lake-compact"
aws s3 cp --only-show-errors "s3://$artifacts/bin/lake-compact/$sha/lake-compact" "$bin"
echo "$sha  $bin" | sha256sum --check --quiet -
chmod 0755 "$bin"
url="s3://$data/{prefix}"
args=({args} --region "$region")
if [ -n "$partition" ]; then
  url="$url/$partition"
else
  # The whole lake may be empty (a fresh environment): nothing to do.
  args+=(--allow-empty-src)
fi
exec "$bin" --src "$url" --dest "$url" "${{args[@]}}"
"#,
        args = args.join(" "),
    )
}
