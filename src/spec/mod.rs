//! The environment spec: typed model, loading with positions, semantic checks.
//!
//! Owns: everything between `environments/<env>.yaml` and a valid `EnvSpec`.
//! Must not: render templates or call AWS.

pub mod diagnostic;
pub mod load;
pub mod model;
pub mod network;
pub mod reference;
pub mod validate;

pub use diagnostic::{Diagnostic, Locator, Position, Severity};
pub use load::{list_environments, load_environment, LoadedSpec};
pub use model::EnvSpec;

use std::path::Path;

/// Load and check one environment: Ok with warnings, Err with every problem.
pub fn load_valid(
    env_dir: &Path,
    env: &str,
) -> Result<(LoadedSpec, Vec<Diagnostic>), Vec<Diagnostic>> {
    let loaded = load_environment(env_dir, env)?;
    let found = validate::validate(&loaded.spec, &loaded.locator);
    if found.iter().any(|d| d.severity == Severity::Error) {
        Err(found)
    } else {
        Ok((loaded, found))
    }
}

/// JSON Schema of the spec, for editors (yaml-language-server) and docs.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(EnvSpec);
    serde_json::to_value(schema).expect("a JSON Schema always serialises")
}
