//! The container image of `deploy/`: built by `deploy/build-image.sh` from this test's binary
//! (`FROM scratch`: no Python, no pip, no shell), run by the real Docker Engine, it deploys a
//! function whose `requirements.txt` needs a download from the package index, and runs it.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Removes the container and the image however the test ends.
struct Cleanup {
    container: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.container])
            .output();
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.image])
            .output();
    }
}

#[tokio::test]
async fn the_image_deploys_a_function_with_requirements() {
    let image = format!("ipfaas-image-test:{}", std::process::id());
    let container = format!("ipfaas-image-test-{}", std::process::id());
    let _cleanup = Cleanup {
        container: container.clone(),
        image: image.clone(),
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    run_ok(
        Command::new(root.join("deploy/build-image.sh"))
            .arg(&image)
            .env("IPFAAS_BIN", BIN),
    );

    // the image's own user writes its repo into this directory
    let data = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        data.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let volume = format!("{}:/data", data.path().display());
    docker(&[
        "run",
        "-d",
        "--name",
        &container,
        "-p",
        "127.0.0.1::5001",
        "-v",
        &volume,
        &image,
        "serve",
        "--listen",
        "0.0.0.0:5001",
        "--swarm-listen",
        "/ip4/0.0.0.0/tcp/4001",
        "--api-token-file",
        "/data/api-token",
        "--no-examples",
    ]);
    let port = docker(&["port", &container, "5001/tcp"]);
    let url = format!("http://{}", port.lines().next().unwrap());
    let t = Instant::now();
    while !data.path().join("api").exists() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the container did not start: {}",
            docker(&["logs", &container])
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let token = std::fs::read_to_string(data.path().join("api-token")).unwrap();
    let auth = format!("Bearer {}", token.trim());

    let function = b"import tabulate\n\ndef main(input, params):\n    return tabulate.tabulate([[1, 2]], headers=[\"a\", \"b\"], tablefmt=\"plain\")\n";
    let r = client()
        .post(format!("{url}/v1/functions?name=tables"))
        .header("authorization", &auth)
        .header("content-type", "application/x-tar")
        .body(tar_of(&[
            ("function.py", function),
            ("requirements.txt", b"tabulate>=0.9,<1\n"),
        ]))
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{v}\n{}", docker(&["logs", &container]));
    assert_eq!(v["lock"][0]["name"], "tabulate", "{v}");
    assert_eq!(v["requirements"]["networked"], true, "{v}");

    let (ctype, body) = multipart(&[("x", "application/octet-stream", b"x")]);
    let r = client()
        .post(format!("{url}/api/v0/add?quiet=true"))
        .header("authorization", &auth)
        .header("content-type", ctype)
        .body(body)
        .send()
        .await
        .unwrap();
    let added: serde_json::Value = r.json().await.unwrap();
    let cid = added["Hash"].as_str().unwrap();
    let out = client()
        .post(format!("{url}/v1/functions/tables/invoke?cid={cid}"))
        .header("authorization", &auth)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    // tabulate's plain format right-aligns numeric columns
    assert_eq!(out.text().await.unwrap(), "  a    b\n  1    2");
}
