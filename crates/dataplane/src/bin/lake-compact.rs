//! `lake-compact` command line: parses arguments (also s3-dist-cp's
//! spellings) and dispatches to `lake_dataplane::compact`.
//!
//! `--output json` prints one report object on stdout (the Spark
//! compaction job's driver and executors read it).
//!
//! Exit codes: 0 every group compacted, 2 some groups failed (their files
//! untouched), 1 a fatal error, 64 a usage error
//! (`lake_contract::cli::USAGE_EXIT`).

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use lake_dataplane::compact::{self, Options};

#[derive(Parser)]
#[command(
    name = "lake-compact",
    version,
    about = "Merge a lake partition's small files into large ones (crash-safe)"
)]
struct Cli {
    /// Source: s3://bucket/prefix, file:///path or a path.
    #[arg(long)]
    src: String,
    /// Destination (may equal --src, with --delete-on-success).
    #[arg(long)]
    dest: String,
    /// Regex on the full source path; its capture groups form the group key and output name.
    #[arg(long = "group-by", alias = "groupBy")]
    group_by: Option<String>,
    /// Target output size in MiB.
    #[arg(long = "target-size", alias = "targetSize", default_value_t = 128)]
    target_size: u64,
    /// Delete sources once their outputs and the manifest are durable.
    #[arg(long = "delete-on-success", alias = "deleteOnSuccess")]
    delete_on_success: bool,
    /// Add the compacted source files to the gzip list DEST/NAME (created if
    /// absent). With --worker-count above 1, each worker keeps its own:
    /// NAME with `-INDEX` before its extension (`manifest-3.gz`).
    #[arg(long = "output-manifest", alias = "outputManifest")]
    output_manifest: Option<String>,
    /// Skip source files listed in this manifest (URL).
    #[arg(long = "previous-manifest", alias = "previousManifest")]
    previous_manifest: Option<String>,
    /// This worker's share of the groups: index in 0..worker-count.
    #[arg(long, default_value_t = 0)]
    worker_index: u32,
    #[arg(long, default_value_t = 1)]
    worker_count: u32,
    /// Only this directory under --src (e.g. dt=2019-11-13/hr=15); journals
    /// and the manifest stay under --dest, where a whole run keeps them.
    #[arg(long)]
    partition: Option<String>,
    /// Print the plan, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Groups processed at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// CSV sources: `none` (every line is a row, as the lake writes them and
    /// as s3-dist-cp concatenates) or `keep-one` (each starts with the same
    /// header; the output keeps one).
    #[arg(long, value_enum, default_value_t = CsvHeaderArg::None)]
    csv_header: CsvHeaderArg,
    /// An S3 --src with no objects is a no-op instead of an error.
    #[arg(long)]
    allow_empty_src: bool,
    /// The ingest lease table (DynamoDB): leave files of windows
    /// `lake-ingest run` has not checkpointed yet.
    #[arg(long)]
    lease_table: Option<String>,
    /// With --lease-table: the Kinesis stream whose ingest wrote --src (the
    /// table holds the leases of every dataset's stream).
    #[arg(long, requires = "lease_table")]
    lease_stream: Option<String>,
    /// `text` (a summary on stderr, the plan on stdout) or `json` (one
    /// report object on stdout, for a driver fanning work out: the Spark
    /// compaction job).
    #[arg(long, value_enum, default_value_t = OutputArg::Text)]
    output: OutputArg,
    /// AWS API endpoint (also AWS_ENDPOINT_URL), e.g. a local moto server.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint_url: Option<String>,
    #[arg(long)]
    region: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutputArg {
    Text,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CsvHeaderArg {
    None,
    KeepOne,
}

fn main() -> ExitCode {
    let cli: Cli = lake_contract::cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lake-compact: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    if cli.target_size > 4096 {
        anyhow::bail!(
            "--target-size {} MiB: outputs are published with one copy, at most 4096 MiB",
            cli.target_size
        );
    }
    let group_by = cli
        .group_by
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .context("--group-by is not a valid regular expression")?;
    let opts = Options {
        src: cli.src,
        dest: cli.dest,
        group_by,
        target_size: cli.target_size * 1024 * 1024,
        delete_on_success: cli.delete_on_success,
        output_manifest: cli.output_manifest,
        previous_manifest: cli.previous_manifest,
        worker_index: cli.worker_index,
        worker_count: cli.worker_count,
        partition: cli.partition,
        dry_run: cli.dry_run,
        concurrency: cli.concurrency,
        csv_header: match cli.csv_header {
            CsvHeaderArg::None => compact::merge::CsvHeader::None,
            CsvHeaderArg::KeepOne => compact::merge::CsvHeader::KeepOne,
        },
        allow_empty_src: cli.allow_empty_src,
        lease_table: cli.lease_table,
        lease_stream: cli.lease_stream,
        endpoint_url: cli.endpoint_url,
        region: cli.region,
    };
    let report = compact::run(&opts).await?;
    let exit = if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    };
    if cli.output == OutputArg::Json {
        println!("{}", json_report(&report, opts.dry_run));
        return Ok(exit);
    }
    if opts.dry_run {
        for g in &report.plan {
            let bytes: u64 = g.sources.iter().map(|s| s.size).sum();
            println!(
                "group {} ({:?}): {} files, {bytes} bytes",
                g.id,
                g.format,
                g.sources.len()
            );
            for o in &g.outputs {
                println!("  -> {} <- {} files", o.key, o.sources.len());
            }
        }
        println!(
            "dry run: {} groups ({} from interrupted runs), nothing changed",
            report.groups, report.recovered
        );
        return Ok(ExitCode::SUCCESS);
    }
    if report.empty_source {
        eprintln!(
            "lake-compact: --src {} holds no files: nothing to do",
            opts.src
        );
    }
    for (id, error) in &report.failed {
        eprintln!("lake-compact: group {id} failed, its files are untouched: {error}");
    }
    let s = &report.skipped;
    eprintln!(
        "lake-compact: {} groups ({} resumed from interrupted runs), {} files -> {} outputs, {} rows; {} failed; skipped: {} single-file groups, {} unmatched, {} unknown format, {} for other workers, {} not yet checkpointed by ingest",
        report.groups,
        report.recovered,
        report.files_compacted,
        report.outputs.len(),
        report.rows,
        report.failed.len(),
        s.single_file_groups,
        s.unmatched,
        s.unknown_format,
        s.other_workers,
        s.uncommitted
    );
    Ok(exit)
}

/// The report as one JSON object (`--output json`); with `dry_run`, the
/// planned groups instead of what was done.
fn json_report(report: &compact::Report, dry_run: bool) -> serde_json::Value {
    let s = &report.skipped;
    let plan: Vec<serde_json::Value> = report
        .plan
        .iter()
        .map(|g| {
            serde_json::json!({
                "id": g.id,
                "shard": g.shard,
                "format": g.format,
                "files": g.sources.len(),
                "bytes": g.sources.iter().map(|s| s.size).sum::<u64>(),
                "outputs": g.outputs.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "dry_run": dry_run,
        "groups": report.groups,
        "recovered": report.recovered,
        "files_compacted": report.files_compacted,
        "outputs": report.outputs.len(),
        "rows": report.rows,
        "bytes_in": report.bytes_in,
        "bytes_out": report.bytes_out,
        "failed": report.failed.iter().map(|(id, e)| serde_json::json!({"group": id, "error": e})).collect::<Vec<_>>(),
        "skipped": {
            "single_file_groups": s.single_file_groups,
            "unmatched": s.unmatched,
            "unknown_format": s.unknown_format,
            "other_workers": s.other_workers,
            "uncommitted": s.uncommitted,
        },
        "empty_source": report.empty_source,
        "plan": if dry_run { plan } else { Vec::new() },
    })
}
