//! What the CID of a Python function names.

use super::Limits;
use serde::{Deserialize, Serialize};

/// A Python function: its bundle, its unpacked requirements and the component built from both.
/// Field order is fixed so the same function always serialises to the same bytes (and CID).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonDef {
    /// Definition format version (1).
    pub ipfaas: u32,
    /// `"python"`.
    pub kind: String,
    /// CID of the bundle directory (function.py and friends).
    pub bundle: String,
    /// CID of the unpacked wheels (`site-packages`).
    pub site: String,
    /// CID of the WebAssembly component.
    pub component: String,
    /// Memory, fuel, time and output limits.
    pub limits: Limits,
    /// Which wrapper and toolchain built the component.
    pub builder: String,
    /// The wheels its requirements resolved to (absent when it has none, so functions
    /// without requirements keep their CIDs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lock: Vec<crate::pypkg::lock::Locked>,
}

impl PythonDef {
    /// A definition read from the store may come from anyone: its references must be CIDs,
    /// written canonically, before any of them names a path or a cache entry here.
    pub fn check(&self) -> std::result::Result<(), String> {
        for (field, v) in [
            ("bundle", &self.bundle),
            ("site", &self.site),
            ("component", &self.component),
        ] {
            match cid::Cid::try_from(v.as_str()) {
                Ok(c) if c.to_string() == *v => {}
                _ => return Err(format!("`{field}` is not a CID: {v:?}")),
            }
        }
        Ok(())
    }
}
