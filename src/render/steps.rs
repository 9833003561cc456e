//! The lake steps script: every EMR step the platform runs for its
//! datasets, in one bash script per environment, published to the
//! artifacts bucket by its content (`key`) and run by the EMR stack (at
//! cluster start) and the compaction state machine:
//!
//! ```text
//! lake-steps.sh DATA_BUCKET ARTIFACTS_BUCKET COMPACT_SHA256 REGION table  all|DATASET
//! lake-steps.sh DATA_BUCKET ARTIFACTS_BUCKET COMPACT_SHA256 REGION compact DATASET [PARTITION]
//! ```
//!
//! `table` creates the environment's database and each dataset's table,
//! adds the columns a grown schema brings, and brings the metastore's
//! partitions in line with the lake's directories (one listing of common
//! prefixes per partition level; new ones added, gone ones dropped, in
//! batched statements). `compact` merges one dataset's files: one
//! partition with `lake-compact` (fetched by its hash) in the step's own
//! process, or all of them as a Spark job (`templates/lake_compact_job.py`,
//! written out by the script) whose executors each run `lake-compact` as
//! one worker of the run.
//!
//! Owns: the script. Must not: know the templates around it (they pass the
//! arguments) or talk to AWS.

use sha2::{Digest, Sha256};

use super::hive;
use crate::spec::model::{EnvSpec, FileFormat};

/// The Spark application a whole dataset's compaction runs as
/// (`spark-submit` on the EMR master; YARN places its executors).
pub const COMPACT_JOB: &str = include_str!("../../templates/lake_compact_job.py");

/// Partitions per `ALTER TABLE` statement when registering.
const BATCH: usize = 100;

/// The script's key in the artifacts bucket: by content, so a changed
/// script is a new object.
pub fn key(spec: &EnvSpec, lease_table: &str) -> String {
    let digest = hex::encode(Sha256::digest(script(spec, lease_table).as_bytes()));
    format!("emr/steps/{}/lake-steps.sh", &digest[..16])
}

/// The shell command that runs the script at `key` on an EMR node, for a
/// template's `!Sub`: fetched to a file of its own (which it removes) and
/// run by bash with the data and artifacts buckets; the other arguments
/// follow. Neither quote character: it is embedded in JSON strings and in
/// Step Functions intrinsics' quoted arguments.
pub fn command(key: &str) -> String {
    format!(
        "f=$(mktemp {SELF_PREFIX}XXXXXX) && aws s3 cp --only-show-errors \
         s3://${{ArtifactsBucketName}}/{key} $f && bash $f ${{DataBucketName}} ${{ArtifactsBucketName}}"
    )
}

/// Where `command` puts the script: a script run from such a file removes
/// it (no copy per step run piles up on the node).
const SELF_PREFIX: &str = "/tmp/lake-steps.";

