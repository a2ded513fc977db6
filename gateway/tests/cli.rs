//! The `ipfaas` CLI (with and without a running server), restarts, and `kill -9` in the middle
//! of an add.

mod common;

use common::*;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(root.join("hello.txt"), "Hello Worlds!\n").unwrap();
    std::fs::write(root.join("naïve café.txt"), "ünïcödé\n").unwrap();
    std::fs::write(root.join("sub/deeper/big.bin"), rand_bytes(1_200_000, 4)).unwrap();
    std::fs::write(root.join(".hidden"), "secret").unwrap();
    std::os::unix::fs::symlink("../hello.txt", root.join("sub/link")).unwrap();
}

/// Compares two trees: names, kinds, file bytes and symlink targets.
fn assert_same_tree(a: &Path, b: &Path, skip_hidden: bool) {
    let list = |p: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !(skip_hidden && n.starts_with('.')))
            .collect();
        v.sort();
        v
    };
    assert_eq!(list(a), list(b), "{} vs {}", a.display(), b.display());
    for name in list(a) {
        let (x, y) = (a.join(&name), b.join(&name));
        let mx = std::fs::symlink_metadata(&x).unwrap();
        if mx.is_symlink() {
            assert_eq!(
                std::fs::read_link(&x).unwrap(),
                std::fs::read_link(&y).unwrap()
            );
        } else if mx.is_dir() {
            assert_same_tree(&x, &y, skip_hidden);
        } else {
            assert_eq!(
                std::fs::read(&x).unwrap(),
                std::fs::read(&y).unwrap(),
                "{name}"
            );
        }
    }
}

