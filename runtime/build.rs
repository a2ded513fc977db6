//! Finds the Python standard library that componentize-py embeds, so the runtime can mount the
//! same files read-only for imports at run time. componentize-py keeps its copy private; the
//! crate ships it as `python-lib.tar.zst` in its source directory.

use std::path::PathBuf;

const CRATE: &str = "componentize-py-0.25.1";
const FILE: &str = "python-lib.tar.zst";

fn main() {
    println!("cargo:rerun-if-env-changed=IPFAAS_PYTHON_LIB");
    println!("cargo:rerun-if-env-changed=CARGO_HOME");
    let found = std::env::var_os("IPFAAS_PYTHON_LIB")
        .map(PathBuf::from)
        .or_else(search_registry)
        .unwrap_or_else(|| {
            panic!(
                "cannot find {CRATE}/{FILE} in cargo's registry; set IPFAAS_PYTHON_LIB to its path"
            )
        });
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join(FILE);
    std::fs::copy(&found, &out).unwrap_or_else(|e| panic!("copy {}: {e}", found.display()));
    println!("cargo:rerun-if-changed={}", found.display());
}

fn search_registry() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    // vendored sources sit beside the workspace
    let vendor = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?)
        .join("../vendor")
        .join(CRATE.trim_end_matches("-0.25.1"))
        .join(FILE);
    if vendor.is_file() {
        return Some(vendor);
    }
    for index in std::fs::read_dir(home.join("registry/src")).ok()? {
        let candidate = index.ok()?.path().join(CRATE).join(FILE);
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    None
}
