//! Read-only inspection of a deployed environment: nothing here changes a
//! stack or starts work.
//!
//! Rooms: `status` (each stack's state, and the outputs), `health` (each
//! component's health from its own API), `preflight` (what would make a
//! first deploy fail, checked before it; `vcpu_quota` is one of its checks), `drift` (CloudFormation drift
//! detection). Must not: create, update or delete anything (`deploy`), or
//! print (reports are returned).

pub mod drift;
pub mod health;
pub mod preflight;
pub mod status;
pub mod vcpu_quota;
