//! Shard leases in DynamoDB, as the KCL keeps them: one item per shard with
//! an owner, a counter every renewal bumps, the checkpoint, and the intent
//! (the last sequence number of a window whose files are being published,
//! the files, and the fingerprint of the options that named and cut them).
//! Every change is a conditional write, so two workers never both own a
//! shard; the owner is a worker id *and* the incarnation of the process
//! holding it, so two live processes with one worker id cannot both pass
//! the owner checks (the newer takes the lease; the older stops).
//!
//! A take returns the lease's epoch (the counter it set), which names every
//! file the new owner writes.
//!
//! Owns: the conditional writes on the lease table's items (the record and
//! its scan are `lake_contract::lease`). Must not: read Kinesis or decide
//! which shards to take (the consumer does).

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use lake_contract::lease;
/// The record and its order are the contract's (`lake_contract::lease`).
pub use lake_contract::lease::{cmp_seq, Lease, SHARD_END, TRIM_HORIZON};

/// Who holds a lease: the worker id and this process's incarnation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub id: String,
    pub incarnation: String,
}

impl Owner {
    /// `id` in a new process: a fresh incarnation (time and process id).
    pub fn new(id: &str) -> Owner {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Owner {
            id: id.to_string(),
            incarnation: format!("{nanos:x}-{:x}", std::process::id()),
        }
    }
}

/// The window a worker is publishing: where it ends, its files, and the
/// fingerprint of the options that made them.
pub struct Intent<'a> {
    pub seq: &'a str,
    pub config: &'a str,
    pub files: &'a [String],
}

pub struct LeaseTable {
    client: Client,
    table: String,
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn is_condition_failure<E: std::fmt::Debug>(e: &aws_sdk_dynamodb::error::SdkError<E>) -> bool {
    format!("{e:?}").contains("ConditionalCheckFailed")
}

impl LeaseTable {
    pub fn new(client: Client, table: &str) -> Self {
        LeaseTable {
            client,
            table: table.to_string(),
        }
    }

    /// For local use (`--create-lease-table`): the table the stacks create in AWS.
    pub async fn create_if_missing(&self) -> Result<()> {
        let exists = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .is_ok();
        if exists {
            return Ok(());
        }
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("leaseKey")
                    .attribute_type(ScalarAttributeType::S)
                    .build()?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("leaseKey")
                    .key_type(KeyType::Hash)
                    .build()?,
            )
            .send()
            .await
            .with_context(|| format!("creating lease table {}", self.table))?;
        Ok(())
    }

