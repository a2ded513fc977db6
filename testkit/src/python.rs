//! Python packages from PyPI for tests that check the node with third-party clients.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One venv made at a time (tests of one binary run in parallel).
static MAKING: Mutex<()> = Mutex::new(());

/// The `python` of a virtualenv at `dir` with `packages` installed from PyPI; made once (a
/// stamp naming the packages marks it done), so later runs reuse it.
pub fn venv(dir: &Path, packages: &[&str]) -> PathBuf {
    let _one = MAKING.lock().unwrap_or_else(|p| p.into_inner());
    let python = dir.join("bin/python");
    let stamp = dir.join(packages.join(" ").replace('/', "_"));
    if stamp.exists() {
        return python;
    }
    let _ = std::fs::remove_dir_all(dir);
    let st = Command::new("python3")
        .args(["-m", "venv"])
        .arg(dir)
        .status()
        .expect("python3 -m venv");
    assert!(st.success(), "python3 -m venv failed");
    let st = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(packages)
        .status()
        .expect("pip install");
    assert!(
        st.success(),
        "pip install {packages:?} failed (PyPI reachable?)"
    );
    std::fs::write(&stamp, b"").unwrap();
    python
}
