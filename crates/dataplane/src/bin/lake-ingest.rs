//! `lake-ingest` command line: parses arguments and dispatches to the
//! `lake_dataplane` library. Must not: hold flattening or generation logic.
//!
//! Exit codes of `flatten` and `backfill`: 0 every record written (or
//! blank), 2 some went to the dead-letter output, 1 a fatal error.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use lake_dataplane::datagen::{OrderSpec, Orders, DEFAULT_START_MS};
use lake_dataplane::flatten::schema::columns_from_avro;
use lake_dataplane::flatten::stream::{Format, Stream};
use lake_dataplane::flatten::{CsvLayout, FlattenConfig, DEFAULT_MAX_DEPTH};
use lake_dataplane::ingest::backfill::{self, BackfillOptions};
use lake_dataplane::ingest::writer::RollPolicy;
use lake_dataplane::ingest::{LakeFormat, PartitionBy};

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
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PartitionByArg {
    OrderTime,
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
    /// Replay raw-archive objects (newline-delimited or back-to-back JSON,
    /// optionally gzip) into the lake, partitioned like `run` does.
    Backfill {
        /// Where the raw objects are: s3://bucket/prefix, file:///path or a path.
        #[arg(long)]
        from: String,
        /// The lake: s3://bucket/prefix, file:///path or a path.
        #[arg(long)]
        sink: String,
        #[arg(long, value_enum, default_value_t = OutFormat::Csv)]
        format: OutFormat,
        /// Avro record schema of the CSV columns (required with --format csv).
        #[arg(long)]
        schema: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = PartitionByArg::OrderTime)]
        partition_by: PartitionByArg,
        /// Flattened field holding the record's own time (epoch ms/s or ISO-8601, UTC).
        #[arg(long, default_value = "ordertime")]
        time_field: String,
        /// Partition directory, strftime-like (%Y %m %d %H %j), UTC.
        #[arg(long, default_value = "ordertime=%Y%m%d%H")]
        partition_format: String,
        #[arg(long, default_value_t = 128)]
        roll_mib: u64,
        #[arg(long, default_value_t = 10_000_000)]
        roll_records: u64,
        #[arg(long, default_value_t = 300)]
        roll_seconds: u64,
        /// Files open at once; the least recently used is closed first.
        #[arg(long, default_value_t = 64)]
        max_open_files: usize,
        #[arg(long, default_value = "_")]
        separator: String,
        /// AWS API endpoint (also AWS_ENDPOINT_URL), e.g. a local moto server.
        #[arg(long, env = "AWS_ENDPOINT_URL")]
        endpoint_url: Option<String>,
        #[arg(long)]
        region: Option<String>,
    },
    /// Write deterministic orders (kafka-connect-datagen `orders` shape) as NDJSON.
    Datagen {
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Wrap each order in a Kafka Connect JsonConverter envelope.
        #[arg(long)]
        envelope: bool,
        /// ordertime of the first order, epoch milliseconds.
        #[arg(long, default_value_t = DEFAULT_START_MS)]
        start_ms: i64,
        /// Each order is up to this many milliseconds after the previous one.
        #[arg(long, default_value_t = 1000)]
        max_step_ms: u64,
        /// Output file (default: stdout).
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
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
            };
            if let Err(e) = config.check() {
                bail!("--separator {separator:?}: {e}");
            }
            let format = match (format, schema) {
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
        Command::Backfill {
            from,
            sink,
            format,
            schema,
            partition_by,
            time_field,
            partition_format,
            roll_mib,
            roll_records,
            roll_seconds,
            max_open_files,
            separator,
            endpoint_url,
            region,
        } => {
            let format = match (format, schema) {
                (OutFormat::Ndjson, _) => LakeFormat::Ndjson,
                (OutFormat::Csv, None) => bail!("--format csv needs --schema FILE (an Avro record schema such as orders.avsc) to fix the columns of every file"),
                (OutFormat::Csv, Some(path)) => {
                    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                    let columns = columns_from_avro(&text, &separator).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    LakeFormat::Csv(CsvLayout::new(columns).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?)
                }
            };
            let opts = BackfillOptions {
                from,
                sink,
                format,
                partition_by: match partition_by {
                    PartitionByArg::OrderTime => PartitionBy::OrderTime { field: time_field },
                    PartitionByArg::ArrivalTime => PartitionBy::ArrivalTime,
                },
                partition_format,
                roll: RollPolicy {
                    max_bytes: roll_mib << 20,
                    max_records: roll_records,
                    max_age: std::time::Duration::from_secs(roll_seconds),
                    max_open: max_open_files.max(1),
                },
                flatten: FlattenConfig {
                    separator: separator.into_bytes(),
                    ..FlattenConfig::default()
                },
                endpoint_url,
                region,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let report = runtime.block_on(backfill::run(&opts))?;
            let c = report.counts;
            eprintln!(
                "lake-ingest backfill: {} objects, {} records: {} written to {} files, {} dead-lettered (in _errors/) ({} bytes)",
                report.objects,
                c.records,
                c.written,
                report.files.len(),
                c.dead_lettered,
                c.bytes_in
            );
            Ok(if c.dead_lettered > 0 {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Datagen {
            count,
            seed,
            envelope,
            start_ms,
            max_step_ms,
            output,
        } => {
            let mut sink: Box<dyn Write> = match &output {
                Some(path) => Box::new(
                    File::create(path).with_context(|| format!("creating {}", path.display()))?,
                ),
                None => Box::new(io::stdout().lock()),
            };
            let mut orders = Orders::new(OrderSpec {
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
