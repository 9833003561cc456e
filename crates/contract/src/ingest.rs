//! Ingest options both planes must read the same way: what `lakectl`
//! renders into the fleet's arguments and sizes its disks from, and what
//! `lake-ingest` checks before it starts.
//!
//! Owns: the scratch space a shard's windows may need. Must not: read
//! Kinesis, write files or render templates.

/// Files a writer keeps open at once unless told otherwise
/// (`lake-ingest --max-open-files`); the fleet runs with it.
pub const DEFAULT_MAX_OPEN_FILES: u64 = 64;

/// Kinesis serves at most 2 MiB per second per shard to `GetRecords`
/// (AWS's documented per-shard read limit): no window can read more.
pub const SHARD_READ_BYTES_PER_SECOND: u64 = 2 << 20;

/// How much larger a lake file may be than the records it holds: flattened
/// NDJSON repeats every nested key's parent (`address_city`), CSV quotes,
/// Parquet adds page headers. Measured below 1.1 on the orders shape
/// (docs/benchmarks.md, "Which lake format"); 1.5 leaves room for shapes
/// with deep nesting.
const ENCODING_GROWTH: f64 = 1.5;

/// Local scratch one shard's window can hold at once, in bytes: its files
/// stay in scratch until the window's intent is written, so the bound is
/// the smaller of (a) every open file at its roll size and (b) everything a
/// shard can deliver in one window (its read limit × the window), each
/// grown by the encoding, plus one roll for the dead letters spilled.
pub fn scratch_bytes_per_shard(roll_bytes: u64, max_open_files: u64, window_seconds: u64) -> u64 {
    let by_files = roll_bytes.saturating_mul(max_open_files.max(1));
    let by_reads = SHARD_READ_BYTES_PER_SECOND.saturating_mul(window_seconds.max(1));
    let data = by_files.min(by_reads) as f64 * ENCODING_GROWTH;
    (data as u64).saturating_add(roll_bytes.min(by_reads))
}

/// The root volume a worker needs, GiB: the operating system and the
/// binaries (8 GiB), and scratch for every shard's window at once (one
/// worker may hold every shard when the others are gone); at least 20 GiB.
pub fn worker_volume_gib(shards: u64, roll_bytes: u64, window_seconds: u64) -> u64 {
    let scratch = scratch_bytes_per_shard(roll_bytes, DEFAULT_MAX_OPEN_FILES, window_seconds)
        .saturating_mul(shards.max(1));
    (8 + scratch.div_ceil(1 << 30)).max(20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_needs_the_smaller_of_its_open_files_and_its_reads() {
        let mib = 1 << 20;
        // Defaults: 128 MiB rolls, 64 open files, 300 s windows: the read
        // limit bounds it (600 MiB of records in a window).
        let need = scratch_bytes_per_shard(128 * mib, 64, 300);
        assert_eq!(need, 900 * mib + 128 * mib);
        // Few small files: the files bound it.
        assert_eq!(scratch_bytes_per_shard(mib, 2, 300), 3 * mib + mib);
    }

    #[test]
    fn a_worker_volume_holds_every_shard_window() {
        // 2 shards x 1028 MiB: 8 + 3 GiB, below the 20 GiB floor.
        assert_eq!(worker_volume_gib(2, 128 << 20, 300), 20);
        // 24 shards with 15-minute windows: 24 x (1800 MiB x 1.5 + 128
        // MiB) = 67,872 MiB, 67 GiB rounded up.
        assert_eq!(worker_volume_gib(24, 128 << 20, 900), 8 + 67);
    }
}
