//! `lake-ingest backfill`: replay raw-archive objects (what Firehose wrote:
//! newline-delimited or back-to-back JSON, optionally gzip) through the
//! ingest pipeline into the lake.
//!
//! Owns: walking the source objects, splitting records, naming outputs
//! deterministically per source object (a re-run overwrites, never
//! duplicates) and writing each object's dead letters to
//! `<sink>/_errors/`. Must not: flatten or partition (`Pipeline` does).

use std::io::Read;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::writer::{PartitionedWriter, Published, RollPolicy};
use super::{Counts, LakeFormat, PartitionBy, Pipeline};
use crate::flatten::stream::for_each_line;
use crate::flatten::FlattenConfig;
use crate::layout::is_hidden;
use crate::store::{Location, Store};

pub struct BackfillOptions {
    pub from: String,
    pub sink: String,
    pub format: LakeFormat,
    pub partition_by: PartitionBy,
    pub partition_format: String,
    pub roll: RollPolicy,
    pub flatten: FlattenConfig,
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
}

#[derive(Debug, Default)]
pub struct BackfillReport {
    pub objects: usize,
    pub counts: Counts,
    pub files: Vec<Published>,
}

/// Firehose writes `…/yyyy/MM/dd/HH/…`: the arrival hour of an archive object.
fn arrival_from_key(key: &str) -> Option<i64> {
    let parts: Vec<&str> = key.split('/').collect();
    parts.windows(4).rev().find_map(|w| {
        let n = |s: &str, len: usize| {
            (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<i64>().ok())
                .flatten()
        };
        let (y, m, d, h) = (n(w[0], 4)?, n(w[1], 2)?, n(w[2], 2)?, n(w[3], 2)?);
        let date = format!("\"{y:04}-{m:02}-{d:02}T{h:02}:00:00Z\"");
        super::partitioner::parse_time(date.as_bytes(), crate::flatten::ValueKind::String).ok()
    })
}

pub async fn run(opts: &BackfillOptions) -> Result<BackfillReport> {
    let (from, sink) = (
        Location::parse(&opts.from).context("--from")?,
        Location::parse(&opts.sink).context("--sink")?,
    );
    if from.overlaps(&sink) {
        bail!(
            "--sink {} and --from {} overlap: the lake would be written among the raw objects, and \
             the next replay would read it back as input (every row again). Write the lake to a \
             location outside the source",
            opts.sink,
            opts.from
        );
    }
    let needs_s3 = matches!(from, Location::S3 { .. }) || matches!(sink, Location::S3 { .. });
    let client = if needs_s3 {
        Some(crate::store::s3_client(opts.endpoint_url.as_deref(), opts.region.as_deref()).await)
    } else {
        None
    };
    let src = Store::open(&from, client.as_ref()).await?;
    let dest = Store::open(&sink, client.as_ref()).await?;
    let objects: Vec<_> = src
        .list("")
        .await?
        .into_iter()
        .filter(|o| !is_hidden(&o.key))
        .collect();
    if objects.is_empty() {
        bail!("--from {}: no objects to replay", opts.from);
    }
    let runtime = tokio::runtime::Handle::current();
    let mut report = BackfillReport::default();
    for object in &objects {
        let arrival = arrival_from_key(&object.key);
        if opts.partition_by == PartitionBy::ArrivalTime && arrival.is_none() {
            bail!(
                "{}: arrival-time partitioning needs Firehose's yyyy/MM/dd/HH in the object key",
                from.url_of(&object.key)
            );
        }
        let spool = tempfile::Builder::new()
            .prefix("lake-backfill-")
            .tempdir()?;
        let path = src.fetch(&object.key, spool.path()).await?;
        let url = from.url_of(&object.key);
        let id = hex::encode(&Sha256::digest(url.as_bytes())[..6]);
        let (opts_ref, dest_ref, runtime_ref) = (opts, &dest, &runtime);
        let scratch = dest.scratch_dir("_ingest/tmp", spool.path())?;
        let url_for_task = url.clone();
        let errors_key = format!("_errors/backfill-{id}.ndjson");
        let key = object.key.clone();
        // Flattening and writing are blocking work.
        let (counts, files, dead) = tokio::task::block_in_place(move || -> Result<_> {
            let ext = opts_ref.format.extension();
            // Named after the source object and the file's first record: a re-run overwrites.
            let mut writer = PartitionedWriter::new(
                dest_ref,
                runtime_ref,
                &scratch,
                opts_ref.roll.clone(),
                &opts_ref.format,
                move |partition: &str, first: &str| {
                    format!("{partition}/backfill-{id}-{first:0>10}.{ext}")
                },
            );
            let mut pipeline = Pipeline::new(
                opts_ref.flatten.clone(),
                opts_ref.format.clone(),
                opts_ref.partition_by.clone(),
                &opts_ref.partition_format,
            );
            let file =
                std::fs::File::open(&path).with_context(|| format!("opening {url_for_task}"))?;
            let mut input: Box<dyn Read> = if key.ends_with(".gz") {
                Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(
                    file,
                )))
            } else {
                Box::new(file)
            };
            let mut failure = None;
            let mut position = 0u64;
            for_each_line(&mut input, |_, line| {
                if failure.is_some() {
                    return Ok(());
                }
                // A line may hold several back-to-back records (Firehose adds no separators).
                let mut rest = super::trim_ws(line);
                while !rest.is_empty() {
                    position += 1;
                    match pipeline.record(
                        &mut writer,
                        &url_for_task,
                        position,
                        &position,
                        rest,
                        arrival.unwrap_or(0),
                    ) {
                        Ok(used) => rest = super::trim_ws(&rest[used..]),
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                Ok(())
            })
            .with_context(|| format!("reading {url_for_task}"))?;
            if let Some(e) = failure {
                return Err(e);
            }
            let files = writer.finish()?;
            Ok((pipeline.counts(), files, pipeline.dead_letters))
        })?;
        if !dead.is_empty() {
            dest.put_bytes(&errors_key, dead).await?;
        }
        report.objects += 1;
        report.counts.records += counts.records;
        report.counts.written += counts.written;
        report.counts.dead_lettered += counts.dead_lettered;
        report.counts.bytes_in += counts.bytes_in;
        report.counts.unknown_fields += counts.unknown_fields;
        for name in counts.unknown_field_names {
            if report.counts.unknown_field_names.len() < 8
                && !report.counts.unknown_field_names.contains(&name)
            {
                report.counts.unknown_field_names.push(name);
            }
        }
        report.files.extend(files);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrival_hour_from_firehose_keys() {
        assert_eq!(
            arrival_from_key("raw/2019/11/13/15/lake-1-2019-11-13-15-00-00-abc.gz"),
            Some(1_573_657_200)
        );
        assert_eq!(arrival_from_key("raw/orders.ndjson"), None);
    }
}
