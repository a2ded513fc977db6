//! Function names round-trip everywhere: dashes, dots, underscores, digits and non-ASCII letters
//! work the same through deploy, invoke, `GET /v1/functions/{name}`, async jobs and every CLI
//! command that takes a name; names outside the documented set are refused with a 400 that
//! says what is allowed.

mod common;
use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const FUNCTION: &str = r#"
def main(input, params):
    return {"n": len(input.read()), "who": params.get("who")}
"#;

/// Percent-encodes every byte but unreserved ASCII, as a cautious client does.
fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn names_round_trip_through_the_api_and_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let s = Server::start(&repo, &[]);
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("function.py"), FUNCTION).unwrap();
    let input = add_cid(&s, "", &[("in.txt", b"twelve bytes")]).await;

    for name in ["csv-stats", "v1.2_beta-3", "données-ü", "日本語-関数"] {
        // deploy and invoke with the CLI
        let out = cli_ok(&repo, &["deploy", src.to_str().unwrap(), "--name", name]);
        assert!(out.contains(name), "deploy {name}: {out}");
        let out = cli_ok(&repo, &["invoke", name, &input, "-p", "who=cli"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v, json!({"n": 12, "who": "cli"}), "{name}");
        let list = cli_ok(&repo, &["functions"]);
        assert!(list.contains(name), "{list}");

        // the API, with the name escaped byte by byte and as UTF-8 as it is
        for path_name in [escape(name), name.to_string()] {
            let def = get_json(&format!("{}/v1/functions/{path_name}", s.url)).await;
            assert_eq!(def["name"], name, "{def}");
            let r = client()
                .post(format!(
                    "{}/v1/functions/{path_name}/invoke?cid={input}&who=http",
                    s.url
                ))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{name}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v, json!({"n": 12, "who": "http"}));
        }

        // an async job
        let r = client()
            .post(format!(
                "{}/v1/functions/{}/invoke?cid={input}&who=job&async=true",
                s.url,
                escape(name)
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let job = r.json::<Value>().await.unwrap()["job"]
            .as_str()
            .unwrap()
            .to_string();
        let t = Instant::now();
        let done = loop {
            let v = get_json(&format!("{}/v1/jobs/{job}", s.url)).await;
            if !matches!(v["status"].as_str(), Some("queued" | "running")) {
                break v;
            }
            assert!(t.elapsed() < Duration::from_secs(60), "{v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(done["status"], "done", "{done}");

        // verify resolves the name (no peer here to agree, so it is not verified)
        let out = cli(&repo, &["verify", name, &input, "-p", "who=cli"]);
        let (so, se) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(so.starts_with("here  "), "verify {name}: {so} {se}");
        assert!(!se.contains("no function named"), "{se}");
    }

    // refused, with the rule in the message
    for bad in [
        "a b",
        "a%2Fb",
        ".hidden",
        "k51qzi5uqu5dlvj2baxnqndepeb86cbk3ng7n3i46uzyxzyqj2xjonzllnv0v8",
        "x%E2%80%AEy",
    ] {
        let r = client()
            .post(format!("{}/v1/functions?name={bad}", s.url))
            .header("content-type", "application/x-tar")
            .body(tar_of(&[("function.py", FUNCTION.as_bytes())]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("letters (any script)"),
            "{bad}: {v}"
        );
    }
    let out = cli(
        &repo,
        &["deploy", src.to_str().unwrap(), "--name", "no/slash"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid function name"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