    /// A lease for `shard`, unless one exists.
    pub async fn ensure(&self, shard: &str, parents: &[String]) -> Result<()> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("leaseKey", s(shard))
            .item("leaseCounter", n(0))
            .item("checkpoint", s(TRIM_HORIZON))
            .condition_expression("attribute_not_exists(leaseKey)");
        if !parents.is_empty() {
            put = put.item(
                "parentShardIds",
                AttributeValue::L(parents.iter().map(|p| s(p)).collect()),
            );
        }
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => {
                Err(e).with_context(|| format!("creating the lease of {shard} in {}", self.table))
            }
        }
    }

    /// Every lease, read consistently (`lake_contract::lease::scan`).
    pub async fn scan(&self) -> Result<Vec<Lease>> {
        Ok(lease::scan(&self.client, &self.table).await?)
    }

    /// One conditional update of `shard`'s item: true when the condition held.
    async fn update(
        &self,
        shard: &str,
        update: &str,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<bool> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("leaseKey", s(shard))
            .update_expression(update)
            .condition_expression(condition);
        for (name, value) in values {
            req = req.expression_attribute_values(*name, value.clone());
        }
        self.conditional(req.send().await, shard)
    }

    /// Take `lease` if nobody renewed it since it was read (its counter is
    /// unchanged); this process's incarnation becomes the owner's. Returns
    /// the lease's epoch (the counter this take set): unique per take, it
    /// names the files the new owner writes, so no two owners ever write
    /// one key.
    pub async fn take(&self, lease: &Lease, me: &Owner) -> Result<Option<u64>> {
        let update = "SET leaseOwner = :me, incarnation = :inc, leaseCounter = leaseCounter + :one";
        let taken = self
            .update(
                &lease.shard,
                update,
                "leaseCounter = :seen",
                &[
                    (":me", s(&me.id)),
                    (":inc", s(&me.incarnation)),
                    (":one", n(1)),
                    (":seen", n(lease.counter)),
                ],
            )
            .await?;
        Ok(taken.then_some(lease.counter + 1))
    }

    /// The previous owner's unfinished window is cleaned up (its uploads
    /// aborted, its files deleted): forget its intent.
    pub async fn clear_intent(&self, shard: &str, me: &Owner) -> Result<bool> {
        let [a, b] = Self::owner_values(me);
        let update =
            "REMOVE intent, intentConfig, intentFiles SET leaseCounter = leaseCounter + :one";
        self.update(shard, update, Self::OWNED, &[a, b, (":one", n(1))])
            .await
    }

    const OWNED: &'static str = "leaseOwner = :me AND incarnation = :inc";

    fn owner_values(me: &Owner) -> [(&'static str, AttributeValue); 2] {
        [(":me", s(&me.id)), (":inc", s(&me.incarnation))]
    }

    /// Bump the counter of a lease `me` owns; false when it was lost.
    pub async fn renew(&self, shard: &str, me: &Owner) -> Result<bool> {
        let [a, b] = Self::owner_values(me);
        self.update(
            shard,
            "SET leaseCounter = leaseCounter + :one",
            Self::OWNED,
            &[a, b, (":one", n(1))],
        )
        .await
    }

    /// Record that the files of a window ending at `intent.seq` are being
    /// published (before any of them is). The counter moves too: a worker
    /// that read the lease before the intent existed cannot take it (and
    /// replay without the boundary).
    pub async fn set_intent(&self, shard: &str, me: &Owner, intent: &Intent<'_>) -> Result<bool> {
        let [a, b] = Self::owner_values(me);
        let update = "SET intent = :seq, intentConfig = :cfg, intentFiles = :files, \
                      leaseCounter = leaseCounter + :one";
        self.update(
            shard,
            update,
            Self::OWNED,
            &[
                a,
                b,
                (":seq", s(intent.seq)),
                (":cfg", s(intent.config)),
                (
                    ":files",
                    AttributeValue::L(intent.files.iter().map(|f| s(f)).collect()),
                ),
                (":one", n(1)),
            ],
        )
        .await
    }

    /// Everything up to `checkpoint` is durable in the lake; the intent is
    /// done. `lag_ms` (how far behind the stream's tip the shard's reader
    /// was) and the time are kept beside it for `lakectl status`.
    pub async fn checkpoint(
        &self,
        shard: &str,
        me: &Owner,
        checkpoint: &str,
        lag_ms: u64,
    ) -> Result<bool> {
        let [a, b] = Self::owner_values(me);
        let update = "SET checkpoint = :cp, leaseCounter = leaseCounter + :one, \
                      millisBehindLatest = :lag, checkpointAt = :at \
                      REMOVE intent, intentConfig, intentFiles";
        self.update(
            shard,
            update,
            Self::OWNED,
            &[
                a,
                b,
                (":cp", s(checkpoint)),
                (":one", n(1)),
                (":lag", n(lag_ms)),
                (":at", n(now_ms())),
            ],
        )
        .await
    }

    /// The shard is read to its end and every window is durable: checkpoint
    /// `SHARD_END` and let go of the lease in one write (a finished shard
    /// has no owner; its children may start).
    pub async fn finish(&self, shard: &str, me: &Owner) -> Result<bool> {
        let [a, b] = Self::owner_values(me);
        let update = "SET checkpoint = :cp, leaseCounter = leaseCounter + :one, \
                      checkpointAt = :at, millisBehindLatest = :zero \
                      REMOVE leaseOwner, incarnation, intent, intentConfig, intentFiles";
        self.update(
            shard,
            update,
            Self::OWNED,
            &[
                a,
                b,
                (":cp", s(SHARD_END)),
                (":one", n(1)),
                (":zero", n(0)),
                (":at", n(now_ms())),
            ],
        )
        .await
    }

    /// Give a lease back (graceful shutdown): others may take it at once.
    pub async fn release(&self, shard: &str, me: &Owner) -> Result<bool> {
        let [a, b] = Self::owner_values(me);
        let update = "REMOVE leaseOwner, incarnation SET leaseCounter = leaseCounter + :one";
        self.update(shard, update, Self::OWNED, &[a, b, (":one", n(1))])
            .await
    }

    fn conditional<T, E: std::fmt::Debug + std::error::Error + Send + Sync + 'static>(
        &self,
        r: Result<T, aws_sdk_dynamodb::error::SdkError<E>>,
        shard: &str,
    ) -> Result<bool> {
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => {
                Err(e).with_context(|| format!("updating the lease of {shard} in {}", self.table))
            }
        }
    }
}

/// How many leases this worker should hold: an even share over the workers
/// that are alive (`owners`, including itself).
pub fn fair_share(leases: usize, workers: usize) -> usize {
    leases.div_ceil(workers.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_even_and_cover_every_lease() {
        assert_eq!(fair_share(4, 2), 2);
        assert_eq!(fair_share(4, 3), 2);
        assert_eq!(fair_share(5, 2), 3);
        assert_eq!(fair_share(4, 0), 4);
    }
}
