//! `lake-ingest` command line: parses arguments and dispatches to the
//! `lake_dataplane` library. Must not: hold flattening or generation logic.
//!
//! An argument `@FILE` is replaced by FILE's lines, one argument per line
//! (as rustc's argfiles): the fleet's systemd unit runs
//! `lake-ingest @/opt/lake/run.args`, so no argument ever passes through
//! systemd's specifier (`%`) and quoting rules.
//!
//! Exit codes of `flatten` and `backfill`: 0 every record written (or
//! blank), 2 some went to the dead-letter output, 1 a fatal error; every
//! command: 64 a usage error (`lake_contract::cli::USAGE_EXIT`).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use lake_contract::schema::columns_from_avro;
use lake_dataplane::datagen::{OrderSpec, Orders, Quickstart, DEFAULT_START_MS};
use lake_dataplane::flatten::stream::{Format, Stream};
use lake_dataplane::flatten::{CsvLayout, FlattenConfig, DEFAULT_MAX_DEPTH};
use lake_dataplane::ingest::backfill::{self, BackfillOptions};
use lake_dataplane::ingest::config::{
    self, DatasetEntry, FormatName, PartitionByName, UnknownFieldsName,
};
use lake_dataplane::ingest::consumer::{self, RunOptions};
use lake_dataplane::ingest::kpl::{self, UserRecord};
use lake_dataplane::ingest::writer::RollPolicy;
use lake_dataplane::ingest::PartitionBy;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// mimalloc keeps freed column buffers for the next file instead of
/// returning them to the OS (Cargo.toml says what that saves).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Parser)]
#[command(
    name = "lake-ingest",
    version,
    about = "Kinesis consumer and JSON flattener of the lake"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutFormat {
    Ndjson,
    Csv,
    /// Lake files only (`run`, `backfill`): typed columns from --schema.
    Parquet,
}

/// Where and how files are written: shared by `run` and `backfill`.
#[derive(clap::Args)]
struct LakeArgs {
    /// The lake: s3://bucket/prefix, file:///path or a path (with --config:
    /// the root each dataset's folder is under).
    #[arg(long)]
    sink: String,
    #[arg(long, default_value_t = 128)]
    roll_mib: u64,
    #[arg(long, default_value_t = 10_000_000)]
    roll_records: u64,
    /// Publish files at least this often (`run`: and checkpoint).
    #[arg(long, default_value_t = 300)]
    roll_seconds: u64,
    /// Files open at once; the least recently used is closed first.
    #[arg(long, default_value_t = lake_contract::ingest::DEFAULT_MAX_OPEN_FILES as usize)]
    max_open_files: usize,
    #[arg(long, default_value = "_")]
    separator: String,
    /// Where files are written before they are published (default: $TMPDIR).
    /// On a node: a disk, not tmpfs; `run` refuses to start without room
    /// for one shard's window (see `--roll-mib`, `--max-open-files`,
    /// `--roll-seconds`).
    #[arg(long)]
    scratch_dir: Option<PathBuf>,
    /// AWS API endpoint (also AWS_ENDPOINT_URL), e.g. a local moto server.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint_url: Option<String>,
    #[arg(long)]
    region: Option<String>,
}

impl LakeArgs {
    fn roll(&self) -> RollPolicy {
        RollPolicy {
            max_bytes: self.roll_mib << 20,
            max_records: self.roll_records,
            max_age: std::time::Duration::from_secs(self.roll_seconds),
            max_open: self.max_open_files.max(1),
        }
    }

    fn flatten(&self, unknown: UnknownFieldsName) -> Result<FlattenConfig> {
        let config = FlattenConfig {
            separator: self.separator.clone().into_bytes(),
            drop_unknown_fields: unknown == UnknownFieldsName::Drop,
            ..FlattenConfig::default()
        };
        if let Err(e) = config.check() {
            bail!("--separator {:?}: {e}", self.separator);
        }
        Ok(config)
    }
}

