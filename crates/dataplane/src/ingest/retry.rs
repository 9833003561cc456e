//! Patience with AWS, one policy for the data plane: which errors retrying
//! can fix (throttling, a 5xx, a timeout, a dropped connection) and how
//! long to keep trying (0.5 s doubling to 20 s, for up to five minutes
//! without a success).
//!
//! Owns: the classification and the back-off. Must not: decide what to do
//! once it gives up (the callers do).

use std::time::{Duration, Instant};

use anyhow::Result;

/// Give up after AWS has failed this long without a success in between.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(300);

/// Whether retrying can fix `e`: throttling, a 5xx, a timeout, a dropped
/// connection. (The SDK already retried a few times; this is the longer
/// patience of a worker that must not drop its windows over a blip.)
pub fn is_transient(e: &anyhow::Error) -> bool {
    // The SDK error's own structure (`{:#?}`: variant names, error codes,
    // the HTTP status), whitespace removed so pretty-printing cannot split
    // a marker.
    let text: String = format!("{e:#?}").split_whitespace().collect();
    [
        "DispatchFailure",
        "TimeoutError",
        "ResponseError",
        "ProvisionedThroughputExceeded",
        "ThrottlingException",
        "Throttling",
        "LimitExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "KMSThrottling",
        "StatusCode(500",
        "StatusCode(502",
        "StatusCode(503",
        "StatusCode(504",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// Patience with AWS: the pause before the next attempt after an error
/// retrying can fix, 0.5 s doubling to 20 s; none (give up) for any other
/// error, or once `GIVE_UP_AFTER` has passed without a success. One policy
/// for the worker's rounds, its lease writes and its shard reads.
pub struct Backoff {
    failing_since: Option<Instant>,
    pause: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff {
            failing_since: None,
            pause: Duration::from_millis(500),
        }
    }

    pub fn after(&mut self, e: &anyhow::Error) -> Option<Duration> {
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        if !is_transient(e) || since.elapsed() >= GIVE_UP_AFTER {
            return None;
        }
        let pause = self.pause;
        self.pause = (self.pause * 2).min(Duration::from_secs(20));
        Some(pause)
    }

    pub fn succeeded(&mut self) {
        *self = Backoff::new();
    }
}

/// Run `f` until it succeeds or fails with what `Backoff` gives up on.
pub fn with_retries<T>(what: &str, mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let mut backoff = Backoff::new();
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) => match backoff.after(&e) {
                Some(pause) => {
                    eprintln!("lake-ingest: {what}: {e:#}; retrying in {pause:?}");
                    std::thread::sleep(pause);
                }
                None => return Err(e.context(what.to_string())),
            },
        }
    }
}
