//! A function's lifecycle as a user lives it: deploy versions, list them, roll back, remove
//! (and purge); and the path gateway's answers to a revalidating cache.

mod common;

use common::*;
use ipfaas_runtime::invoke::headers;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

const TOKEN: &str = "lifecycle-token";
const V1: &[u8] = b"def main(input):\n    return 'one'\n";
const V2: &[u8] = b"def main(input):\n    return 'two'\n";

/// A request with the node's token.
fn authed(m: reqwest::Method, url: String) -> reqwest::RequestBuilder {
    client()
        .request(m, url)
        .header("authorization", format!("Bearer {TOKEN}"))
        .timeout(Duration::from_secs(600))
}

async fn deploy(s: &Server, name: &str, code: &'static [u8]) -> Value {
    let r = authed(
        reqwest::Method::POST,
        format!("{}/v1/functions?name={name}", s.url),
    )
    .header("content-type", "application/x-tar")
    .body(tar_of(&[("function.py", code)]))
    .send()
    .await
    .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{v}");
    v
}

/// Invokes `f` on `input` without the result cache: (status, output CID, body).
async fn run(s: &Server, f: &str, input: &str) -> (u16, String, String) {
    let r = authed(
        reqwest::Method::POST,
        format!("{}/v1/functions/{f}/invoke?cid={input}&cache=false", s.url),
    )
    .send()
    .await
    .unwrap();
    let status = r.status().as_u16();
    let cid = header(&r, headers::OUTPUT_CID);
    (status, cid, r.text().await.unwrap())
}

async fn versions(s: &Server, name: &str) -> Vec<Value> {
    let v = get_json(&format!("{}/v1/functions/{name}/versions", s.url)).await;
    v["versions"].as_array().unwrap().clone()
}

