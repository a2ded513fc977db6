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
