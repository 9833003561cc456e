//! A shard lease as a fence on the lake: before every request that could
//! change the lake (an upload's create, part and completion, a delete), a
//! worker checks that it still holds the shard, by the age of the last
//! lease write that proved it (a take or a renewal, timed from when it was
//! *sent*). Past `2/3 × failover` nothing starts; a renewal refused
//! (another owner) stops the shard for good. Ages are measured on the
//! boot clock (`Stamp`, CLOCK_BOOTTIME), which keeps counting while the
//! machine is suspended or hibernated: a worker that wakes up knows its
//! fence closed.
//!
//! Why this holds with the rest of the protocol (`consumer`):
//! - A successor takes a lease only when its counter stood still for the
//!   failover (or right after a steal, and then it waits the failover out
//!   before touching anything, and never gives the lease back before), with
//!   the larger of its own failover and the one the owner recorded in the
//!   lease: by then this fence refused every new request for at least
//!   `failover / 3`.
//! - A request this fence let through may still land late (a paused
//!   process, a held connection). Uploads are multipart, and the successor
//!   aborts them before it cleans up: a late part or completion fails. A
//!   late create yields an upload nobody completes (its next request comes
//!   after the fence closed). Deletes only ever target keys of an older
//!   lease epoch, which nobody writes again.
//!
//! Owns: the fence's clock and state. Must not: write leases (the
//! heartbeat in `consumer` does, and reports here) or touch the store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A point on the boot clock (CLOCK_BOOTTIME: monotonic, and counting
/// while the machine is suspended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(Duration);

impl Stamp {
    pub fn now() -> Stamp {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid clock id and a valid out-pointer.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
        assert_eq!(rc, 0, "CLOCK_BOOTTIME is available on Linux");
        Stamp(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }

    pub fn elapsed(self) -> Duration {
        Stamp::now().0.saturating_sub(self.0)
    }

    pub fn since(self, earlier: Stamp) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl std::ops::Add<Duration> for Stamp {
    type Output = Stamp;
    fn add(self, d: Duration) -> Stamp {
        Stamp(self.0 + d)
    }
}

/// Why a write was refused: the shard may belong to another worker now.
#[derive(Debug, thiserror::Error)]
#[error("{shard}: {reason}; this worker writes nothing more of it")]
pub struct Fenced {
    pub shard: String,
    pub reason: String,
}

pub struct LeaseFence {
    shard: String,
    failover: Duration,
    /// When the last lease write that proved ownership was sent.
    renewed: Mutex<Stamp>,
    lost: AtomicBool,
}

impl LeaseFence {
    /// The fence of a lease just taken by a write sent at `taken`.
    pub fn new(shard: &str, failover: Duration, taken: Stamp) -> Arc<LeaseFence> {
        Arc::new(LeaseFence {
            shard: shard.to_string(),
            failover,
            renewed: Mutex::new(taken),
            lost: AtomicBool::new(false),
        })
    }

    /// Past this age of the last renewal no request starts.
    pub fn limit(&self) -> Duration {
        self.failover * 2 / 3
    }

    /// A renewal sent at `sent` succeeded.
    pub fn renewed(&self, sent: Stamp) {
        let mut at = self.renewed.lock().expect("fence lock");
        if sent > *at {
            *at = sent;
        }
    }

    /// A renewal was refused: another worker owns the shard.
    pub fn lose(&self) {
        self.lost.store(true, Ordering::SeqCst);
    }

    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Age of the last proof of ownership.
    pub fn age(&self) -> Duration {
        self.renewed.lock().expect("fence lock").elapsed()
    }

    /// Ok when a request may start now. A stale renewal (DynamoDB slow or
    /// unreachable) is waited for up to a failover: a later successful
    /// renewal proves nobody took the lease meanwhile (it is conditional on
    /// this owner). Refused for good once the lease is lost.
    pub fn check(&self) -> Result<(), Fenced> {
        let start = Stamp::now();
        loop {
            if self.is_lost() {
                return Err(self.refused("the lease was taken by another worker".into()));
            }
            let age = self.age();
            if age < self.limit() {
                return Ok(());
            }
            if start.elapsed() >= self.failover {
                return Err(self.refused(format!(
                    "the lease was last renewed {age:.1?} ago, past the fence of {:.1?}",
                    self.limit()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn refused(&self, reason: String) -> Fenced {
        Fenced {
            shard: self.shard.clone(),
            reason,
        }
    }

    /// This fence as the store's check before every request.
    pub fn for_store(self: &Arc<Self>) -> crate::store::Fence {
        let fence = self.clone();
        Arc::new(move || fence.check().map_err(anyhow::Error::from))
    }
}

/// Whether `e` (or any cause in its chain) is a fence's refusal.
pub fn is_fenced(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<Fenced>().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_opens_on_renewals_and_closes_for_good_when_lost() {
        let failover = Duration::from_millis(300);
        let fence = LeaseFence::new("s", failover, Stamp::now());
        assert!(fence.check().is_ok());
        // Stale, and no renewal comes: refused after waiting a failover.
        std::thread::sleep(fence.limit());
        let started = Stamp::now();
        let e = fence.check().unwrap_err();
        assert!(started.elapsed() >= failover, "{:?}", started.elapsed());
        assert!(e.to_string().contains("last renewed"), "{e}");
        // A renewal sent now reopens it; an older one does not move it back.
        let now = Stamp::now();
        fence.renewed(now);
        fence.renewed(Stamp(now.0 - Duration::from_secs(5)));
        assert!(fence.check().is_ok());
        fence.lose();
        let e = anyhow::Error::from(fence.check().unwrap_err()).context("publishing x");
        assert!(is_fenced(&e), "{e:#}");
        assert!(format!("{e:#}").contains("taken by another worker"));
    }

    #[test]
    fn a_stale_fence_waits_for_a_renewal_that_comes() {
        let fence = LeaseFence::new("s", Duration::from_millis(600), Stamp::now());
        std::thread::sleep(fence.limit());
        let f = fence.clone();
        let renewer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            f.renewed(Stamp::now());
        });
        assert!(fence.check().is_ok());
        renewer.join().unwrap();
    }
}
