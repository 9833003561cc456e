//! Watching a stack until CloudFormation is done with it: its events as
//! they come (only the watched operation's), its final state, the failures.
//!
//! Owns: the event watch loop, shared by `up` and `down`. Must not: start
//! operations.

use super::cfn::{Deployed, Event, EventMark};
use super::progress::Progress;
use super::DeployError;
use crate::aws::Aws;

/// Keep the events of the watched operation: those carrying its token, and
/// those carrying none (an emulator's, a console operation's). Another
/// operation's (a concurrent run) are not this watch's to report.
fn ours(events: &mut Vec<Event>, mark: &EventMark) {
    if let Some(token) = &mark.token {
        events.retain(|e| e.token.as_ref().is_none_or(|t| t == token));
    }
}

/// How often a final status is read again before the operation has shown
/// itself (an event, or an in-progress status).
const UNCONFIRMED_READS: usize = 3;

/// Report events of stack `id` from `mark` until it leaves `*_IN_PROGRESS`;
/// returns its final state (`None` once deleted) and the failed events seen.
pub async fn watch_from(
    aws: &Aws,
    progress: &Progress,
    id: &str,
    name: &str,
    mut mark: EventMark,
) -> Result<(Option<Deployed>, Vec<Event>), DeployError> {
    let mut failures = Vec::new();
    // A final status read before the operation shows (no event yet, never
    // seen in progress) may be the state from before it: DescribeStacks is
    // eventually consistent. Such a status is read again a few times.
    let mut started = false;
    let mut unconfirmed = 0;
    loop {
        let mut fresh = aws
            .cfn
            .events_since(id, &mark.since, &mut mark.seen)
            .await?;
        ours(&mut fresh, &mark);
        started |= !fresh.is_empty();
        for e in &fresh {
            progress.event(name, e);
            if e.failed() {
                failures.push(e.clone());
            }
        }
        let state = aws.cfn.describe(id).await?;
        match state {
            Some(d) if d.in_progress() => {
                started = true;
                tokio::time::sleep(aws.cfn.poll).await
            }
            Some(_) if !started && unconfirmed < UNCONFIRMED_READS => {
                unconfirmed += 1;
                tokio::time::sleep(aws.cfn.poll).await
            }
            other => {
                // Events written between the last read and the final state.
                let mut last = aws
                    .cfn
                    .events_since(id, &mark.since, &mut mark.seen)
                    .await?;
                ours(&mut last, &mark);
                for e in last {
                    progress.event(name, &e);
                    if e.failed() {
                        failures.push(e);
                    }
                }
                return Ok((other, failures));
            }
        }
    }
}

/// Wait for whatever CloudFormation is doing to stack `id` now.
pub async fn watch(
    aws: &Aws,
    progress: &Progress,
    id: &str,
    name: &str,
) -> Result<Option<Deployed>, DeployError> {
    let mark = aws.cfn.event_mark(id).await?;
    Ok(watch_from(aws, progress, id, name, mark).await?.0)
}
