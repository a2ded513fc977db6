//! The executables that baselines run, resolved to the real program before anything is timed.
//!
//! A name looked up on `PATH` may be a wrapper: with pyenv, `python3` is a bash script that
//! costs tens of milliseconds before the interpreter starts, which once inflated a baseline
//! several times. So a baseline runs the resolved file, checks that it is a native (ELF)
//! executable, and the bench prints its path and version beside the number.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A resolved native executable and what it says its version is.
pub struct Exe {
    pub path: PathBuf,
    pub version: String,
}

impl std::fmt::Display for Exe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, {}", self.path.display(), self.version)
    }
}

/// `name` on `PATH`, symlinks resolved.
fn which(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if p.is_file() {
            return p
                .canonicalize()
                .with_context(|| format!("resolving {}", p.display()));
        }
    }
    bail!("{name} is not on PATH")
}

/// Fails unless `p` is an ELF file: a script (a shim) would be timed with its interpreter.
fn native(p: &Path) -> Result<()> {
    let mut magic = [0u8; 4];
    use std::io::Read;
    std::fs::File::open(p)?.read_exact(&mut magic)?;
    if magic != *b"\x7fELF" {
        bail!(
            "{} is not a native executable (a shell shim?); a baseline must time the program itself",
            p.display()
        );
    }
    Ok(())
}

/// The Python interpreter that `python3` on `PATH` ends up running (`sys.executable`).
pub fn python3() -> Result<Exe> {
    let o = Command::new(which("python3")?)
        .args([
            "-c",
            "import sys; print(sys.executable); print(sys.version.split()[0])",
        ])
        .output()
        .context("python3")?;
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut lines = text.lines();
    let (Some(exe), Some(version)) = (lines.next(), lines.next()) else {
        bail!("python3 did not say where it is: {text:?}");
    };
    let path = Path::new(exe).canonicalize()?;
    native(&path)?;
    Ok(Exe {
        path,
        version: format!("Python {version}"),
    })
}

/// A program on `PATH` that prints its version with `--version` (first line kept).
pub fn tool(name: &str) -> Result<Exe> {
    let path = which(name)?;
    native(&path)?;
    let o = Command::new(&path).arg("--version").output()?;
    let version = String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    Ok(Exe { path, version })
}
