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
//! file the new owner writes. Every write after the take compares and sets
//! the lease's logical state (the intent and checkpoint it expects), so a
//! late retry of an earlier write changes nothing; a condition that fails
//! is read back, to tell "my earlier attempt landed" from "lost".
//!
//! One table holds the leases of every dataset's stream: a `LeaseTable` is
//! one stream's view of it (items keyed `<stream>/<shard>`; its methods
//! take bare shard ids). Items keyed by the shard id alone were written
//! before the table held several streams (the single `<env>-orders`
//! stream); the view of that stream imports them (`ensure`).
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

/// The lease protocol this program speaks: 2 = fenced writes, multipart
/// uploads, epochs in file names, compare-and-set lease writes.
pub const PROTOCOL: u64 = 2;

/// The window a worker is publishing: where it ends, its files (inline, or
/// in the object `list` names when there are more than an item holds), and
/// the fingerprint of the options that made them.
pub struct Intent<'a> {
    pub seq: &'a str,
    pub config: &'a str,
    pub files: &'a [String],
    pub list: Option<&'a str>,
}

pub struct LeaseTable {
    client: Client,
    table: String,
    stream: String,
    /// Import items keyed by the bare shard id (this stream's leases from
    /// before the table was shared).
    import_legacy: bool,
    /// Shards whose item is known to exist (no put, no import next round).
    known: std::sync::Mutex<std::collections::HashSet<String>>,
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
    /// `stream`'s leases in `table`; `import_legacy`: this stream's leases
    /// may still be keyed by the bare shard id.
    pub fn new(client: Client, table: &str, stream: &str, import_legacy: bool) -> Self {
        LeaseTable {
            client,
            table: table.to_string(),
            stream: stream.to_string(),
            import_legacy,
            known: Default::default(),
        }
    }

    /// The item key of `shard`.
    fn key(&self, shard: &str) -> AttributeValue {
        s(&lease::key(&self.stream, shard))
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
        let created = self
            .client
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
            .await;
        match created {
            Ok(_) => Ok(()),
            // Another consumer of this process (one per dataset's stream, all
            // sharing the table) or another worker made it meanwhile.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(e).with_context(|| format!("creating lease table {}", self.table)),
        }
    }