/// How one dataset's records become rows (without --config: the one
/// stream's or archive's dataset).
#[derive(clap::Args)]
struct RecordArgs {
    /// Lake file format [default: parquet, as a spec's dataset].
    #[arg(long, value_enum)]
    format: Option<OutFormat>,
    /// Avro record schema of the CSV or Parquet columns (required with
    /// those formats: every file of the table gets the same columns, whichever
    /// worker or replay writes it).
    #[arg(long)]
    schema: Option<PathBuf>,
    /// Partition by the record's own time (--time-field) or its arrival
    /// [default: record-time].
    #[arg(long, value_enum)]
    partition_by: Option<PartitionByArg>,
    /// Flattened field holding the record's own time (epoch ms/s or
    /// ISO-8601, UTC) [default: ordertime].
    #[arg(long)]
    time_field: Option<String>,
    /// Partition directories: Hive-style levels, strftime-like (%Y %m %d %H
    /// %j), UTC; their keys must not be columns [default: dt=%Y-%m-%d/hr=%H].
    #[arg(long)]
    partition_format: Option<String>,
    /// A field that is no column of --schema: `drop` keeps the row without
    /// it (counted), `dead-letter` refuses the record [default: drop].
    #[arg(long, value_enum)]
    unknown_fields: Option<UnknownFieldsArg>,
}

impl RecordArgs {
    /// The flags given, for an error when --config says it all.
    fn given(&self) -> Vec<&'static str> {
        [
            (self.format.is_some(), "--format"),
            (self.schema.is_some(), "--schema"),
            (self.partition_by.is_some(), "--partition-by"),
            (self.time_field.is_some(), "--time-field"),
            (self.partition_format.is_some(), "--partition-format"),
            (self.unknown_fields.is_some(), "--unknown-fields"),
        ]
        .into_iter()
        .filter_map(|(given, flag)| given.then_some(flag))
        .collect()
    }

    /// The dataset these flags describe, as a datasets file would.
    fn entry(&self, stream: &str) -> Result<DatasetEntry> {
        let schema = match &self.schema {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading --schema {}", path.display()))?;
                Some(serde_json::from_str(&text).map_err(|e| {
                    anyhow::anyhow!(
                        "--schema {}:{}:{}: not a JSON (Avro) schema: {e}",
                        path.display(),
                        e.line(),
                        e.column()
                    )
                })?)
            }
            None => None,
        };
        let layout = self
            .partition_format
            .clone()
            .unwrap_or_else(|| "dt=%Y-%m-%d/hr=%H".to_string());
        lake_contract::layout::partition_keys(&layout)
            .map_err(|e| anyhow::anyhow!("--partition-format: {e}"))?;
        let entry = DatasetEntry {
            name: stream.to_string(),
            stream: stream.to_string(),
            prefix: String::new(),
            format: match self.format.unwrap_or(OutFormat::Parquet) {
                OutFormat::Ndjson => FormatName::Ndjson,
                OutFormat::Csv => FormatName::Csv,
                OutFormat::Parquet => FormatName::Parquet,
            },
            schema,
            partition_by: match self.partition_by.unwrap_or(PartitionByArg::RecordTime) {
                PartitionByArg::RecordTime => PartitionByName::RecordTime,
                PartitionByArg::ArrivalTime => PartitionByName::ArrivalTime,
            },
            time_field: Some(
                self.time_field
                    .clone()
                    .unwrap_or_else(|| "ordertime".to_string()),
            ),
            layout,
            unknown_fields: match self.unknown_fields.unwrap_or(UnknownFieldsArg::Drop) {
                UnknownFieldsArg::Drop => UnknownFieldsName::Drop,
                UnknownFieldsArg::DeadLetter => UnknownFieldsName::DeadLetter,
            },
            legacy_leases: false,
        };
        if let Some(schema) = &entry.schema {
            let keys = lake_contract::layout::partition_keys(&entry.layout)
                .map_err(|e| anyhow::anyhow!("--partition-format: {e}"))?;
            let columns = lake_contract::schema::typed_columns(schema, "_")
                .map_err(|e| anyhow::anyhow!("--schema: {e}"))?;
            if let Some(column) =
                lake_contract::schema::column_shadowed_by_partition(&columns, &keys)
            {
                bail!(
                    "--partition-format {}: its key `{column}` is also a column of --schema: readers that discover partitions (Spark, DuckDB, pyarrow) would read the directory's value for it; pick another key",
                    entry.layout
                );
            }
            // The check `lakectl validate` makes of a dataset's time_field.
            if entry.partition_by == PartitionByName::RecordTime {
                if let Some(field) = &entry.time_field {
                    if let Some(problem) =
                        lake_contract::schema::time_field_problem(&columns, field)
                    {
                        bail!("--time-field {problem}; name the field holding each record's own time, or use --partition-by arrival-time");
                    }
                }
            }
        }
        Ok(entry)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum QuickstartArg {
    Orders,
    Pageviews,
}

