//! Scripted CloudFormation answers, for unit tests of the deployer's state
//! machine in the states moto never produces (termination protection
//! refusing a delete, `DELETE_FAILED` with resources that cannot go, a
//! retried call that had succeeded, …). Each step names the call the
//! deployer must make next and the answer CloudFormation's documentation
//! says it gives; the test names the document. This is not a stand-in for
//! the AWS API: everything moto can do is tested on moto.
//!
//! Owns: the queue of expected calls and their answers, and the log of the
//! calls made (with their arguments, tokens included). Must not: decide
//! anything for the deployer; an unexpected call fails the test at once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::cfn::{ChangeSetOutcome, Deployed, Event, EventMark};
use super::DeployError;
use crate::aws::AwsError;

/// What CloudFormation answers to one call.
#[derive(Debug)]
pub enum Answer {
    /// DescribeStacks: the stack, or none ("does not exist").
    Stack(Option<Deployed>),
    /// A call that returns nothing the deployer reads.
    Done,
    /// An API error: its code and message.
    Fail(&'static str, String),
    /// DescribeStackEvents for a mark: an empty history.
    Mark,
    /// DescribeStackEvents: these events, newest first as CloudFormation sends them.
    Events(Vec<Event>),
    /// GetTemplate, or GetStackPolicy (empty: no policy).
    Template(String),
    /// DescribeChangeSet until it is ready.
    ChangeSet(ChangeSetOutcome),
}

/// One expected call (its log line starts with `call`) and the answer.
#[derive(Debug)]
pub struct Step {
    pub call: String,
    pub answer: Answer,
}

/// `call` answered with `answer`.
pub fn step(call: impl Into<String>, answer: Answer) -> Step {
    Step {
        call: call.into(),
        answer,
    }
}

/// The steps still expected and the calls made so far.
#[derive(Debug, Default)]
pub struct Script {
    steps: Mutex<VecDeque<Step>>,
    log: Mutex<Vec<String>>,
}

impl Script {
    pub fn new(steps: Vec<Step>) -> Arc<Script> {
        Arc::new(Script {
            steps: Mutex::new(steps.into()),
            log: Mutex::new(Vec::new()),
        })
    }

    /// The answer to `call` (its full log line); panics when the deployer
    /// makes a call the script does not expect next.
    pub(super) fn answer(&self, call: String) -> Answer {
        self.log.lock().expect("lock").push(call.clone());
        let next = self.steps.lock().expect("lock").pop_front();
        match next {
            Some(s) if call.starts_with(&s.call) => s.answer,
            Some(s) => panic!(
                "the deployer called `{call}`; the script expected `{}`\ncalls so far:\n  {}",
                s.call,
                self.calls().join("\n  ")
            ),
            None => panic!(
                "the deployer called `{call}` after the script ended\ncalls so far:\n  {}",
                self.calls().join("\n  ")
            ),
        }
    }

    /// Every call made, in order, with its arguments.
    pub fn calls(&self) -> Vec<String> {
        self.log.lock().expect("lock").clone()
    }

    /// Steps the deployer never reached.
    pub fn left(&self) -> Vec<String> {
        self.steps
            .lock()
            .expect("lock")
            .iter()
            .map(|s| s.call.clone())
            .collect()
    }
}

impl Answer {
    fn fail<T>(self, call: &str) -> Result<T, DeployError> {
        match self {
            Answer::Fail(code, message) => Err(AwsError::service(call, code, &message).into()),
            other => panic!("`{call}` was answered with {other:?}"),
        }
    }

    pub(super) fn stack(self, call: &str) -> Result<Option<Deployed>, DeployError> {
        match self {
            Answer::Stack(s) => Ok(s),
            other => other.fail(call),
        }
    }

    pub(super) fn done(self, call: &str) -> Result<(), DeployError> {
        match self {
            Answer::Done => Ok(()),
            other => other.fail(call),
        }
    }

    pub(super) fn mark(self, call: &str) -> Result<EventMark, DeployError> {
        match self {
            Answer::Mark => Ok(EventMark::beginning()),
            other => other.fail(call),
        }
    }

    pub(super) fn events(self, call: &str) -> Result<Vec<Event>, DeployError> {
        match self {
            Answer::Events(mut e) => {
                e.reverse();
                Ok(e)
            }
            other => other.fail(call),
        }
    }

    pub(super) fn template(self, call: &str) -> Result<String, DeployError> {
        match self {
            Answer::Template(t) => Ok(t),
            other => other.fail(call),
        }
    }

    pub(super) fn change_set(self, call: &str) -> Result<ChangeSetOutcome, DeployError> {
        match self {
            Answer::ChangeSet(c) => Ok(c),
            other => other.fail(call),
        }
    }
}
