//! Definitions are data from anyone: one whose references are paths rather than CIDs is refused
//! before any of them names a file here (a crafted `component` once made the node load native
//! code that a peer had shipped inside a bundle).

mod common;
use common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn a_definition_naming_paths_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("repo"), &[]);
    let input = add_cid(&s, "", &[("in.txt", b"x")]).await;
    let honest = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o";
    let limits = json!({"memory": 1 << 26, "fuel": 1000, "timeout_ms": 1000, "max_output": 1000});
    for (field, evil) in [
        ("component", "../builds/k/bundle/x"),
        ("component", "/etc/passwd"),
        ("bundle", "../../.."),
        ("site", "bafy not a cid"),
    ] {
        let mut def = json!({
            "ipfaas": 1, "kind": "python", "bundle": honest, "site": honest,
            "component": honest, "limits": limits, "builder": "x",
        });
        def[field] = json!(evil);
        let bytes = serde_json::to_vec(&def).unwrap();
        let fcid = add_cid(&s, "", &[("def.json", &bytes)]).await;
        for r in [
            client()
                .post(format!("{}/v1/functions/{fcid}/invoke?cid={input}", s.url))
                .send()
                .await
                .unwrap(),
            client()
                .get(format!("{}/v1/functions/{fcid}", s.url))
                .send()
                .await
                .unwrap(),
        ] {
            assert_eq!(r.status(), 400, "{field} = {evil}");
            let v: Value = r.json().await.unwrap();
            let e = v["error"].as_str().unwrap();
            assert!(e.contains(&format!("`{field}` is not a CID")), "{e}");
        }
    }
    // unknown fields are refused too: a definition is exactly what this node writes
    let def = json!({
        "ipfaas": 1, "kind": "python", "bundle": honest, "site": honest,
        "component": honest, "limits": limits, "builder": "x", "cwasm": "/tmp/x.cwasm",
    });
    let fcid = add_cid(&s, "", &[("def.json", &serde_json::to_vec(&def).unwrap())]).await;
    let r = client()
        .get(format!("{}/v1/functions/{fcid}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(s.child.id() > 0);
    let health = get_text(&format!("{}/healthz", s.url)).await;
    assert!(health.contains("ok"), "{health}");
}

/// A Docker definition added as a block and invoked by CID is checked like one deployed here:
/// a zero limit means "unlimited" to the Docker Engine, and an image named by tag can change
/// under the function CID, so both are refused before any container is made.
#[tokio::test(flavor = "multi_thread")]
async fn an_unbounded_docker_definition_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("repo"), &[]);
    let input = add_cid(&s, "", &[("in.txt", b"x")]).await;
    let id = format!("sha256:{}", "ab".repeat(32));
    let limits =
        json!({"memory": 1 << 26, "cpus": 1.0, "pids": 16, "timeout_ms": 1000, "max_output": 1000});
    let cases = [
        ("memory", json!(0), id.clone()),
        ("pids", json!(0), id.clone()),
        ("pids", json!(-1), id.clone()),
        ("cpus", json!(0.0), id.clone()),
        ("timeout_ms", json!(0), id.clone()),
        ("memory", json!(1 << 26), "alpine:latest".to_string()),
    ];
    for (field, value, image_id) in cases {
        let mut def = json!({
            "ipfaas": 1, "kind": "docker", "image": "alpine", "image_id": image_id,
            "entrypoint": null, "cmd": ["id"], "env": {}, "workdir": null, "limits": limits,
        });
        def["limits"][field] = value.clone();
        let fcid = add_cid(&s, "", &[("def.json", &serde_json::to_vec(&def).unwrap())]).await;
        let r = client()
            .post(format!("{}/v1/functions/{fcid}/invoke?cid={input}", s.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{field} = {value}, image {image_id}");
        let v: Value = r.json().await.unwrap();
        let e = v["error"].as_str().unwrap();
        assert!(e.contains("not an ipfaas function definition"), "{e}");
    }
    let health = get_text(&format!("{}/healthz", s.url)).await;
    assert!(health.contains("ok"), "{health}");
}

/// An add names its entries in multipart headers, from anyone: a 20,000-level path once
/// overflowed a worker's stack and aborted the node, a header block that never ended was
/// buffered whole, and a symlink's target was read into memory however long it was. Each is
/// now a 400 and the node carries on.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_add_names_are_refused_and_the_node_stays_up() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("repo"), &[]);
    let deep = format!("{}f", "d/".repeat(20_000));
    let (status, body) = add(&s, "", &[(&deep, "application/octet-stream", b"x")]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("levels deep"), "{body}");
    let long_name = "n".repeat(300);
    let (status, body) = add(&s, "", &[(&long_name, "application/octet-stream", b"x")]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("300-byte name"), "{body}");
    let target = "t/".repeat(5000);
    let (status, body) = add(&s, "", &[("l", "application/symlink", target.as_bytes())]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("longer than 4096"), "{body}");
    // a part header that never ends: 8 MiB of one filename declared, 4 MiB sent, then a stall
    // (the server stops reading once it refuses, so the upload runs on its own task)
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = s.url.trim_start_matches("http://").to_string();
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let len = 8 << 20;
    let upload = tokio::spawn(async move {
        let head = format!(
            "POST /api/v0/add HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: {len}\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\""
        );
        wr.write_all(head.as_bytes()).await?;
        let chunk = vec![b'a'; 64 << 10];
        // half of it, then the client stalls: only a bounded header answers now
        for _ in 0..(len / 2 / chunk.len()) {
            wr.write_all(&chunk).await?;
        }
        std::future::pending::<()>().await;
        Ok::<_, std::io::Error>(())
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("}") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(30), rd.read(&mut buf))
            .await
            .expect("an answer before the whole body")
            .unwrap();
        assert!(n > 0, "connection closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    upload.abort();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("malformed multipart"), "{answer}");
    // alive and well: an honest add at the depth limit works
    let ok = format!("{}f", "d/".repeat(255));
    let (status, body) = add(&s, "", &[(&ok, "application/octet-stream", b"x")]).await;
    assert_eq!(status, 200, "{body}");
    let health = get_text(&format!("{}/healthz", s.url)).await;
    assert!(health.contains("ok"), "{health}");
}
