//! The one scheduler of stack operations: each job starts once the jobs it
//! must wait for are done, at most `concurrency` at a time, independent
//! ones in parallel. `up` waits for a stack's dependencies, `down` for its
//! dependents.
//!
//! Owns: ordering, the concurrency bound, stopping new starts at the first
//! failure (jobs already at work are waited for: CloudFormation carries on
//! with them either way), Ctrl-C. Must not: know what a job does.

use std::collections::{BTreeSet, HashSet};
use std::future::Future;

use tokio::task::JoinSet;

use super::DeployError;

/// One operation on one stack.
#[derive(Debug, Clone)]
pub struct Job {
    /// The stack's id (`network`, `ingest`, ...).
    pub id: String,
    /// Its CloudFormation name, for messages.
    pub name: String,
    /// Jobs that must be done first; ids not among the jobs count as done.
    pub after: Vec<String>,
}

/// Run `jobs` (ready ones in the order given) with `work`; returns each
/// job's result in the order they finished. One failure is returned as it
/// is, several as `DeployError::Several`; Ctrl-C stops waiting and names
/// the stacks still at work (`DeployError::Interrupted`).
pub async fn run<T, W, F>(
    jobs: Vec<Job>,
    concurrency: usize,
    work: W,
) -> Result<Vec<(String, T)>, DeployError>
where
    T: Send + 'static,
    W: Fn(&Job) -> F,
    F: Future<Output = Result<T, DeployError>> + Send + 'static,
{
    let ids: HashSet<String> = jobs.iter().map(|j| j.id.clone()).collect();
    let mut pending = jobs;
    let mut done: HashSet<String> = HashSet::new();
    let mut at_work: BTreeSet<(String, String)> = BTreeSet::new();
    let mut running: JoinSet<(String, String, Result<T, DeployError>)> = JoinSet::new();
    let mut finished = Vec::new();
    let mut failures: Vec<DeployError> = Vec::new();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        if failures.is_empty() {
            let free = concurrency.max(1).saturating_sub(running.len());
            let ready: Vec<Job> = pending
                .iter()
                .filter(|j| j.after.iter().all(|a| done.contains(a) || !ids.contains(a)))
                .take(free)
                .cloned()
                .collect();
            for job in ready {
                pending.retain(|p| p.id != job.id);
                at_work.insert((job.id.clone(), job.name.clone()));
                let task = work(&job);
                running.spawn(async move { (job.id, job.name, task.await) });
            }
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = running.join_next() => {
                let Some(joined) = joined else { break };
                let (id, name, result) = joined.expect("a stack task panicked");
                at_work.remove(&(id.clone(), name));
                match result {
                    Ok(value) => {
                        done.insert(id.clone());
                        finished.push((id, value));
                    }
                    Err(e) => failures.push(e),
                }
            }
            _ = &mut ctrl_c => {
                running.abort_all();
                return Err(DeployError::Interrupted(
                    at_work.into_iter().map(|(_, name)| name).collect(),
                ));
            }
        }
    }
    match failures.len() {
        0 => Ok(finished),
        1 => Err(failures.remove(0)),
        _ => Err(DeployError::Several(failures)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn job(id: &str, after: &[&str]) -> Job {
        Job {
            id: id.into(),
            name: format!("lake-{id}"),
            after: after.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[tokio::test]
    async fn jobs_start_after_what_they_wait_for_within_the_bound() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let live = Arc::new(Mutex::new((0usize, 0usize)));
        let jobs = vec![
            job("app", &["net", "db"]),
            job("net", &[]),
            job("db", &["net"]),
            job("logs", &["gone"]),
        ];
        let finished = run(jobs, 2, |j| {
            let (log, live, id) = (Arc::clone(&log), Arc::clone(&live), j.id.clone());
            async move {
                {
                    let mut l = live.lock().unwrap();
                    l.0 += 1;
                    l.1 = l.1.max(l.0);
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                log.lock().unwrap().push(id.clone());
                live.lock().unwrap().0 -= 1;
                Ok(id.len())
            }
        })
        .await
        .unwrap();
        let log = log.lock().unwrap().clone();
        let at = |id: &str| log.iter().position(|x| x == id).unwrap();
        assert!(at("net") < at("db") && at("db") < at("app"), "{log:?}");
        assert_eq!(finished.len(), 4);
        assert!(finished.contains(&("logs".to_string(), 4)));
        assert_eq!(
            live.lock().unwrap().1,
            2,
            "at most two at a time, and two did run together"
        );
    }

    #[tokio::test]
    async fn a_failure_stops_new_starts_and_several_are_all_reported() {
        let started = Arc::new(Mutex::new(Vec::new()));
        let jobs = vec![job("a", &[]), job("b", &[]), job("c", &["a"])];
        let err = run(jobs, 2, |j| {
            let (started, id) = (Arc::clone(&started), j.id.clone());
            async move {
                started.lock().unwrap().push(id.clone());
                Err::<(), _>(DeployError::Interrupted(vec![id]))
            }
        })
        .await
        .unwrap_err();
        assert_eq!(*started.lock().unwrap(), ["a", "b"], "c never starts");
        match err {
            DeployError::Several(all) => assert_eq!(all.len(), 2),
            other => panic!("{other}"),
        }
    }
}