    /// A lease for `shard`, unless one exists: this stream's item from
    /// before the table was shared moved to its new key, or a new one.
    pub async fn ensure(&self, shard: &str, parents: &[String]) -> Result<()> {
        if self.known.lock().expect("known lock").contains(shard) {
            return Ok(());
        }
        if self.import_legacy && !self.import(shard).await? {
            // Moved under our feet (its owner renewed it): next round.
            return Ok(());
        }
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("leaseKey", self.key(shard))
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
            Ok(_) => {}
            Err(e) if is_condition_failure(&e) => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("creating the lease of {shard} in {}", self.table))
            }
        }
        self.known
            .lock()
            .expect("known lock")
            .insert(shard.to_string());
        Ok(())
    }

    /// Move the item keyed by the bare `shard` id, if any, to its key.
    /// One transaction puts a copy (owner, counter, checkpoint, intent and
    /// all; only if the new key is free) and turns the old item into a
    /// tombstone (checkpoint `SHARD_END`, no owner, `movedTo`; only if its
    /// counter is still the one read). A worker of the earlier version that
    /// still runs loses its next renewal and stops, and finds the shard
    /// finished, not free: it never reads the shard again. The copy's
    /// owner is waited out like any silent owner's before anyone takes it.
    /// False when the old item changed meanwhile.
    async fn import(&self, shard: &str) -> Result<bool> {
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
        let old = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("leaseKey", s(shard))
            .consistent_read(true)
            .send()
            .await
            .with_context(|| format!("reading the old lease of {shard} in {}", self.table))?;
        let Some(mut item) = old.item().cloned() else {
            return Ok(true);
        };
        if item.contains_key("movedTo") {
            return Ok(true);
        }
        let counter = item.get("leaseCounter").cloned().unwrap_or_else(|| n(0));
        item.insert("leaseKey".into(), self.key(shard));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(leaseKey)")
            .build()?;
        let tombstone = Update::builder()
            .table_name(&self.table)
            .key("leaseKey", s(shard))
            .update_expression(
                "SET checkpoint = :end, movedTo = :to, leaseCounter = leaseCounter + :one \
                 REMOVE leaseOwner, incarnation, intent, intentConfig, intentFiles, intentList",
            )
            .condition_expression("leaseCounter = :c")
            .expression_attribute_values(":end", s(SHARD_END))
            .expression_attribute_values(":to", self.key(shard))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":c", counter)
            .build()?;
        let sent = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().update(tombstone).build())
            .send()
            .await;
        match sent {
            Ok(_) => {
                eprintln!(
                    "{}",
                    serde_json::json!({
                        "event": "lease_imported",
                        "stream": self.stream,
                        "shard": shard,
                    })
                );
                Ok(true)
            }
            Err(e) if format!("{e:?}").contains("TransactionCanceled") => Ok(false),
            Err(e) => Err(e).with_context(|| {
                format!(
                    "moving the lease of {shard} to its stream's key in {}",
                    self.table
                )
            }),
        }
    }

    /// Every lease of this stream, read consistently
    /// (`lake_contract::lease::scan_stream`).
    pub async fn scan(&self) -> Result<Vec<Lease>> {
        Ok(lease::scan_stream(&self.client, &self.table, &self.stream).await?)
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
            .key("leaseKey", self.key(shard))
            .update_expression(update)
            .condition_expression(condition);
        for (name, value) in values {
            req = req.expression_attribute_values(*name, value.clone());
        }
        self.conditional(req.send().await, shard)
    }

    /// The lease of `shard`, read consistently (None when there is none).
    pub async fn get(&self, shard: &str) -> Result<Option<Lease>> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("leaseKey", self.key(shard))
            .consistent_read(true)
            .send()
            .await
            .with_context(|| format!("reading the lease of {shard} in {}", self.table))?;
        Ok(resp.item().map(Lease::from_item))
    }

    /// A conditional write whose condition failed may have failed because
    /// an earlier attempt of the same write landed (the SDK retries on a
    /// lost reply): read the lease, and `landed` says whether it already
    /// shows this write done by this owner.
    async fn settle(
        &self,
        done: bool,
        shard: &str,
        me: &Owner,
        landed: impl FnOnce(&Lease) -> bool,
    ) -> Result<bool> {
        if done {
            return Ok(true);
        }
        Ok(self.get(shard).await?.is_some_and(|l| {
            l.owner.as_deref() == Some(me.id.as_str())
                && l.incarnation.as_deref() == Some(me.incarnation.as_str())
                && landed(&l)
        }))
    }

    /// Take `lease` if nobody renewed it since it was read (its counter is
    /// unchanged); this process's incarnation becomes the owner's, with its
    /// failover and protocol. Returns the lease's epoch (the counter this
    /// take set): unique per take, it names the files the new owner writes,
    /// so no two owners ever write one key.
    pub async fn take(
        &self,
        lease: &Lease,
        me: &Owner,
        failover: std::time::Duration,
    ) -> Result<Option<u64>> {
        let update =
            "SET leaseOwner = :me, incarnation = :inc, leaseCounter = leaseCounter + :one, \
                      failoverMs = :fo, protocol = :p";
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
                    (":fo", n(failover.as_millis() as u64)),
                    (":p", n(PROTOCOL)),
                ],
            )
            .await?;
        let epoch = lease.counter + 1;
        let taken = self
            .settle(taken, &lease.shard, me, |l| l.counter == epoch)
            .await?;
        Ok(taken.then_some(epoch))
    }

    /// The previous owner's unfinished window is cleaned up (its uploads
    /// aborted, its files deleted): forget its intent — exactly that one
    /// (a late retry of this write, landing after an intent of this
    /// owner's own, changes nothing).
    pub async fn clear_intent(&self, shard: &str, me: &Owner, old: &Lease) -> Result<bool> {
        let [a, b] = Self::owner_values(me);
        let update = "REMOVE intent, intentConfig, intentFiles, intentList \
                      SET leaseCounter = leaseCounter + :one";
        let (condition, extra) = match &old.intent {
            Some(seq) => (format!("{} AND intent = :old", Self::OWNED), Some(s(seq))),
            None => (
                format!(
                    "{} AND attribute_not_exists(intent) AND (attribute_exists(intentFiles) OR attribute_exists(intentList))",
                    Self::OWNED
                ),
                None,
            ),
        };
        let mut values = vec![a, b, (":one", n(1))];
        if let Some(v) = extra {
            values.push((":old", v));
        }
        let done = self.update(shard, update, &condition, &values).await?;
        self.settle(done, shard, me, |l| {
            l.intent.is_none() && l.intent_files.is_empty() && l.intent_list.is_none()
        })
        .await
    }

    const OWNED: &'static str = "leaseOwner = :me AND incarnation = :inc";

    fn owner_values(me: &Owner) -> [(&'static str, AttributeValue); 2] {
        [(":me", s(&me.id)), (":inc", s(&me.incarnation))]
    }

    /// Bump the counter of a lease `me` owns; false when it was lost. The
    /// owner's failover travels with it.
    pub async fn renew(
        &self,
        shard: &str,
        me: &Owner,
        failover: std::time::Duration,
    ) -> Result<bool> {
        let [a, b] = Self::owner_values(me);
        self.update(
            shard,
            "SET leaseCounter = leaseCounter + :one, failoverMs = :fo, protocol = :p",
            Self::OWNED,
            &[
                a,
                b,
                (":one", n(1)),
                (":fo", n(failover.as_millis() as u64)),
                (":p", n(PROTOCOL)),
            ],
        )
        .await
    }

    /// Record that the files of a window ending at `intent.seq`, read from
    /// checkpoint `from`, are being published (before any of them is).
    /// Only over that checkpoint and no other intent: a late retry cannot
    /// put back an intent whose window is already checkpointed. The counter
    /// moves too: a worker that read the lease before the intent existed
    /// cannot take it (and miss the files).
    pub async fn set_intent(
        &self,
        shard: &str,
        me: &Owner,
        intent: &Intent<'_>,
        from: &str,
    ) -> Result<bool> {
        let [a, b] = Self::owner_values(me);
        let (files_update, files_value) = match intent.list {
            Some(key) => ("intentList = :files", s(key)),
            None => (
                "intentFiles = :files",
                AttributeValue::L(intent.files.iter().map(|f| s(f)).collect()),
            ),
        };
        let update = format!(
            "SET intent = :seq, intentConfig = :cfg, {files_update}, leaseCounter = leaseCounter + :one"
        );
        let condition = format!(
            "{} AND checkpoint = :cp AND attribute_not_exists(intent)",
            Self::OWNED
        );
        let done = self
            .update(
                shard,
                &update,
                &condition,
                &[
                    a,
                    b,
                    (":seq", s(intent.seq)),
                    (":cfg", s(intent.config)),
                    (":files", files_value),
                    (":cp", s(from)),
                    (":one", n(1)),
                ],
            )
            .await?;
        self.settle(done, shard, me, |l| {
            l.intent.as_deref() == Some(intent.seq)
                && l.checkpoint == from
                && match intent.list {
                    Some(key) => l.intent_list.as_deref() == Some(key),
                    None => l.intent_files == intent.files,
                }
        })
        .await
    }

    /// Everything up to `checkpoint` (the intent's end) is durable in the
    /// lake; the intent is done. Only over that intent and the checkpoint
    /// it was read from (`from`): a late retry cannot move the checkpoint
    /// back. `lag_ms` (how far behind the stream's tip the shard's reader
    /// was) and the time are kept beside it for `lakectl status`.
    pub async fn checkpoint(
        &self,
        shard: &str,
        me: &Owner,
        checkpoint: &str,
        from: &str,
        lag_ms: u64,
    ) -> Result<bool> {
        let [a, b] = Self::owner_values(me);
        let update = "SET checkpoint = :cp, leaseCounter = leaseCounter + :one, \
                      millisBehindLatest = :lag, checkpointAt = :at \
                      REMOVE intent, intentConfig, intentFiles, intentList";
        let condition = format!("{} AND intent = :cp AND checkpoint = :from", Self::OWNED);
        let done = self
            .update(
                shard,
                update,
                &condition,
                &[
                    a,
                    b,
                    (":cp", s(checkpoint)),
                    (":from", s(from)),
                    (":one", n(1)),
                    (":lag", n(lag_ms)),
                    (":at", n(now_ms())),
                ],
            )
            .await?;
        self.settle(done, shard, me, |l| {
            l.checkpoint == checkpoint && l.intent.is_none()
        })
        .await
    }

    /// The shard is read to its end and every window is durable: checkpoint
    /// `SHARD_END` and let go of the lease in one write (a finished shard
    /// has no owner; its children may start).
    pub async fn finish(&self, shard: &str, me: &Owner, from: &str) -> Result<bool> {
        let [a, b] = Self::owner_values(me);
        let update = "SET checkpoint = :cp, leaseCounter = leaseCounter + :one, \
                      checkpointAt = :at, millisBehindLatest = :zero \
                      REMOVE leaseOwner, incarnation, intent, intentConfig, intentFiles, intentList";
        let condition = format!(
            "{} AND checkpoint = :from AND attribute_not_exists(intent)",
            Self::OWNED
        );
        let done = self
            .update(
                shard,
                update,
                &condition,
                &[
                    a,
                    b,
                    (":cp", s(SHARD_END)),
                    (":from", s(from)),
                    (":one", n(1)),
                    (":zero", n(0)),
                    (":at", n(now_ms())),
                ],
            )
            .await?;
        // A finished shard has no owner: an earlier attempt shows as the end.
        Ok(done
            || self
                .get(shard)
                .await?
                .is_some_and(|l| l.checkpoint == SHARD_END))
    }

    /// Give a lease back (graceful shutdown): others may take it at once.
    /// Conditional on the counter just read, so a late retry cannot release
    /// a lease this process (or anyone) took again since.
    pub async fn release(&self, shard: &str, me: &Owner) -> Result<bool> {
        let Some(current) = self.get(shard).await? else {
            return Ok(false);
        };
        let [a, b] = Self::owner_values(me);
        let update = "REMOVE leaseOwner, incarnation SET leaseCounter = leaseCounter + :one";
        let condition = format!("{} AND leaseCounter = :c", Self::OWNED);
        self.update(
            shard,
            update,
            &condition,
            &[a, b, (":one", n(1)), (":c", n(current.counter))],
        )
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
