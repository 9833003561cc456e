//! Live progress of a deploy or delete: a compact per-stack view on a
//! terminal (indicatif), plain timestamped lines otherwise (CI, pipes).
//!
//! Owns: how progress looks. Must not: decide anything; callers report
//! what happened and keep their own results.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::cfn::{self, Event};

/// Where progress goes.
pub struct Progress {
    live: Option<Live>,
    /// `-q`: nothing is shown (prompts still are).
    quiet: bool,
}

struct Live {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Progress {
    /// A live view on a terminal unless `CI` is set or `plain` is asked for.
    pub fn new(plain: bool) -> Progress {
        let interactive =
            !plain && std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        Progress {
            live: interactive.then(|| Live {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bars: Mutex::new(HashMap::new()),
            }),
            quiet: false,
        }
    }

    /// The same, showing nothing when `quiet` (`-q`).
    pub fn quiet(mut self, quiet: bool) -> Progress {
        self.quiet = quiet;
        self
    }

    /// Whether a person is watching (prompts are allowed).
    pub fn interactive(&self) -> bool {
        self.live.is_some()
    }

    /// A line that stays (plain: timestamped).
    pub fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.live {
            Some(live) => {
                let _ = live.multi.println(text);
            }
            None => eprintln!("{} {text}", cfn::rfc3339(&cfn::now())),
        }
    }

    /// A stack starts work (`what`: "creating", "updating", "deleting"...).
    pub fn start(&self, stack: &str, what: &str) {
        if self.quiet {
            return;
        }
        match &self.live {
            Some(live) => {
                let bar = live.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:32} {wide_msg} {elapsed}")
                        .expect("static template"),
                );
                bar.set_prefix(stack.to_string());
                bar.set_message(what.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                live.bars
                    .lock()
                    .expect("progress lock")
                    .insert(stack.to_string(), bar);
            }
            None => self.line(&format!("{stack}: {what}")),
        }
    }

    /// A resource event of a stack at work.
    pub fn event(&self, stack: &str, e: &Event) {
        if self.quiet {
            return;
        }
        let reason = e
            .reason
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        let text = format!("{} {} {}{reason}", e.logical_id, e.resource_type, e.status);
        match &self.live {
            Some(live) => {
                if let Some(bar) = live.bars.lock().expect("progress lock").get(stack) {
                    bar.set_message(text.clone());
                }
                if e.failed() {
                    let _ = live.multi.println(format!("{stack}: {text}"));
                }
            }
            None => self.line(&format!("{stack}: {text}")),
        }
    }

    /// A stack is done; `outcome` says how.
    pub fn finish(&self, stack: &str, outcome: &str) {
        if self.quiet {
            return;
        }
        match &self.live {
            Some(live) => {
                if let Some(bar) = live.bars.lock().expect("progress lock").remove(stack) {
                    bar.finish_and_clear();
                }
                let _ = live.multi.println(format!("{stack}: {outcome}"));
            }
            None => self.line(&format!("{stack}: {outcome}")),
        }
    }
}