fn last_cid(add_output: &str) -> String {
    add_output
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

#[test]
fn offline_cli_roundtrip_add_cat_ls_get() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let src = tmp.path().join("tree");
    make_tree(&src);

    let out = cli_ok(&repo, &["add", "-r", src.to_str().unwrap()]);
    assert!(out.lines().all(|l| l.starts_with("added ")), "{out}");
    assert!(
        !out.contains(".hidden"),
        "hidden files are skipped by default: {out}"
    );
    let root = last_cid(&out);
    assert!(out.lines().last().unwrap().ends_with(" tree"));
    // same CIDs as the HTTP path and as Kubo for the one file with a known CID
    assert!(
        out.contains("added QmVr26fY1tKyspEJBniVhqxQeEjhF78XerGiqWAwraVLQH tree/hello.txt"),
        "{out}"
    );

    // --repo before the subcommand works as well as after it
    let out = std::process::Command::new(BIN)
        .arg("--repo")
        .arg(&repo)
        .args(["cat", &format!("{root}/hello.txt")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello Worlds!\n");
    assert_eq!(
        cli_ok(
            &repo,
            &[
                "cat",
                "--offset",
                "6",
                "--length",
                "6",
                &format!("/ipfs/{root}/hello.txt")
            ]
        ),
        "Worlds"
    );

    let ls = cli_ok(&repo, &["ls", &root]);
    let names: Vec<_> = ls
        .lines()
        .map(|l| l.split_whitespace().skip(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(names, ["empty/", "hello.txt", "naïve café.txt", "sub/"]);
    assert!(ls.contains(" 14 hello.txt"));

    let dest = tmp.path().join("out");
    cli_ok(&repo, &["get", &root, "-o", dest.to_str().unwrap()]);
    assert_same_tree(&src, &dest, true);
    let one = tmp.path().join("one.bin");
    cli_ok(
        &repo,
        &[
            "get",
            &format!("{root}/sub/deeper/big.bin"),
            "-o",
            one.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read(&one).unwrap(),
        std::fs::read(src.join("sub/deeper/big.bin")).unwrap()
    );

    // --hidden, -Q, profiles, wrap
    let out = cli_ok(
        &repo,
        &["add", "-r", "--hidden", "-Q", src.to_str().unwrap()],
    );
    assert_ne!(out.trim(), root, "including .hidden changes the root");
    let f = tmp.path().join("hw");
    std::fs::write(&f, "hello world").unwrap();
    assert_eq!(
        cli_ok(
            &repo,
            &[
                "add",
                "-Q",
                "--profile",
                "unixfs-v1-2025",
                f.to_str().unwrap()
            ]
        )
        .trim(),
        "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    );
    assert_eq!(
        cli_ok(
            &repo,
            &["add", "-q", "--cid-version", "1", f.to_str().unwrap()]
        )
        .trim(),
        "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    );
    let wrapped = cli_ok(&repo, &["add", "-w", f.to_str().unwrap()]);
    assert_eq!(wrapped.lines().count(), 2);

    let pins = cli_ok(&repo, &["pin", "ls"]);
    assert!(pins.contains(&root));
    cli_ok(&repo, &["pin", "rm", &root]);
    assert!(!cli_ok(&repo, &["pin", "ls"]).contains(&root));

    // clear errors, non-zero exit
    for args in [
        &["cat", "nonsense"][..],
        &["cat", &root],
        &["add", src.to_str().unwrap()],
        &["add", "/does/not/exist"],
        &[
            "cat",
            "bafkreie7ohywtosou76tasm7j63yigtzxe7d5zqus4zu3j6oltvgtibeom",
        ],
    ] {
        let out = cli(&repo, args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("Error: ") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

#[tokio::test]
async fn cli_uses_the_running_server_and_its_token() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let src = tmp.path().join("tree");
    make_tree(&src);
    let offline_root = last_cid(&cli_ok(&repo, &["add", "-r", src.to_str().unwrap()]));

    let s = Server::start(&repo, &["--api-token", "tok"]);
    // the server holds the repo lock: these can only work over HTTP
    let out = cli(&repo, &["add", "-r", src.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HTTP 401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(BIN)
        .args(["add", "-r", src.to_str().unwrap(), "--repo"])
        .arg(&repo)
        .env("IPFAAS_API_TOKEN", "tok")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let remote_root = last_cid(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(remote_root, offline_root, "HTTP and local adds agree");
    assert_eq!(
        cli_ok(&repo, &["cat", &format!("{remote_root}/naïve café.txt")]),
        "ünïcödé\n"
    );
    let dest = tmp.path().join("via-http");
    cli_ok(&repo, &["get", &remote_root, "-o", dest.to_str().unwrap()]);
    assert_same_tree(&src, &dest, true);
    let id = cli_ok(&repo, &["id"]);
    assert!(id.contains("/p2p/12D3KooW"), "{id}");
    // the add went through the server, so its metrics saw it
    let m = client()
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("ipfaas_http_requests_total{route=\"add\",status=\"200\"} 1"),
        "{m}"
    );

    // after a crash the api file is stale: the CLI falls back to the repo
    s.kill9();
    assert!(repo.join("api").exists());
    assert_eq!(
        cli_ok(&repo, &["cat", &format!("{remote_root}/hello.txt")]),
        "Hello Worlds!\n"
    );
}

#[tokio::test]
async fn restart_keeps_identity_pins_and_data() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path(), &[]);
    let id1 = post_json(&s, "id").await["ID"].clone();
    let f = tmp.path().join("f.bin");
    let data = rand_bytes(5 << 20, 8);
    std::fs::write(&f, &data).unwrap();
    let cid = cli_ok(tmp.path(), &["add", "-Q", f.to_str().unwrap()])
        .trim()
        .to_string();
    s.stop();
    assert!(
        !tmp.path().join("api").exists(),
        "a clean stop removes the api file"
    );

    let s = Server::start(tmp.path(), &[]);
    let id2 = post_json(&s, "id").await["ID"].clone();
    assert_eq!(id1, id2);
    let got = post(&s, &format!("cat?arg={cid}"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(&got[..], &data[..]);
    assert!(cli_ok(tmp.path(), &["pin", "ls"]).contains(&cid));
}

#[tokio::test]
async fn kill_9_mid_add_keeps_every_returned_cid() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path(), &[]);
    // earlier adds of several shapes
    let mut kept = Vec::new();
    for (i, size) in [0usize, 1, 262_144, 262_145, 3 << 20, 45 << 20]
        .into_iter()
        .enumerate()
    {
        let data = rand_bytes(size, i as u64 + 100);
        let q = if i % 2 == 0 { "" } else { "cid-version=1" };
        let (_, body) = add(
            &s,
            q,
            &[(&format!("f{i}"), "application/octet-stream", &data)],
        )
        .await;
        let cid = ndjson(&body)[0]["Hash"].as_str().unwrap().to_string();
        kept.push((cid, Sha256::digest(&data)));
    }

    // a 4 GiB upload, killed once ~300 MiB went through
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let boundary = "killboundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"huge\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let chunks = futures::stream::iter(0..4096u64).map(move |i| {
        counter.fetch_add(1 << 20, Ordering::SeqCst);
        let mut b = rand_bytes(1 << 20, i + 7);
        if i == 0 {
            b.splice(0..0, head.bytes());
        }
        Ok::<_, std::io::Error>(b)
    });
    use futures::StreamExt;
    let upload = tokio::spawn(
        client()
            .post(s.api("add"))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(reqwest::Body::wrap_stream(chunks))
            .send(),
    );
    let t = Instant::now();
    while sent.load(Ordering::SeqCst) < 300 << 20 {
        assert!(t.elapsed() < Duration::from_secs(120), "upload stalled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.kill9();
    // the client sees a cut-off upload (error or a truncated response); nothing to assert there
    let _ = upload.await;

    // the repo opens again and every CID handed out earlier is complete and unchanged
    let s = Server::start(tmp.path(), &[]);
    for (cid, digest) in &kept {
        let r = post(&s, &format!("cat?arg={cid}")).await;
        assert_eq!(r.status(), reqwest::StatusCode::OK, "{cid}");
        assert_eq!(Sha256::digest(r.bytes().await.unwrap()), *digest, "{cid}");
    }
    let pins = post_json(&s, "pin/ls").await;
    assert_eq!(
        pins["Keys"].as_object().unwrap().len(),
        kept.len(),
        "the interrupted add pinned nothing"
    );
    // no torn temp files survive the reopen
    let mut stray = 0;
    for shard in std::fs::read_dir(tmp.path().join("blockstore")).unwrap() {
        let shard = shard.unwrap().path();
        if shard.is_dir() {
            stray += std::fs::read_dir(shard)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(".tmp")
                })
                .count();
        }
    }
    assert_eq!(stray, 0);
}

#[test]
fn kubo_vector_for_a_non_ascii_tree_via_the_cli() {
    // gateway-conformance's fixture, made by Kubo 0.18.1 with `ipfs add -Qr --cid-version 1 rootDir`
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootDir");
    for d in ["ipfs", "ipns", "api", "ą/ę"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(
        root.join("ą/ę/file-źł.txt"),
        "I am a txt file on path with utf8\n",
    )
    .unwrap();
    for d in ["api", "ipfs", "ipns"] {
        std::fs::write(
            root.join(d).join("file.txt"),
            format!("I am a txt file in confusing /{d} dir\n"),
        )
        .unwrap();
    }
    let repo = tmp.path().join("repo");
    let out = cli_ok(
        &repo,
        &["add", "-r", "--cid-version", "1", root.to_str().unwrap()],
    );
    assert!(out.contains("added bafkreialihlqnf5uwo4byh4n3cmwlntwqzxxs2fg5vanqdi3d7tb2l5xkm rootDir/ą/ę/file-źł.txt"), "{out}");
    assert_eq!(
        last_cid(&out),
        "bafybeig6ka5mlwkl4subqhaiatalkcleo4jgnr3hqwvpmsqfca27cijp3i"
    );
}

#[test]
fn serve_refuses_a_swarm_port_that_is_taken() {
    let tmp = tempfile::tempdir().unwrap();
    // a port held by someone else (no SO_REUSEPORT): libp2p alone would bind it anyway
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let out = std::process::Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--swarm-listen",
            &format!("/ip4/127.0.0.1/tcp/{port}"),
            "--repo",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not free") && err.contains("--swarm-listen"),
        "{err}"
    );
    assert!(!tmp.path().join("api").exists());
}

/// A peer policy that does not parse stops `serve` before it opens anything, saying why.
#[test]
fn serve_refuses_a_peer_policy_it_cannot_read() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, says) in [
        (&["serve", "--peer-invoke", "some"][..], "expected \"off\""),
        (&["serve", "--peer-allow", "nope"][..], "invalid peer id"),
        (
            &[
                "serve",
                "--peer-invoke",
                "any",
                "--peer-allow",
                "12D3KooWNVh1gVR4GmQkzAv9ANjMScPjktYLpt2v7F9gJix9A5Zv",
            ][..],
            "use \"allowlist\"",
        ),
    ] {
        let out = cli(&tmp.path().join("repo"), args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert!(!tmp.path().join("repo").join("blockstore").exists());
}

/// A raw request body joins the group commit of the outputs: the answer does not wait for the
/// disk, and within the commit interval the input and output it named are pinned, so they
/// are still there (and still pinned) after a `kill -9`.
#[tokio::test(flavor = "multi_thread")]
async fn raw_body_inputs_are_pinned_by_the_group_commit_and_kept_across_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path(), &[]);
    deploy_files(
        &s,
        &[
            (
                "function.py",
                b"def main(input, params):\n    return input.read()[::-1].hex()\n",
            ),
            ("ipfaas.toml", b"name = \"rev\"\n"),
        ],
    )
    .await;
    let pinned = |s: &Server, cid: String| {
        let url = s.api(&format!("pin/ls?arg={cid}"));
        async move {
            let r = client().post(url).send().await.unwrap();
            r.status() == 200
                && r.json::<serde_json::Value>().await.unwrap()["Keys"]
                    .get(&cid)
                    .is_some()
        }
    };
    let mut answered = vec![];
    for i in 0..6u64 {
        let data = rand_bytes(1 + i as usize * 200_000, 40 + i);
        let r = client()
            .post(format!("{}/v1/functions/rev/invoke", s.url))
            .body(data.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let input = header(&r, "x-ipfaas-input-cid");
        let output = header(&r, "x-ipfaas-output-cid");
        let mut rev = data.clone();
        rev.reverse();
        assert_eq!(r.text().await.unwrap(), hex(&rev));
        answered.push((data, rev, input, output));
    }
    // pinned by the next group commit (at most COMMIT_INTERVAL after each answer)
    let t = Instant::now();
    for (_, _, input, output) in &answered {
        while !(pinned(&s, input.clone()).await && pinned(&s, output.clone()).await) {
            assert!(t.elapsed() < Duration::from_secs(5), "{input} not pinned");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    s.kill9();
    let s = Server::start(tmp.path(), &[]);
    for (data, rev, input, output) in &answered {
        assert!(pinned(&s, input.clone()).await, "{input} lost its pin");
        assert_eq!(gateway_bytes(&s, input).await, *data);
        assert_eq!(gateway_bytes(&s, output).await, hex(rev).into_bytes());
    }
}
