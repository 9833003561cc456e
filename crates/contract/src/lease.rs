//! The shard lease record, as `lake-ingest` keeps it in DynamoDB (one item
//! per shard, KCL-style, keyed `<stream>/<shard>`: one table serves every
//! dataset's stream), and its consistent scan. `lake-ingest` writes the
//! items; `lakectl status` (who holds what, how far behind) and
//! `lake-compact --lease-table` (never take a file whose window is not
//! checkpointed) read them through this one reader.
//!
//! Owns: the item's attribute names and meaning, sequence-number order, the
//! scan. Must not: write items (the conditional writes are the consumer's:
//! `lake_dataplane::ingest::lease`) or decide which shards a worker takes.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

pub const TRIM_HORIZON: &str = "TRIM_HORIZON";
pub const SHARD_END: &str = "SHARD_END";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The stream of the shard; None for an item keyed by the shard id
    /// alone (written before one table held several streams' leases).
    pub stream: Option<String>,
    /// The shard id (`shardId-000000000000`).
    pub shard: String,
    pub owner: Option<String>,
    /// The owner's process incarnation (two processes with one worker id
    /// are two owners).
    pub incarnation: Option<String>,
    pub counter: u64,
    /// `TRIM_HORIZON`, a sequence number (last one durable), or `SHARD_END`.
    pub checkpoint: String,
    /// Last sequence number of a window being published, if any.
    pub intent: Option<String>,
    /// Fingerprint of the options that cut and named the intent's files.
    pub intent_config: Option<String>,
    /// The keys of the intent's files (inline).
    pub intent_files: Vec<String>,
    /// Or, for a window of more files than a lease item holds, the key of
    /// the object (JSON list) that names them.
    pub intent_list: Option<String>,
    /// The owner's failover, milliseconds: a taker waits out the larger of
    /// its own and this (owners on other settings during a rolling deploy).
    pub failover_ms: Option<u64>,
    /// The lease protocol the owner speaks (2: fenced, multipart, epochs).
    pub protocol: Option<u64>,
    pub parents: Vec<String>,
    /// How far behind the stream's tip the reader was at the last checkpoint.
    pub lag_ms: Option<u64>,
}

/// The lease table could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading leases from {table}")]
pub struct ScanError {
    pub table: String,
    #[source]
    pub source: aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::scan::ScanError>,
}

/// The lease item key of `shard` of `stream`.
pub fn key(stream: &str, shard: &str) -> String {
    format!("{stream}/{shard}")
}

/// (stream, shard) of a lease item key; no stream for a bare shard id.
pub fn split_key(key: &str) -> (Option<&str>, &str) {
    match key.rsplit_once('/') {
        Some((stream, shard)) => (Some(stream), shard),
        None => (None, key),
    }
}

/// The leases of `stream` in `table`, read consistently, in shard order.
pub async fn scan_stream(
    client: &Client,
    table: &str,
    stream: &str,
) -> Result<Vec<Lease>, ScanError> {
    let mut all = scan(client, table).await?;
    all.retain(|l| l.stream.as_deref() == Some(stream));
    Ok(all)
}

/// Every lease of `table`, read consistently, in (stream, shard) order.
pub async fn scan(client: &Client, table: &str) -> Result<Vec<Lease>, ScanError> {
    let mut out = Vec::new();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let resp = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|source| ScanError {
                table: table.to_string(),
                source,
            })?;
        out.extend(resp.items().iter().map(Lease::from_item));
        match resp.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => break,
        }
    }
    out.sort_by(|a, b| (&a.stream, &a.shard).cmp(&(&b.stream, &b.shard)));
    Ok(out)
}

/// Kinesis sequence numbers compared as the decimal integers they are
/// (up to 128 bits; they are not fixed-width, so text order is wrong when
/// lengths differ). Non-numeric text sorts before every number.
pub fn cmp_seq(a: &str, b: &str) -> std::cmp::Ordering {
    let norm = |s: &str| {
        let digits = s.bytes().all(|c| c.is_ascii_digit()) && !s.is_empty();
        (digits, s.trim_start_matches('0').to_string())
    };
    let ((da, a), (db, b)) = (norm(a), norm(b));
    da.cmp(&db)
        .then(a.len().cmp(&b.len()))
        .then_with(|| a.cmp(&b))
}

impl Lease {
    /// The record of one lease item.
    pub fn from_item(item: &HashMap<String, AttributeValue>) -> Lease {
        let get = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        let number = |k: &str| {
            item.get(k)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
        };
        let list = |k: &str| -> Vec<String> {
            item.get(k)
                .and_then(|v| v.as_l().ok())
                .map(|l| l.iter().filter_map(|p| p.as_s().ok().cloned()).collect())
                .unwrap_or_default()
        };
        let key = get("leaseKey").unwrap_or_default();
        let (stream, shard) = split_key(&key);
        Lease {
            stream: stream.map(str::to_string),
            shard: shard.to_string(),
            owner: get("leaseOwner"),
            incarnation: get("incarnation"),
            counter: number("leaseCounter").unwrap_or(0),
            lag_ms: number("millisBehindLatest"),
            checkpoint: get("checkpoint").unwrap_or_else(|| TRIM_HORIZON.into()),
            intent: get("intent"),
            intent_config: get("intentConfig"),
            intent_files: list("intentFiles"),
            intent_list: get("intentList"),
            failover_ms: number("failoverMs"),
            protocol: number("protocol"),
            parents: list("parentShardIds"),
        }
    }

    /// Whether the window holding the record `seq` of this shard is
    /// checkpointed: the checkpoint is a window's last sequence number and
    /// windows never overlap, so a checkpoint at or past `seq` covers it.
    /// Files of such windows are never written again by a replay.
    pub fn covers(&self, seq: &str) -> bool {
        self.checkpoint == SHARD_END
            || (self.checkpoint != TRIM_HORIZON
                && cmp_seq(&self.checkpoint, seq) != std::cmp::Ordering::Less)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        use std::cmp::Ordering::*;
        assert_eq!(cmp_seq("9", "10"), Less);
        assert_eq!(
            cmp_seq(
                "49590338271490256608559692538361571095921575989136588898",
                "49590338271490256608559692538361571095921575989136588899"
            ),
            Less
        );
        assert_eq!(cmp_seq("0010", "10"), Equal);
        assert_eq!(cmp_seq("TRIM_HORIZON", "1"), Less);
        let lease = |cp: &str| Lease {
            stream: None,
            shard: "s".into(),
            owner: None,
            incarnation: None,
            counter: 0,
            checkpoint: cp.into(),
            intent: None,
            intent_config: None,
            intent_files: vec![],
            intent_list: None,
            failover_ms: None,
            protocol: None,
            parents: vec![],
            lag_ms: None,
        };
        assert!(lease("100").covers("99") && lease("100").covers("100"));
        assert!(!lease("100").covers("101") && !lease(TRIM_HORIZON).covers("1"));
        assert!(lease(SHARD_END).covers("12345678901234567890"));
    }

    #[test]
    fn keys_name_the_stream_and_the_shard() {
        let k = key("lake-poc-orders", "shardId-000000000001");
        assert_eq!(k, "lake-poc-orders/shardId-000000000001");
        assert_eq!(
            split_key(&k),
            (Some("lake-poc-orders"), "shardId-000000000001")
        );
        assert_eq!(
            split_key("shardId-000000000001"),
            (None, "shardId-000000000001")
        );
    }
}
