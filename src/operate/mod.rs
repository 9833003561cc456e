//! Operations that start work on a deployed environment without changing
//! its stacks.
//!
//! Rooms: `compact` (a compaction run: the deployed state machine's EMR
//! step running lake-compact, or only the partition registration). Must
//! not: change stacks (`deploy`).

pub mod compact;
