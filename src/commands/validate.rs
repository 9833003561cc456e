//! `lakectl validate [ENV...]`: check specs (all of them when none is
//! named); problems as file:line:col. Exit 1 unless every spec is valid.

use std::fmt;

use serde::Serialize;

use super::{CommandError, Global, Report};
use crate::spec::{self, Diagnostic};

#[derive(Debug, Clone, clap::Args)]
pub struct ValidateArgs {
    /// Environments to check (default: every `*.yaml` in --env-dir).
    pub envs: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ValidateReport {
    pub valid: Vec<String>,
    pub diagnostics: Vec<Diagnostic>,
    #[serde(skip)]
    checked: usize,
}

impl ValidateArgs {
    pub fn run(&self, global: &Global) -> Result<ValidateReport, CommandError> {
        let envs = if self.envs.is_empty() {
            spec::list_environments(&global.env_dir).map_err(CommandError::SpecDir)?
        } else {
            self.envs.clone()
        };
        if envs.is_empty() {
            return Err(CommandError::NoSpecs {
                dir: global.env_dir.display().to_string(),
            });
        }
        let mut diagnostics = Vec::new();
        let mut valid = Vec::new();
        for env in &envs {
            match spec::load_valid(&global.env_dir, env) {
                Ok((_, warnings)) => {
                    valid.push(env.clone());
                    diagnostics.extend(warnings);
                }
                Err(found) => diagnostics.extend(found),
            }
        }
        Ok(ValidateReport {
            valid,
            diagnostics,
            checked: envs.len(),
        })
    }
}

impl fmt::Display for ValidateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for env in &self.valid {
            writeln!(f, "{env}: ok")?;
        }
        Ok(())
    }
}

impl Report for ValidateReport {
    fn exit_code(&self) -> u8 {
        u8::from(self.valid.len() != self.checked)
    }
    fn notes(&self) -> Vec<String> {
        self.diagnostics.iter().map(|d| d.to_string()).collect()
    }
}
