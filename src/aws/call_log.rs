//! `-v`: every AWS call a command makes, on standard error — service,
//! operation, HTTP status, outcome, duration and attempts (`-vv`: each
//! attempt too). An SDK interceptor on every client `Aws::connect` builds.
//!
//! Owns: the call log's lines. Must not: change a request or a response.

use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// Logs each call at `level` (1: one line per call; 2: and per attempt).
#[derive(Debug, Clone, Copy)]
pub struct CallLog {
    pub level: u8,
}

#[derive(Debug, Clone)]
struct Started(Instant);
impl Storable for Started {
    type Storer = StoreReplace<Self>;
}

#[derive(Debug, Clone)]
struct Attempts(u32);
impl Storable for Attempts {
    type Storer = StoreReplace<Self>;
}

fn operation(cfg: &ConfigBag) -> String {
    cfg.load::<Metadata>()
        .map(|m| format!("{}.{}", m.service(), m.name()))
        .unwrap_or_else(|| "(unnamed operation)".into())
}

fn status(ctx: &FinalizerInterceptorContextRef<'_>) -> String {
    ctx.response()
        .map(|r| format!("HTTP {}", r.status().as_u16()))
        .unwrap_or_else(|| "no response".into())
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "lakectl call log"
    }

    fn read_before_execution(
        &self,
        _ctx: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(Started(Instant::now()));
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let n = cfg.load::<Attempts>().map_or(0, |a| a.0);
        cfg.interceptor_state().store_put(Attempts(n + 1));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.level >= 2 {
            let n = cfg.load::<Attempts>().map_or(1, |a| a.0);
            eprintln!("aws:   {} attempt {n}: {}", operation(cfg), status(ctx));
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let ms = cfg
            .load::<Started>()
            .map_or(0, |s| s.0.elapsed().as_millis());
        let attempts = cfg.load::<Attempts>().map_or(0, |a| a.0);
        let outcome = match ctx.output_or_error() {
            Some(Err(_)) => "failed",
            _ => "ok",
        };
        eprintln!(
            "aws: {} {} {outcome} in {ms} ms ({attempts} attempt{})",
            operation(cfg),
            status(ctx),
            if attempts == 1 { "" } else { "s" }
        );
        Ok(())
    }
}