fn pins(s: &Server) -> HashSet<String> {
    cli_ok(&s.repo, &["--api-token", TOKEN, "pin", "ls"])
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn artifacts(d: &Value) -> Vec<String> {
    let cids = [&d["function_cid"], &d["bundle_cid"], &d["component_cid"]];
    cids.iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn versions_rollback_and_purge_as_a_user_does_them() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().to_path_buf();
    let s = Server::start(&repo, &["--api-token", TOKEN, "--fetch-timeout", "1s"]);
    let input = {
        let r = authed(reqwest::Method::POST, s.api("add"));
        let (ct, body) = multipart(&[("in", "text/plain", b"input")]);
        let r = r
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        ndjson(&r.text().await.unwrap())[0]["Hash"]
            .as_str()
            .unwrap()
            .to_string()
    };

    let v1 = deploy(&s, "greet", V1).await;
    let (status, out1, body) = run(&s, "greet", &input).await;
    assert_eq!((status, body.as_str()), (200, "one"));
    let v2 = deploy(&s, "greet", V2).await;
    assert_ne!(v1["function_cid"], v2["function_cid"]);
    let (_, out2, body) = run(&s, "greet", &input).await;
    assert_eq!(body, "two");

    // the history, newest first, with who (the token's id, never the token) and when
    let vs = versions(&s, "greet").await;
    assert_eq!(vs.len(), 2, "{vs:?}");
    assert_eq!(vs[0]["function_cid"], v2["function_cid"]);
    assert_eq!(vs[1]["function_cid"], v1["function_cid"]);
    assert!(vs.iter().all(|v| v["how"] == "deploy"));
    // who: only for callers with the token (the id is derived from it)
    assert!(vs.iter().all(|v| v.get("by").is_none()), "{vs:?}");
    let with_token: Value = authed(
        reqwest::Method::GET,
        format!("{}/v1/functions/greet/versions", s.url),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let by = with_token["versions"][0]["by"].as_str().unwrap();
    assert!(by.starts_with("token:") && !by.contains(TOKEN), "{by}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(vs[0]["at"].as_u64().unwrap().abs_diff(now) < 600, "{vs:?}");
    // redeploying the current code is no new version
    deploy(&s, "greet", V2).await;
    assert_eq!(versions(&s, "greet").await.len(), 2);

    // a rollback needs the token, then points the name back without a rebuild
    let url = format!("{}/v1/functions/greet", s.url);
    let r = client().put(&url).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = authed(reqwest::Method::PUT, url.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["function_cid"], v1["function_cid"], "{p}");
    assert_eq!(p["previous_function_cid"], v2["function_cid"], "{p}");
    let (_, out, body) = run(&s, "greet", &input).await;
    assert_eq!((out.as_str(), body.as_str()), (out1.as_str(), "one"));
    let vs = versions(&s, "greet").await;
    assert_eq!((vs.len(), &vs[0]["how"]), (3, &json!("rollback")));
    // not a function: refused, and the name stays where it was
    for bad in [json!({"function_cid": "not-a-cid"}), json!({"cid": "x"})] {
        let r = authed(reqwest::Method::PUT, url.clone())
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert!(r.json::<Value>().await.unwrap()["error"].is_string());
    }
    let r = authed(reqwest::Method::PUT, url.clone())
        .json(&json!({ "function_cid": input }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let r = authed(
        reqwest::Method::PUT,
        format!("{}/v1/functions/nosuch", s.url),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(versions(&s, "greet").await.len(), 3);

    // survives a restart
    s.stop();
    let s = Server::start(&repo, &["--api-token", TOKEN, "--fetch-timeout", "1s"]);
    let url = format!("{}/v1/functions/greet", s.url);
    let (_, out, _) = run(&s, "greet", &input).await;
    assert_eq!(out, out1);
    // the CLI: the list marks the current version; a rollback to a CID
    let listed = cli_ok(
        &repo,
        &["--api-token", TOKEN, "functions", "--versions", "greet"],
    );
    let first = listed.lines().next().unwrap();
    assert!(
        first.starts_with('*') && first.contains(v1["function_cid"].as_str().unwrap()),
        "{listed}"
    );
    assert_eq!(listed.lines().count(), 3, "{listed}");
    let v2cid = v2["function_cid"].as_str().unwrap();
    cli_ok(&repo, &["--api-token", TOKEN, "rollback", "greet", v2cid]);
    let (_, out, body) = run(&s, "greet", &input).await;
    assert_eq!((out.as_str(), body.as_str()), (out2.as_str(), "two"));

    // a second name for v1's code shares its artifacts
    let twin = deploy(&s, "twin", V1).await;
    assert_eq!(twin["function_cid"], v1["function_cid"]);
    let site = get_json(&format!("{}/v1/functions/greet", s.url)).await["definition"]["site"]
        .as_str()
        .unwrap()
        .to_string();

    // DELETE needs the token; then a purge unpins what only "greet" used
    let r = client().delete(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = authed(reqwest::Method::DELETE, format!("{url}?purge=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let removed: Value = r.json().await.unwrap();
    assert_eq!(removed["function_cids"], json!([v2cid, v1["function_cid"]]));
    let unpinned: HashSet<String> = serde_json::from_value(removed["unpinned"].clone()).unwrap();
    let kept: HashSet<String> = serde_json::from_value(removed["kept"].clone()).unwrap();
    assert_eq!(unpinned, artifacts(&v2).into_iter().collect(), "{removed}");
    let mut shared: HashSet<String> = artifacts(&v1).into_iter().collect();
    shared.insert(site);
    assert_eq!(kept, shared, "{removed}");
    let pinned = pins(&s);
    assert!(unpinned.is_disjoint(&pinned), "{removed}");
    assert!(kept.is_subset(&pinned), "{removed}");
    // the native code compiled from v2's component is gone, v1's (shared) is not
    let compiled = |d: &Value| {
        let c = d["component_cid"].as_str().unwrap().to_string();
        std::fs::read_dir(repo.join("functions/cwasm"))
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().starts_with(&c))
    };
    assert!(!compiled(&v2) && compiled(&v1));
    // the name is gone; the other one works, after a collection too
    assert_eq!(run(&s, "greet", &input).await.0, 404);
    let r = authed(reqwest::Method::DELETE, url.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = authed(reqwest::Method::POST, format!("{}/v1/repo/gc", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, out, _) = run(&s, "twin", &input).await;
    assert_eq!((status, out.as_str()), (200, out1.as_str()));
    // ... from blocks still in the store, not only from local caches: all of what twin uses
    // reads back whole, what only greet used does not (this node has no peers to fetch from)
    for c in &kept {
        let r = post(&s, &format!("get?arg={c}")).await;
        assert_eq!(r.status(), 200, "{c}");
        assert!(!r.bytes().await.unwrap().is_empty(), "{c}");
    }
    for c in &unpinned {
        let r = post(&s, &format!("get?arg={c}")).await;
        let ok = r.status() == 200 && r.bytes().await.is_ok();
        assert!(
            !ok,
            "{c} still reads back whole after its purge and a collection"
        );
    }
    let listed = get_json(&format!("{}/v1/functions", s.url)).await;
    assert_eq!(listed["functions"].as_array().unwrap().len(), 1, "{listed}");
    // a purged and collected version cannot be pointed at (its blocks are gone, and there is
    // no peer to fetch them from), however much of it this node still remembers
    let r = authed(reqwest::Method::PUT, format!("{}/v1/functions/twin", s.url))
        .json(&json!({ "function_cid": v2cid }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().await.unwrap()["error"].is_string());
    let (_, out, _) = run(&s, "twin", &input).await;
    assert_eq!(out, out1);

    // deploying v2's code again after its purge and a collection builds it again: its
    // component is back in the store, pinned
    let again = deploy(&s, "greet", V2).await;
    assert_eq!(again["function_cid"].as_str().unwrap(), v2cid);
    assert_eq!(again["reused_build"], false, "{again}");
    assert!(artifacts(&again).iter().all(|c| pins(&s).contains(c)));
    let (_, out, _) = run(&s, "greet", &input).await;
    assert_eq!(out, out2);
    assert_eq!(versions(&s, "greet").await.len(), 1);

    // `ipfaas rm` without purge keeps the pins
    cli_ok(&repo, &["--api-token", TOKEN, "rm", "greet"]);
    assert_eq!(run(&s, "greet", &input).await.0, 404);
    assert!(artifacts(&again).iter().all(|c| pins(&s).contains(c)));
}

#[tokio::test]
async fn the_path_gateway_answers_revalidation_with_304() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path(), &[]);
    let data = rand_bytes(300_000, 77);
    let (_, body) = add(
        &s,
        "wrap-with-directory=true",
        &[("report é.csv", "text/csv", &data)],
    )
    .await;
    let rows = ndjson(&body);
    let file = rows[0]["Hash"].as_str().unwrap().to_string();
    let dir = rows.last().unwrap()["Hash"].as_str().unwrap().to_string();
    let c = client();
    let url = format!("{}/ipfs/{dir}/report%20%C3%A9.csv", s.url);

    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let etag = header(&r, "etag");
    assert_eq!(etag, format!("\"{file}\""));
    assert!(header(&r, "cache-control").contains("immutable"));
    assert_eq!(header(&r, "x-ipfs-roots"), format!("{dir},{file}"));
    assert_eq!(
        header(&r, "x-ipfs-path"),
        format!("/ipfs/{dir}/report%20%C3%A9.csv")
    );
    assert_eq!(
        header(&r, "content-disposition"),
        "inline; filename=\"report _.csv\"; filename*=UTF-8''report%20%C3%A9%2Ecsv"
    );
    assert_eq!(r.bytes().await.unwrap(), data);

    // revalidation: 304, no body, the same validators; a stale tag gets the body again
    for (m, inm) in [
        (reqwest::Method::GET, etag.clone()),
        (reqwest::Method::HEAD, etag.clone()),
        (reqwest::Method::GET, format!("\"x\", W/{etag}")),
        (reqwest::Method::GET, "*".to_string()),
    ] {
        let r = c
            .request(m.clone(), &url)
            .header("if-none-match", &inm)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{m} {inm}");
        assert_eq!(header(&r, "etag"), etag);
        assert!(header(&r, "cache-control").contains("immutable"));
        assert_eq!(header(&r, "x-ipfs-roots"), format!("{dir},{file}"));
        assert!(r.bytes().await.unwrap().is_empty());
    }
    let r = c
        .get(&url)
        .header("if-none-match", "\"bafkreiother\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), data.len());

    // ranges carry the same tag
    let r = c
        .get(&url)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&r, "etag"), etag);
    assert_eq!(r.bytes().await.unwrap(), &data[100..200]);
    // `?filename=` and `?download=true` as the spec has them
    let r = c
        .get(format!(
            "{}/ipfs/{file}?filename=a.csv&download=true",
            s.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "content-disposition"),
        "attachment; filename=\"a.csv\""
    );
    assert_eq!(header(&r, "x-ipfs-roots"), file);
    // a bare CID has no name to give
    let r = c
        .get(format!("{}/ipfs/{file}", s.url))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("content-disposition").is_none());

    // directories: the listing and the tar are different representations, each its own tag
    let listing = c.get(format!("{}/ipfs/{dir}", s.url)).send().await.unwrap();
    let tag = header(&listing, "etag");
    let tar = c
        .get(format!("{}/ipfs/{dir}?format=tar", s.url))
        .send()
        .await
        .unwrap();
    let tar_tag = header(&tar, "etag");
    assert_eq!(tar_tag, format!("\"{dir}.x-tar\""));
    assert!(tag.starts_with("W/") && tag.contains(&dir), "{tag}");
    assert!(!header(&listing, "cache-control").contains("immutable"));
    assert_ne!(tag, tar_tag);
    for (u, t) in [
        (format!("{}/ipfs/{dir}", s.url), tag.clone()),
        (format!("{}/ipfs/{dir}?format=tar", s.url), tar_tag.clone()),
    ] {
        let r = c.get(&u).header("if-none-match", t).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{u}");
    }
    let r = c
        .get(format!("{}/ipfs/{dir}?format=tar", s.url))
        .header("if-none-match", tag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the listing's tag is not the tar's");
}
