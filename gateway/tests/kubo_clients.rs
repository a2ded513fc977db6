//! Kubo RPC compatibility, tested with real clients installed from PyPI (`ipfshttpclient`, the
//! most used Python client, and `aioipfs`), and with the request shape of the JavaScript
//! `kubo-rpc-client`, whose registry this machine cannot reach.
//!
//! The Python clients go into a virtualenv under Cargo's target directory on first use (pinned
//! versions, from PyPI), so `cargo test` needs `python3` with `venv` and PyPI, nothing else.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const CLIENTS: [&str; 2] = ["ipfshttpclient==0.8.0a2", "aioipfs==0.7.1"];

/// A virtualenv with the clients; made once per target directory.
fn venv_python() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kubo-clients-venv");
    ipfaas_testkit::python::venv(&venv, &CLIENTS)
}

#[tokio::test(flavor = "multi_thread")]
async fn python_kubo_clients_add_cat_get_ls_pin() {
    let python = venv_python();
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("repo"), &[]);
    let addr = s.url.trim_start_matches("http://").to_string();
    let (host, port) = addr.rsplit_once(':').unwrap();
    let (host, port) = (host.to_string(), port.to_string());
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubo_clients.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args([&host, &port])
            .arg(&work)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "clients failed:\n{so}\n{se}");
    assert!(so.contains("all checks passed"), "{so}");
}

/// What `kubo-rpc-client`'s `ipfs.add(bytes)` sends: one part, `filename=""`. And a part with no
/// `filename` at all. Kubo names both by their CID.
#[tokio::test(flavor = "multi_thread")]
async fn unnamed_parts_are_named_by_their_cid() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("repo"), &[]);
    let boundary = "----kubo-rpc-client-like";
    for disposition in [
        "form-data; name=\"file\"; filename=\"\"",
        "form-data; name=\"file\"",
    ] {
        let data = rand_bytes(3 << 20, 9);
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&data);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let r = client()
            .post(format!(
                "{}?stream-channels=true&progress=false",
                s.api("add")
            ))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{disposition}");
        let lines = ndjson(&r.text().await.unwrap());
        assert_eq!(lines.len(), 1, "{lines:?}");
        let cid = lines[0]["Hash"].as_str().unwrap();
        assert_eq!(lines[0]["Name"], cid);
        let back = post(&s, &format!("cat?arg={cid}"))
            .await
            .bytes()
            .await
            .unwrap();
        assert!(back == data, "the bytes come back");
    }
}

/// A refused upload still gets its JSON error, not a broken pipe, when the refusal comes before
/// the body has been sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_upload_reads_the_body_and_answers_json() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("repo"), &[]);
    let data = rand_bytes(3 << 20, 4);
    // the first part's name is refused; a large second part is still on its way
    let (ct, body) = multipart(&[
        ("..%2Fescape", "application/octet-stream", b"x"),
        ("big.bin", "application/octet-stream", &data),
    ]);
    for _ in 0..3 {
        let r = client()
            .post(s.api("add"))
            .header("content-type", ct.clone())
            .body(body.clone())
            .send()
            .await
            .expect("the client reads an answer, not a reset connection");
        assert_eq!(r.status(), 400);
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(
            v["Message"].as_str().unwrap().contains("invalid path"),
            "{v}"
        );
    }
}
