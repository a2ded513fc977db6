//! Test harness: runs the real `ipfaas` binary on a temporary repo. The helpers themselves live
//! in `ipfaas-testkit` (shared with `ipfaas-bench`); this adds what only the gateway's tests
//! know: where cargo built the binary, and the CLI.
#![allow(dead_code)]

pub use ipfaas_testkit::*;
use std::path::Path;
use std::process::{Command, Output};

/// The `ipfaas` binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_ipfaas");

/// Starting the test binary's server (a trait, as `Server` is the testkit's).
pub trait Start {
    /// `ipfaas serve --no-examples` with a loopback swarm address, plus `extra`; returns once
    /// it answers.
    fn start(repo: &Path, extra: &[&str]) -> Server;
    /// Like `start`, but `serve` deploys the bundled example functions.
    fn start_with_examples(repo: &Path) -> Server;
}

impl Start for Server {
    fn start(repo: &Path, extra: &[&str]) -> Server {
        let mut args = vec!["--no-examples"];
        args.extend_from_slice(extra);
        spawn(repo, &args)
    }

    fn start_with_examples(repo: &Path) -> Server {
        spawn(repo, &[])
    }
}

fn spawn(repo: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--swarm-listen", "/ip4/127.0.0.1/tcp/0"];
    args.extend_from_slice(extra);
    Server::spawn(Path::new(BIN), repo, &args).expect("start ipfaas serve")
}

/// Runs the CLI with `--repo` after the subcommand (the option is global).
pub fn cli(repo: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--repo")
        .arg(repo)
        .env("IPFAAS_LOG", "warn")
        .output()
        .expect("run ipfaas")
}

/// Runs `cmd`, asserting success (its stderr in the failure); its output.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run the command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// [`cli`], asserting success; its stdout.
pub fn cli_ok(repo: &Path, args: &[&str]) -> String {
    let out = cli(repo, args);
    assert!(
        out.status.success(),
        "ipfaas {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Starts a node with a 20 s fetch timeout (unless `extra` sets one), joined to `bootstrap`.
pub fn start_node(repo: &Path, bootstrap: Option<&str>, extra: &[&str]) -> Server {
    let mut args = vec![];
    if !extra.contains(&"--fetch-timeout") {
        args.extend(["--fetch-timeout", "20s"]);
    }
    if let Some(b) = bootstrap {
        args.extend(["--bootstrap", b]);
    }
    args.extend_from_slice(extra);
    Server::start(repo, &args)
}

/// A server shared by the tests of one test binary (see [`Server::spawn_shared`]): options as
/// for [`Start::start`], on a repo of its own.
pub fn start_shared(extra: &[&str]) -> Server {
    let mut args = vec!["--swarm-listen", "/ip4/127.0.0.1/tcp/0", "--no-examples"];
    args.extend_from_slice(extra);
    Server::spawn_shared(Path::new(BIN), &args).expect("start a shared ipfaas serve")
}