impl QuickstartArg {
    fn quickstart(self) -> Quickstart {
        match self {
            QuickstartArg::Orders => Quickstart::Orders,
            QuickstartArg::Pageviews => Quickstart::Pageviews,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum UnknownFieldsArg {
    Drop,
    DeadLetter,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PartitionByArg {
    #[value(alias = "order-time")]
    RecordTime,
    ArrivalTime,
}

#[derive(Subcommand)]
enum Command {
    /// Flatten NDJSON (files, or stdin when none) to flat NDJSON or CSV on stdout.
    Flatten {
        /// Joins nested keys: {"address":{"city":…}} -> "address_city".
        #[arg(long, default_value = "_")]
        separator: String,
        #[arg(long, value_enum, default_value_t = OutFormat::Ndjson)]
        format: OutFormat,
        /// Avro record schema giving the CSV columns (default: the first record's keys).
        #[arg(long)]
        schema: Option<PathBuf>,
        /// Where rejected lines go, as NDJSON (default: stderr).
        #[arg(long)]
        dead_letter: Option<PathBuf>,
        /// Deepest nesting of objects and arrays accepted.
        #[arg(long, default_value_t = DEFAULT_MAX_DEPTH)]
        max_depth: usize,
        /// Keep JsonConverter envelopes ({"schema":…,"payload":…}) instead of unwrapping them.
        #[arg(long)]
        keep_envelopes: bool,
        files: Vec<PathBuf>,
    },
    /// Consume Kinesis streams into the lake, sharing their shards with other
    /// workers through leases; SIGTERM/SIGINT publish, checkpoint and release.
    Run {
        /// Every dataset's stream, folder (under --sink), schema, partitioning
        /// and format, as `lakectl` writes them (/opt/lake/datasets.json on
        /// the fleet). Or one stream with --stream and the flags below.
        #[arg(long, conflicts_with = "stream")]
        config: Option<PathBuf>,
        #[arg(long, required_unless_present = "config")]
        stream: Option<String>,
        /// DynamoDB table of shard leases, shared by every stream (default
        /// with --stream: <stream>-leases).
        #[arg(long, required_unless_present = "stream")]
        lease_table: Option<String>,
        /// Create the lease table if missing (local use; in AWS the ingest stack makes it).
        #[arg(long)]
        create_lease_table: bool,
        /// This worker's name in the leases (default: host name and process id).
        #[arg(long)]
        worker_id: Option<String>,
        /// Seconds after which a silent worker's leases are taken over.
        #[arg(long, default_value_t = 30)]
        failover_seconds: u64,
        /// Stop after this many seconds without new records on any owned shard.
        #[arg(long)]
        exit_when_idle: Option<u64>,
        /// Check the options (schema, formats, sink) and print them as JSON;
        /// touch nothing. The fleet's user data runs it before starting the service.
        #[arg(long)]
        check: bool,
        #[command(flatten)]
        lake: LakeArgs,
        #[command(flatten)]
        record: RecordArgs,
    },
    /// Replay raw-archive objects (newline-delimited or back-to-back JSON,
    /// optionally gzip) into the lake, partitioned like `run` does.
    Backfill {
        /// Where the raw objects are: s3://bucket/prefix, file:///path or a path.
        #[arg(long)]
        from: String,
        #[command(flatten)]
        lake: LakeArgs,
        #[command(flatten)]
        record: RecordArgs,
    },
    /// Write deterministic records shaped like a kafka-connect-datagen
    /// quickstart (`orders`, `pageviews`) as NDJSON.
    Datagen {
        /// The quickstart whose records to generate.
        #[arg(long, value_enum, default_value_t = QuickstartArg::Orders)]
        dataset: QuickstartArg,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Wrap each order in a Kafka Connect JsonConverter envelope.
        #[arg(long)]
        envelope: bool,
        /// Time of the first record (ordertime, viewtime), epoch milliseconds.
        #[arg(long, default_value_t = DEFAULT_START_MS)]
        start_ms: i64,
        /// Each order is up to this many milliseconds after the previous one.
        #[arg(long, default_value_t = 1000)]
        max_step_ms: u64,
        /// Output file (default: stdout).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Put the orders into a Kinesis stream instead: kinesis://STREAM.
        #[arg(long)]
        to: Option<String>,
        /// With --to: KPL-aggregate this many orders per Kinesis record (1 = none).
        #[arg(long, default_value_t = 1)]
        aggregate: usize,
        #[arg(long, env = "AWS_ENDPOINT_URL")]
        endpoint_url: Option<String>,
        #[arg(long)]
        region: Option<String>,
    },
}

/// `; N unknown fields dropped (a, b)` when some were.
fn unknown_note(count: u64, names: &[String]) -> String {
    if count == 0 {
        String::new()
    } else {
        format!("; {count} unknown fields dropped ({})", names.join(", "))
    }
}

/// Put orders into a stream, `aggregate` per Kinesis record (KPL format when > 1),
/// 500 records per PutRecords call; returns the Kinesis records put.
async fn put_orders(
    stream: &str,
    lines: &[Vec<u8>],
    aggregate: usize,
    endpoint: Option<&str>,
    region: Option<&str>,
) -> Result<usize> {
    use aws_sdk_kinesis::primitives::Blob;
    use aws_sdk_kinesis::types::PutRecordsRequestEntry;
    let client =
        aws_sdk_kinesis::Client::new(&lake_dataplane::store::aws_config(endpoint, region).await);
    let mut entries = Vec::new();
    for (i, chunk) in lines.chunks(aggregate).enumerate() {
        let key = format!("orders-{i}");
        let data = if aggregate > 1 {
            let users: Vec<UserRecord<'_>> = chunk
                .iter()
                .map(|l| UserRecord {
                    partition_key: &key,
                    data: l,
                })
                .collect();
            kpl::aggregate(&users)
        } else {
            chunk[0].clone()
        };
        entries.push(
            PutRecordsRequestEntry::builder()
                .partition_key(&key)
                .data(Blob::new(data))
                .build()?,
        );
    }
    let total = entries.len();
    for batch in entries.chunks(500) {
        let resp = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(batch.to_vec()))
            .send()
            .await
            .with_context(|| format!("putting records into {stream}"))?;
        if resp.failed_record_count().unwrap_or(0) > 0 {
            bail!(
                "{} records of a batch were refused by {stream}",
                resp.failed_record_count().unwrap_or(0)
            );
        }
    }
    Ok(total)
}

/// The command line with every `@FILE` replaced by FILE's non-empty lines.
fn expand_argfiles(
    args: impl Iterator<Item = std::ffi::OsString>,
) -> Result<Vec<std::ffi::OsString>> {
    let mut out = Vec::new();
    for (i, arg) in args.enumerate() {
        match arg.to_str().and_then(|a| a.strip_prefix('@')) {
            Some(path) if i > 0 => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the argument file {path}"))?;
                out.extend(
                    text.lines()
                        .filter(|l| !l.is_empty())
                        .map(std::ffi::OsString::from),
                );
            }
            _ => out.push(arg),
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    let args = match expand_argfiles(std::env::args_os()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("lake-ingest: error: {e:#}");
            return ExitCode::from(1);
        }
    };
    match run(lake_contract::cli::parse_from(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lake-ingest: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Flatten {
            separator,
            format,
            schema,
            dead_letter,
            max_depth,
            keep_envelopes,
            files,
        } => {
            let config = FlattenConfig {
                separator: separator.clone().into_bytes(),
                max_depth,
                unwrap_envelopes: !keep_envelopes,
                // A key that is no column of --schema is the record's error here.
                drop_unknown_fields: false,
            };
            if let Err(e) = config.check() {
                bail!("--separator {separator:?}: {e}");
            }
            let format = match (format, schema) {
                (OutFormat::Parquet, _) => bail!(
                    "--format parquet writes lake files: use `lake-ingest backfill` or `lake-ingest run`"
                ),
                (OutFormat::Ndjson, Some(_)) => bail!("--schema applies to --format csv only"),
                (OutFormat::Ndjson, None) => Format::Ndjson,
                (OutFormat::Csv, None) => Format::Csv(None),
                (OutFormat::Csv, Some(path)) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    let columns = columns_from_avro(&text, &separator)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    Format::Csv(Some(
                        CsvLayout::new(columns)
                            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
                    ))
                }
            };
            let stdout = io::stdout();
            let mut out = stdout.lock();
            let mut dl: Box<dyn Write> = match &dead_letter {
                Some(path) => Box::new(BufWriter::new(
                    File::create(path).with_context(|| format!("creating {}", path.display()))?,
                )),
                None => Box::new(io::stderr()),
            };
            let mut stream = Stream::new(config, format, &mut out, &mut *dl);
            if files.is_empty() {
                stream
                    .process("-", &mut io::stdin().lock())
                    .context("reading stdin")?;
            }
            for path in &files {
                let mut file =
                    File::open(path).with_context(|| format!("opening {}", path.display()))?;
                stream
                    .process(&path.display().to_string(), &mut file)
                    .with_context(|| format!("reading {}", path.display()))?;
            }
            let summary = stream.finish().context("writing output")?;
            eprintln!("lake-ingest flatten: {summary}");
            Ok(if summary.dead_lettered > 0 {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Backfill { from, lake, record } => {
            let entry = record.entry("backfill")?;
            let opts = BackfillOptions {
                from,
                sink: lake.sink.clone(),
                format: entry
                    .lake_format(&lake.separator)
                    .map_err(|e| anyhow::anyhow!("--schema: {e}"))?,
                partition_by: entry.partition_by(),
                partition_format: entry.layout.clone(),
                roll: lake.roll(),
                flatten: lake.flatten(entry.unknown_fields)?,
                endpoint_url: lake.endpoint_url.clone(),
                region: lake.region.clone(),
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let report = runtime.block_on(backfill::run(&opts))?;
            let c = report.counts;
            eprintln!(
                "lake-ingest backfill: {} objects, {} records: {} written to {} files, {} dead-lettered (in _errors/) ({} bytes){}",
                report.objects,
                c.records,
                c.written,
                report.files.len(),
                c.dead_lettered,
                c.bytes_in,
                unknown_note(c.unknown_fields, &c.unknown_field_names),
            );
            Ok(if c.dead_lettered > 0 {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Run {
            config,
            stream,
            lease_table,
            create_lease_table,
            worker_id,
            failover_seconds,
            exit_when_idle,
            check,
            lake,
            record,
        } => {
            let (entries, sink_root) = match (&config, &stream) {
                (Some(path), _) => {
                    let given = record.given();
                    if !given.is_empty() {
                        bail!(
                            "{} given with --config: each dataset's format, schema and partitioning are in {}; leave them out",
                            given.join(", "),
                            path.display()
                        );
                    }
                    (config::read(path)?, true)
                }
                (None, Some(stream)) => (vec![record.entry(stream)?], false),
                (None, None) => bail!("give --config FILE or --stream STREAM"),
            };
            let lease_table = match (lease_table, &stream) {
                (Some(t), _) => t,
                (None, Some(s)) => format!("{s}-leases"),
                (None, None) => bail!("--config needs --lease-table (one table for every stream)"),
            };
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            let worker_id =
                worker_id.unwrap_or_else(|| format!("{}-{}", host.trim(), std::process::id()));
            let scratch_dir = lake.scratch_dir.clone().unwrap_or_else(std::env::temp_dir);
            let mut all = Vec::new();
            for entry in &entries {
                let sink = if sink_root {
                    format!(
                        "{}/{}",
                        lake.sink.trim_end_matches('/'),
                        entry.prefix.trim_matches('/')
                    )
                } else {
                    lake.sink.clone()
                };
                all.push(RunOptions {
                    lease_table: lease_table.clone(),
                    stream: entry.stream.clone(),
                    sink,
                    format: entry
                        .lake_format(&lake.separator)
                        .map_err(|e| anyhow::anyhow!("dataset {}: schema: {e}", entry.name))?,
                    partition_by: entry.partition_by(),
                    partition_format: entry.layout.clone(),
                    roll: lake.roll(),
                    flatten: lake.flatten(entry.unknown_fields)?,
                    create_lease_table,
                    import_legacy_leases: entry.legacy_leases,
                    worker_id: worker_id.clone(),
                    failover: std::time::Duration::from_secs(failover_seconds.max(1)),
                    window: std::time::Duration::from_secs(lake.roll_seconds.max(1)),
                    exit_when_idle: exit_when_idle.map(std::time::Duration::from_secs),
                    progress_every: std::time::Duration::from_secs(10),
                    scratch_dir: scratch_dir.clone(),
                    endpoint_url: lake.endpoint_url.clone(),
                    region: lake.region.clone(),
                });
            }
            let scratch_need = all
                .iter()
                .map(RunOptions::scratch_per_shard)
                .max()
                .unwrap_or(0);
            // Room for one shard's window, or no start at all (a full disk
            // half-way through a window stalls the shard; tmpfs eats memory).
            let free = lake_dataplane::store::free_bytes(&scratch_dir)
                .with_context(|| format!("--scratch-dir {}", scratch_dir.display()))?;
            if free < scratch_need {
                bail!(
                    "--scratch-dir {}: {} MiB free, but one shard's window may hold {} MiB \
                     (the smaller of --max-open-files x --roll-mib and 2 MiB/s x --roll-seconds, \
                     with room for encoding and dead letters): give the directory more space or \
                     lower those options",
                    scratch_dir.display(),
                    free >> 20,
                    scratch_need >> 20
                );
            }
            if check {
                let mut datasets = Vec::new();
                for (opts, entry) in all.iter().zip(&entries) {
                    lake_dataplane::store::Location::parse(&opts.sink).context("--sink")?;
                    datasets.push(serde_json::json!({
                        "name": entry.name,
                        "stream": opts.stream,
                        "sink": opts.sink,
                        "format": opts.format.extension(),
                        "partition_by": match &opts.partition_by {
                            PartitionBy::RecordTime { field } => format!("record-time ({field})"),
                            PartitionBy::ArrivalTime => "arrival-time".to_string(),
                        },
                        "partition_format": opts.partition_format,
                        "partition_of_epoch":
                            lake_dataplane::ingest::partitioner::format_hour(&opts.partition_format, 0),
                        "unknown_fields": if opts.flatten.drop_unknown_fields { "drop" } else { "dead-letter" },
                        "legacy_leases": opts.import_legacy_leases,
                    }));
                }
                println!(
                    "{}",
                    serde_json::json!({
                        "datasets": datasets,
                        "lease_table": lease_table,
                        "roll_bytes": lake.roll_mib << 20,
                        "window_seconds": lake.roll_seconds.max(1),
                        "failover_seconds": failover_seconds.max(1),
                        "scratch_dir": scratch_dir,
                        "scratch_per_shard_bytes": scratch_need,
                        "scratch_free_bytes": free,
                        "worker_id": worker_id,
                        "region": lake.region,
                    })
                );
                return Ok(ExitCode::SUCCESS);
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let report = runtime.block_on(async {
                let shutdown = Arc::new(AtomicBool::new(false));
                for kind in [SignalKind::terminate(), SignalKind::interrupt()] {
                    let mut sig = signal(kind)?;
                    let flag = shutdown.clone();
                    tokio::spawn(async move {
                        sig.recv().await;
                        flag.store(true, Ordering::SeqCst);
                    });
                }
                consumer::run_many(all, shutdown).await
            })?;
            eprintln!(
                "lake-ingest run: {} records, {} files, {} dead letters; shards held: {}",
                report.records,
                report.files,
                report.dead_letters,
                report.shards_held.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Datagen {
            dataset,
            count,
            seed,
            envelope,
            start_ms,
            max_step_ms,
            output,
            to: Some(to),
            aggregate,
            endpoint_url,
            region,
        } => {
            let stream = to
                .strip_prefix("kinesis://")
                .ok_or_else(|| anyhow::anyhow!("--to {to}: expected kinesis://STREAM"))?
                .to_string();
            if output.is_some() {
                bail!("--to and --output are alternatives");
            }
            let mut orders = Orders::new(OrderSpec {
                quickstart: dataset.quickstart(),
                seed,
                start_ms,
                max_step_ms,
                envelope,
            });
            let lines: Vec<Vec<u8>> = (0..count)
                .map(|_| {
                    let mut line = Vec::new();
                    orders.write_next(&mut line);
                    line.pop();
                    line
                })
                .collect();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let put = runtime.block_on(put_orders(
                &stream,
                &lines,
                aggregate.max(1),
                endpoint_url.as_deref(),
                region.as_deref(),
            ))?;
            eprintln!(
                "lake-ingest datagen: {count} records put into {stream} as {put} Kinesis records"
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Datagen {
            dataset,
            count,
            seed,
            envelope,
            start_ms,
            max_step_ms,
            output,
            ..
        } => {
            let mut sink: Box<dyn Write> = match &output {
                Some(path) => Box::new(
                    File::create(path).with_context(|| format!("creating {}", path.display()))?,
                ),
                None => Box::new(io::stdout().lock()),
            };
            let mut orders = Orders::new(OrderSpec {
                quickstart: dataset.quickstart(),
                seed,
                start_ms,
                max_step_ms,
                envelope,
            });
            let mut buf = Vec::with_capacity(1 << 20);
            for _ in 0..count {
                orders.write_next(&mut buf);
                if buf.len() >= 1 << 20 {
                    sink.write_all(&buf)?;
                    buf.clear();
                }
            }
            sink.write_all(&buf)?;
            sink.flush()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
