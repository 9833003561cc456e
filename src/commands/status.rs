//! `lakectl status ENV`: each stack's state and last update, and each
//! component's health from its own API. Exit 1 unless every stack is
//! complete and every component ok.

use serde::Serialize;

use super::{CommandError, Global, Report, Session};
use crate::deploy::{deployed_stacks, outputs_by_id, DeployError};
use crate::inspect::health::{self, Component, Verdict};
use crate::inspect::status::{self, StackStatus};

#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    pub env: String,
}

#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub stacks: Vec<StackStatus>,
    pub components: Vec<Component>,
}

impl StatusArgs {
    pub fn run(&self, global: &Global) -> Result<StatusReport, CommandError> {
        let session = Session::open(global, &self.env)?;
        let (aws, rendered) = (&session.aws, &session.rendered);
        let report = session.run(async {
            // One read of what is deployed serves the rows and the health checks.
            let deployed = deployed_stacks(aws, rendered).await?;
            let stacks = status::rows(rendered, &deployed);
            let parameters = deployed
                .iter()
                .map(|(id, d)| (id.clone(), d.parameters.clone()))
                .collect();
            let components = health::components(
                aws,
                rendered,
                &outputs_by_id(&deployed),
                &parameters,
                &session.spec,
            )
            .await?;
            Ok::<_, DeployError>(StatusReport { stacks, components })
        })?;
        Ok(report)
    }
}

impl std::fmt::Display for StatusReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n{}",
            status::table(&self.stacks),
            health::table(&self.components)
        )
    }
}

impl Report for StatusReport {
    fn exit_code(&self) -> u8 {
        let healthy = self.stacks.iter().all(|r| r.ok)
            && self.components.iter().all(|c| c.verdict == Verdict::Ok);
        u8::from(!healthy)
    }
}
