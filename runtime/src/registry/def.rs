//! Definitions: what a function CID names, for either kind of function. A definition is data
//! that may come from any peer, so reading one checks it: a strict schema (unknown fields
//! refused), references that are canonical CIDs, limits that are real bounds.

use crate::error::{Error, Result};
use crate::executor::docker::DockerDef;
use crate::executor::wasm::PythonDef;
use serde::Serialize;

/// Either kind of function.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Def {
    /// Python compiled to WebAssembly.
    Python(PythonDef),
    /// A Docker image.
    Docker(DockerDef),
}

impl Def {
    /// `"python"` or `"docker"`.
    pub fn kind(&self) -> &str {
        match self {
            Def::Python(_) => "python",
            Def::Docker(_) => "docker",
        }
    }

    /// Whether the same input always gives the same output: a pure function's results are
    /// cached and it may run for peers. Python functions are deterministic by construction;
    /// Docker images are not assumed to be.
    pub fn is_pure(&self) -> bool {
        matches!(self, Def::Python(_))
    }

    /// The definition's bytes (its CID is the function CID).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(crate::error::io_err)
    }

    /// Reads and checks the definition stored at `function_cid`.
    pub fn parse(function_cid: &str, bytes: &[u8]) -> Result<Self> {
        let not_def = |e: String| {
            Error::InvalidInput(format!(
                "{function_cid} is not an ipfaas function definition ({e})"
            ))
        };
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| not_def(e.to_string()))?;
        match (v["ipfaas"].as_u64(), v["kind"].as_str()) {
            (Some(1), Some("python")) => {
                let d: PythonDef = serde_json::from_value(v).map_err(|e| not_def(e.to_string()))?;
                d.check().map_err(not_def)?;
                Ok(Def::Python(d))
            }
            (Some(1), Some("docker")) => {
                let d: DockerDef = serde_json::from_value(v).map_err(|e| not_def(e.to_string()))?;
                d.check().map_err(not_def)?;
                Ok(Def::Docker(d))
            }
            (_, kind) => Err(not_def(format!("unsupported kind {kind:?}"))),
        }
    }
}
