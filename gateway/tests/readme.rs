//! The README's walk-throughs run as written against a real server, so the documentation
//! cannot drift from the code: every ```sh block right after a `<!-- tested: ... -->` line,
//! in order, in one `bash -euo pipefail`, with the built `ipfaas` first on `PATH`, in a scratch
//! directory that has the repository's `functions/` (the README says to run from the root).
//! The only change made to the text is the API address, `http://127.0.0.1:5001`, which becomes
//! the test server's.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

const MARK: &str = "<!-- tested: gateway/tests/readme.rs -->";
const DOCUMENTED_API: &str = "http://127.0.0.1:5001";

/// The marked `sh` blocks of the README, in order.
fn tested_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(l) = lines.next() {
        if l.trim() != MARK {
            continue;
        }
        assert_eq!(
            lines.next().map(str::trim),
            Some("```sh"),
            "{MARK} must precede a ```sh block"
        );
        let mut block = String::new();
        for l in lines.by_ref() {
            if l.trim() == "```" {
                break;
            }
            block.push_str(l);
            block.push('\n');
        }
        blocks.push(block);
    }
    blocks
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_walkthroughs_run_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let blocks = tested_blocks(&readme);
    assert!(
        blocks.len() >= 2,
        "the README lost its tested walk-throughs"
    );

    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let s = Server::start(&repo, &[]);
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::os::unix::fs::symlink(root.join("functions"), work.join("functions")).unwrap();

    let script = blocks.join("\n").replace(DOCUMENTED_API, &s.url);
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(&work)
            .env("PATH", path)
            .env("IPFAAS_HOME", &repo)
            .env("IPFAAS_LOG", "warn")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "the walk-through failed:\n{so}\n{se}");
    // what the commands print is what the README says they do
    for want in [
        "\"Hash\":\"QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o\"", // the add
        "\"name\": \"wordcount\"",                                     // the CLI deploy
        "\"top\"",                                                     // wordcount's answer
        "HTTP/1.1 200",                                                // invoke with -D -
        "\"files\": {\"input\": 3}",                                   // raw input
        "\"status\":\"done\"",                                         // the async job
        "hello world\nworldhello",                                     // cat, range, gateway
        "/sub/b.txt",                                                  // tar -t of the tree
        "ipfaas_store_blocks",                                         // metrics
    ] {
        assert!(so.contains(want), "missing {want:?} in:\n{so}\n{se}");
    }
    assert!(!so.contains("\"error\""), "an error answer:\n{so}");
}