/// The script itself.
pub fn script(spec: &EnvSpec, lease_table: &str) -> String {
    let db = &spec.storage.database;
    let mut tables = String::new();
    let mut compacts = String::new();
    let mut names = Vec::new();
    for (name, d) in &spec.datasets {
        names.push(name.clone());
        let prefix = super::datasets::lake_prefix(spec, name);
        let keys = d.partition_keys().join(" ");
        if let (Some(ddl), Some(columns)) = (hive::table_ddl(spec, name, d), hive::table_columns(d))
        {
            let storage = hive::storage_table(name, d);
            // The columns the table must have, in order (NDJSON: its view
            // is rewritten whole by the DDL; the storage table has `line`).
            let wanted = match d.format {
                FileFormat::Ndjson => String::new(),
                _ => columns
                    .iter()
                    .map(|(n, ty)| format!("{n} {ty}\n"))
                    .collect(),
            };
            tables.push_str(&format!(
                r#"        {name})
          cat > "$work/ddl.sql" <<'SQL'
{ddl}SQL
          cat > "$work/columns" <<'COLUMNS'
{wanted}COLUMNS
          table {storage} {prefix} {keys}
          ;;
"#
            ));
        }
        if d.compacts() {
            let stream = super::datasets::stream_name(&spec.name, name);
            let mut args = vec![
                format!("--target-size {}", d.compaction_target_mib),
                // Under `_compaction/`: Hive and Spark skip `_` paths, so
                // the manifest's URLs never read as rows.
                "--output-manifest _compaction/manifest.gz".to_string(),
                // Files of ingest windows not yet checkpointed stay: a
                // replay would write them again next to their copy.
                format!("--lease-table {lease_table} --lease-stream {stream}"),
            ];
            if spec.compaction.delete_on_success {
                args.push("--delete-on-success".into());
            }
            compacts.push_str(&format!(
                "  {name}) compact {prefix} {} ;;\n",
                args.join(" ")
            ));
        }
    }
    format!(
        r#"#!/bin/bash
# Created by lakectl: the EMR steps of the {env} lake's datasets
# ({datasets}). Usage:
#   lake-steps.sh DATA_BUCKET ARTIFACTS_BUCKET COMPACT_SHA256 REGION table all|DATASET
#   lake-steps.sh DATA_BUCKET ARTIFACTS_BUCKET COMPACT_SHA256 REGION compact DATASET [PARTITION]
set -euo pipefail
case "$0" in {self_prefix}*) rm -f -- "$0" ;; esac
if [ $# -lt 6 ] || [ $# -gt 7 ]; then
  echo "lake-steps: want 6 or 7 arguments (data bucket, artifacts bucket, sha256, region, action, dataset[, partition]), got $#" >&2
  exit 2
fi
bucket="$1" artifacts="$2" sha="$3" region="$4" action="$5" dataset="$6" partition="${{7:-}}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# table STORAGE_TABLE PREFIX KEY...: the table (ddl.sql), the columns a grown
# schema adds (columns), and the partitions of the lake's directories.
table() {{
  local storage="$1" prefix="$2"
  shift 2
  local keys=("$@")
  sed -i "s|@BUCKET@|$bucket|g" "$work/ddl.sql"
  hive -f "$work/ddl.sql"
  # Columns the schema gained since the table was made, appended in order.
  if [ -s "$work/columns" ]; then
    hive -S -e "DESCRIBE {db}.$storage" | awk -F'\t' '/^#/ || $1 == "" {{ exit }} {{ gsub(/ /, "", $1); print $1 }}' > "$work/have"
    local add=()
    while read -r col ty; do
      # Hive keeps column names in lower case: compare as it does.
      if ! grep -qix -- "$col" "$work/have"; then add+=("\`$col\` $ty"); fi
    done < "$work/columns"
    if [ ${{#add[@]}} -gt 0 ]; then
      local IFS=,
      # CASCADE: partitions registered before keep their own column list
      # in Hive otherwise, and would read the new columns as NULL.
      hive -e "ALTER TABLE {db}.$storage ADD COLUMNS (${{add[*]}}) CASCADE"
      echo "lake table $storage: added columns ${{add[*]}}"
    fi
  fi
  # The lake's partition directories, level by level (dt=…/hr=…); an empty
  # lake lists none (the output is "None"), which is not an error.
  printf '%s\n' "$prefix" > "$work/dirs"
  local key
  for key in "${{keys[@]}}"; do
    : > "$work/next"
    while read -r dir; do
      aws s3api list-objects-v2 --bucket "$bucket" --prefix "$dir/" --delimiter / \
        --query 'CommonPrefixes[].Prefix' --output text | tr '\t' '\n' \
        | sed -n "s|^\($dir/$key=[^/]*\)/$|\1|p" >> "$work/next"
    done < "$work/dirs"
    sort -u "$work/next" > "$work/dirs"
  done
  sed "s|^$prefix/||" "$work/dirs" | sed '/^$/d' | sort -u > "$work/found"
  # Only values Hive takes unquoted in a partition spec; anything else was
  # not written by lake-ingest and is reported, not registered.
  grep -E '^([A-Za-z0-9_]+=[A-Za-z0-9_.:+-]+/?)+$' "$work/found" > "$work/lake" || true
  if ! cmp -s "$work/found" "$work/lake"; then
    echo "lake table $storage: not registered (not a partition): $(comm -23 "$work/found" "$work/lake" | tr '\n' ' ')" >&2
  fi
  hive -S -e "SHOW PARTITIONS {db}.$storage" | grep -E '^[A-Za-z0-9_]+=' | sort -u > "$work/known" || true
  comm -13 "$work/known" "$work/lake" > "$work/new"
  comm -23 "$work/known" "$work/lake" > "$work/gone"
  # dt=X/hr=Y -> PARTITION (`dt`='X', `hr`='Y')
  spec() {{ sed -e "s|^|\`|" -e "s|=|\`='|g" -e "s|/|', \`|g" -e "s|$|'|"; }}
  spec < "$work/new" > "$work/new.spec"
  paste -d'\t' "$work/new.spec" "$work/new" | awk -F'\t' -v bucket="$bucket" -v prefix="$prefix" -v t="{db}.$storage" '
    NR % {BATCH} == 1 {{ if (NR > 1) print ";"; printf "ALTER TABLE %s ADD IF NOT EXISTS", t }}
    {{ printf "\n  PARTITION (%s) LOCATION '"'"'s3://%s/%s/%s/'"'"'", $1, bucket, prefix, $2 }}
    END {{ if (NR > 0) print ";" }}' > "$work/partitions.sql"
  spec < "$work/gone" | awk -v t="{db}.$storage" '
    NR % {BATCH} == 1 {{ if (NR > 1) print ";"; printf "ALTER TABLE %s DROP IF EXISTS", t }}
    {{ printf "%s\n  PARTITION (%s)", (NR % {BATCH} == 1 ? "" : ","), $0 }}
    END {{ if (NR > 0) print ";" }}' >> "$work/partitions.sql"
  if [ -s "$work/partitions.sql" ]; then hive -f "$work/partitions.sql"; fi
  echo "lake table $storage: $(wc -l < "$work/new") partitions added, $(wc -l < "$work/gone") dropped, $(wc -l < "$work/lake") in the lake"
}}

# compact PREFIX ARGS...: lake-compact (by its hash) over one partition of
# the dataset's folder, in this step's process; or over the whole folder as
# a Spark job on the cluster (lake_compact_job.py), its groups spread over
# the core and task nodes' executors.
compact() {{
  local prefix="$1"
  shift
  if ! [[ "$partition" =~ ^[A-Za-z0-9_.:+=/-]*$ ]] || [[ "$partition" == *..* ]]; then
    echo "lake-steps: '$partition' is not a partition directory of the lake" >&2
    exit 2
  fi
  local url="s3://$bucket/$prefix" args=("$@" --region "$region")
  local binary="s3://$artifacts/bin/lake-compact/$sha/lake-compact"
  if [ -n "$partition" ]; then
    # One partition: one process, no Spark application to start; its
    # journals stay with the dataset's (a whole run sees them, and it
    # sees a whole run's).
    local bin="$work/lake-compact"
    aws s3 cp --only-show-errors "$binary" "$bin"
    echo "$sha  $bin" | sha256sum --check --quiet -
    chmod 0755 "$bin"
    "$bin" --src "$url" --dest "$url" --partition "${{partition%/}}" "${{args[@]}}"
    return
  fi
  cat > "$work/lake_compact_job.py" <<'LAKE_COMPACT_JOB'
{job}LAKE_COMPACT_JOB
  # Speculation off: two attempts of one worker at once would race on its
  # journals. A lost task is run again (maxFailures) and rolls them forward.
  # A dataset's folder may be empty (a fresh environment): nothing to do.
  spark-submit --master "${{LAKE_SPARK_MASTER:-yarn}}" --deploy-mode client \
    --name "lake-compact {env} $dataset" \
    --conf spark.speculation=false --conf spark.task.maxFailures=4 --conf spark.log.level=WARN \
    "$work/lake_compact_job.py" --binary-url "$binary" --sha256 "$sha" --parallelism {workers} \
    --summary "$url/_compaction/last-run.json" \
    -- --src "$url" --dest "$url" "${{args[@]}}" --allow-empty-src
}}

case "$action" in
  table)
    hive -e "CREATE DATABASE IF NOT EXISTS {db}"
    if [ "$dataset" = all ]; then set -- {datasets}; else set -- "$dataset"; fi
    for one in "$@"; do
      case "$one" in
{tables}        *) echo "lake-steps: no table for dataset '$one' (datasets: {datasets})" >&2; exit 2 ;;
      esac
    done
    ;;
  compact)
    case "$dataset" in
{compacts}      *) echo "lake-steps: dataset '$dataset' does not compact (compaction: off) or does not exist" >&2; exit 2 ;;
    esac
    ;;
  *)
    echo "lake-steps: action '$action' is neither table nor compact" >&2
    exit 2
    ;;
esac
"#,
        env = spec.name,
        self_prefix = SELF_PREFIX,
        datasets = names.join(" "),
        // Not indented: the heredocs' bodies and ends stay at column 0.
        tables = tables,
        compacts = indent(&compacts, 2),
        job = COMPACT_JOB,
        workers = compaction_workers(spec),
    )
}

/// Workers of a whole-dataset compaction job at most: four per core and
/// task node (each runs four groups at once; they wait on S3, not CPU).
/// With EMR's dynamic allocation, YARN grows the executors to the tasks.
pub fn compaction_workers(spec: &EnvSpec) -> u32 {
    (4 * (spec.emr.core.count + spec.emr.task.count)).max(1)
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("{pad}{l}\n")
            }
        })
        .collect()
}
