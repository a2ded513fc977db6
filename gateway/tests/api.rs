//! The HTTP API of a real `ipfaas serve` with its embedded IPFS node.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};

fn error_text(body: &str) -> String {
    let v: Value =
        serde_json::from_str(body).unwrap_or_else(|_| panic!("error body is not JSON: {body:?}"));
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field in {body}"))
        .to_string()
}

#[tokio::test]
async fn add_speaks_kubo_ndjson_with_kubo_cids() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path(), &[]);
    // t0040's tree, sent the way Kubo's client sends `ipfs add -r`
    let (st, body) = add(
        &s,
        "",
        &[
            ("test_current_dir", "application/x-directory", b""),
            ("test_current_dir%2Fhello", "application/x-directory", b""),
            (
                "test_current_dir%2Fhello%2Fworld",
                "application/octet-stream",
                b"World\n",
            ),
            (
                "test_current_dir%2Fhey",
                "application/octet-stream",
                b"Hey\n",
            ),
        ],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let lines = ndjson(&body);
    let last = lines.last().unwrap();
    assert_eq!(last["Name"], "test_current_dir");
    assert_eq!(
        last["Hash"],
        "QmZQWnfcqJ6hNkkPvrY9Q5X39GP3jUnUbAV4AbmbbR3Cb1"
    );
    assert!(last["Size"].as_str().unwrap().parse::<u64>().unwrap() > 10);
    let names: Vec<_> = lines
        .iter()
        .map(|l| l["Name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "test_current_dir/hello/world",
            "test_current_dir/hey",
            "test_current_dir/hello",
            "test_current_dir"
        ]
    );

    // several top-level files, each its own root; QueryEscape'd names
    let (_, body) = add(
        &s,
        "",
        &[
            ("hello.txt", "text/plain", b"Hello Worlds!\n"),
            ("hello2.txt", "text/plain", b"Helloo Worlds!\n"),
        ],
    )
    .await;
    let hashes: Vec<_> = ndjson(&body)
        .iter()
        .map(|l| {
            (
                l["Name"].as_str().unwrap().to_string(),
                l["Hash"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        hashes,
        [
            (
                "hello.txt".to_string(),
                "QmVr26fY1tKyspEJBniVhqxQeEjhF78XerGiqWAwraVLQH".to_string()
            ),
            (
                "hello2.txt".to_string(),
                "Qmf35k66MZNW2GijohUmXQEWKZU4cCGTCwK6idfnt152wJ".to_string()
            )
        ]
    );
    let (_, body) = add(
        &s,
        "",
        &[("sp%C3%A4ce+name.txt", "application/octet-stream", b"x")],
    )
    .await;
    assert_eq!(ndjson(&body)[0]["Name"], "späce name.txt");

    // wrap-with-directory: the file, then the wrapper named ""
    let (_, body) = add(
        &s,
        "wrap-with-directory=true",
        &[("file.txt", "application/octet-stream", b"IPFS\n")],
    )
    .await;
    let lines = ndjson(&body);
    assert_eq!(
        lines[0]["Hash"],
        "QmdFyxZXsFiP4csgfM5uPu99AvFiKH62CSPDw5TP92nr7w"
    );
    assert_eq!(lines[1]["Name"], "");
    let wrapped = lines[1]["Hash"].as_str().unwrap();
    let got = client()
        .get(format!("{}/ipfs/{wrapped}/file.txt", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(got, "IPFS\n");

    // options: cid-version, raw-leaves, profile (Kubo's CIDs), then chunker and pin
    let hw_v1 = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e";
    let empty_raw = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
    for (query, data, want) in [
        ("cid-version=1", &b"hello world"[..], hw_v1),
        ("raw-leaves=true", b"", empty_raw),
        ("profile=unixfs-v1-2025", b"hello world", hw_v1),
    ] {
        let (_, body) = add(&s, query, &[("f", "text/plain", data)]).await;
        assert_eq!(ndjson(&body)[0]["Hash"], want, "{query}");
    }
    let (_, body) = add(
        &s,
        "chunker=size-4&pin=false",
        &[("h", "text/plain", b"hello world\n")],
    )
    .await;
    let chunked = ndjson(&body)[0]["Hash"].as_str().unwrap().to_string();
    assert_ne!(chunked, "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o");
    let cat = post(&s, &format!("cat?arg={chunked}"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(cat, "hello world\n");

    let pins: Value = post(&s, "pin/ls").await.json().await.unwrap();
    let keys = pins["Keys"].as_object().unwrap();
    assert!(keys.contains_key("QmZQWnfcqJ6hNkkPvrY9Q5X39GP3jUnUbAV4AbmbbR3Cb1"));
    assert!(keys.contains_key(wrapped));
    assert!(!keys.contains_key(&chunked), "pin=false must not pin");
    let r = post(&s, &format!("pin/rm?arg={wrapped}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = post(&s, &format!("pin/rm?arg={wrapped}")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn progress_lines_stream_while_adding() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path(), &[]);
    let data = rand_bytes(3 << 20, 5);
    let (st, body) = add(
        &s,
        "progress=true",
        &[("big.bin", "application/octet-stream", &data)],
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let lines = ndjson(&body);
    let progress: Vec<u64> = lines.iter().filter_map(|l| l["Bytes"].as_u64()).collect();
    assert!(progress.len() >= 2, "expected progress lines, got {body}");
    assert!(progress.windows(2).all(|w| w[0] < w[1]));
    let last = lines.last().unwrap();
    assert_eq!(last["Name"], "big.bin");
    let cid = last["Hash"].as_str().unwrap();
    let got = post(&s, &format!("cat?arg={cid}"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(&got[..], &data[..]);
}

#[tokio::test]
async fn reads_cat_get_ls_id_version() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path(), &[]);
    let big = rand_bytes(1_500_000, 9);
    let (_, body) = add(
        &s,
        "",
        &[
            ("t", "application/x-directory", b""),
            (
                "t%2Fhello.txt",
                "application/octet-stream",
                b"Hello Worlds!\n",
            ),
            ("t%2Fsub", "application/x-directory", b""),
            ("t%2Fsub%2Fbig.bin", "application/octet-stream", &big),
            ("t%2Fempty", "application/x-directory", b""),
            ("t%2Flink", "application/symlink", b"hello.txt"),
        ],
    )
    .await;
    let root = ndjson(&body).last().unwrap()["Hash"]
        .as_str()
        .unwrap()
        .to_string();

    // cat with Kubo's offset/length semantics (t0040)
    let f = "QmVr26fY1tKyspEJBniVhqxQeEjhF78XerGiqWAwraVLQH";
    for (q, want) in [
        ("", "Hello Worlds!\n"),
        ("&offset=10", "ds!\n"),
        ("&length=8", "Hello Wo"),
        ("&length=0", ""),
        ("&length=100", "Hello Worlds!\n"),
        ("&offset=14", ""),
    ] {
        let r = post(&s, &format!("cat?arg={f}{q}")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.text().await.unwrap(), want, "cat {q}");
    }
    let r = post(
        &s,
        &format!("cat?arg=/ipfs/{root}/sub/big.bin&offset=1000000&length=300000"),
    )
    .await;
    assert_eq!(r.headers()["content-length"], "300000");
    assert_eq!(&r.bytes().await.unwrap()[..], &big[1_000_000..1_300_000]);
    let r = post(&s, &format!("cat?arg={root}")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(error_text(&r.text().await.unwrap()).contains("directory"));
    let r = post(&s, &format!("cat?arg={f}&offset=-3")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = post(&s, &format!("cat?arg={f}&offset=99")).await;
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // ls: Kubo's JSON
    let v: Value = post(&s, &format!("ls?arg={root}"))
        .await
        .json()
        .await
        .unwrap();
    let links = v["Objects"][0]["Links"].as_array().unwrap();
    let row = |n: &str| links.iter().find(|l| l["Name"] == n).unwrap().clone();
    assert_eq!(links.len(), 4);
    assert_eq!(
        (
            row("hello.txt")["Type"].as_u64(),
            row("hello.txt")["Size"].as_u64()
        ),
        (Some(2), Some(14))
    );
    assert_eq!(row("hello.txt")["Hash"], f);
    assert_eq!(row("sub")["Type"], 1);
    assert_eq!(row("link")["Type"], 4);
    assert_eq!(row("link")["Target"], "hello.txt");

    // get: a tar laid out like `ipfs get`
    let r = post(&s, &format!("get?arg={root}")).await;
    assert_eq!(r.headers()["content-type"], "application/x-tar");
    let bytes = r.bytes().await.unwrap();
    let mut ar = tar::Archive::new(&bytes[..]);
    let mut paths: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string()
        })
        .collect();
    paths.sort();
    let want: Vec<String> = ["", "/empty", "/hello.txt", "/link", "/sub", "/sub/big.bin"]
        .iter()
        .map(|p| format!("{root}{p}"))
        .collect();
    assert_eq!(paths, want);

    let id: Value = post(&s, "id").await.json().await.unwrap();
    assert!(id["ID"].as_str().unwrap().starts_with("12D3KooW"));
    assert!(id["Addresses"][0].as_str().unwrap().contains("/p2p/"));
    assert!(!id["PublicKey"].as_str().unwrap().is_empty());
    let v: Value = post(&s, "version").await.json().await.unwrap();
    assert_eq!(v["Version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn path_gateway_ranges_listings_and_tar() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path(), &[]);
    let data = rand_bytes(700_000, 1);
    let (_, body) = add(
        &s,
        "",
        &[
            ("d", "application/x-directory", b""),
            ("d%2Fdata.bin", "application/octet-stream", &data),
            ("d%2Fa.txt", "text/plain", b"abc"),
        ],
    )
    .await;
    let root = ndjson(&body).last().unwrap()["Hash"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("{}/ipfs/{root}/data.bin", s.url);
    let c = client();

    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-length"], "700000");
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(&r.bytes().await.unwrap()[..], &data[..]);
    for (range, start, end) in [
        ("bytes=0-9", 0usize, 10usize),
        ("bytes=262140-262150", 262140, 262151),
        ("bytes=699990-", 699990, 700000),
        ("bytes=-5", 699995, 700000),
    ] {
        let r = c.get(&url).header("range", range).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes {start}-{}/700000", end - 1).as_str()
        );
        assert_eq!(&r.bytes().await.unwrap()[..], &data[start..end], "{range}");
    }
    let r = c
        .get(&url)
        .header("range", "bytes=700000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers()["content-range"], "bytes */700000");
    let r = c.head(&url).send().await.unwrap();
    assert_eq!(
        (r.status(), r.headers()["content-length"].to_str().unwrap()),
        (StatusCode::OK, "700000")
    );

    let v: Value = c
        .get(format!("{}/ipfs/{root}", s.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["cid"], root.as_str());
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(
        entries
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["a.txt", "data.bin"]
    );
    assert_eq!(entries[1]["size"], 700000);
    assert_eq!(entries[1]["type"], "file");

    let r = c
        .get(format!("{}/ipfs/{root}?format=tar", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/x-tar");
    let bytes = r.bytes().await.unwrap();
    let mut ar = tar::Archive::new(&bytes[..]);
    let mut found = false;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().ends_with("data.bin") {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            assert_eq!(v, data);
            found = true;
        }
    }
    assert!(found);
    let r = c
        .get(format!("{}/ipfs/{root}/missing", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_requests_get_clear_json_errors_and_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        tmp.path(),
        &["--fetch-timeout", "1s", "--max-body-size", "1MiB"],
    );
    let keep = rand_bytes(300_000, 77);
    let (_, body) = add(&s, "", &[("keep.bin", "application/octet-stream", &keep)]).await;
    let keep_cid = ndjson(&body)[0]["Hash"].as_str().unwrap().to_string();
    let c = client();

    // malformed CID → 400, on the API and the gateway
    let r = post(&s, "cat?arg=not-a-cid").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(error_text(&r.text().await.unwrap()).contains("invalid CID"));
    let r = c.get(format!("{}/ipfs/Qm123", s.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = post(&s, "cat").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // absent CID → 404 after the configured wait, not forever
    let t = Instant::now();
    let r = post(
        &s,
        "cat?arg=bafkreie7ohywtosou76tasm7j63yigtzxe7d5zqus4zu3j6oltvgtibeom",
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(error_text(&r.text().await.unwrap()).contains("not found"));
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(15),
        "waited {waited:?}"
    );

    // oversized body → 413: a declared Content-Length is refused before any body byte is read
    // (headers only on a raw socket), a chunked body once it crosses the limit
    {
        use std::io::{Read, Write};
        let addr = s.url.trim_start_matches("http://");
        let mut sock = std::net::TcpStream::connect(addr).unwrap();
        let head = format!(
            "POST /api/v0/add HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: {}\r\n\r\n",
            5u64 << 30
        );
        sock.write_all(head.as_bytes()).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut resp = vec![0u8; 4096];
        let n = sock.read(&mut resp).unwrap();
        let resp = String::from_utf8_lossy(&resp[..n]).into_owned();
        assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
        assert!(resp.contains("\"error\""), "{resp}");
    }
    let big = rand_bytes(2 << 20, 1);
    let (ct, body) = multipart(&[("big", "application/octet-stream", &big)]);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let r = c
        .post(s.api("add"))
        .header("content-type", ct)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(error_text(&r.text().await.unwrap()).contains("limit"));

    // escaping file names → 400 (also with progress on)
    for name in [
        "..%2Fescape",
        "a%2F..%2F..%2Fb",
        "%2Fetc%2Fpasswd",
        "..",
        "a%2F%2Fb",
    ] {
        for q in ["", "progress=true"] {
            let (st, body) = add(&s, q, &[(name, "application/octet-stream", b"x")]).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{name} {q}: {body}");
            assert!(error_text(&body).contains("invalid path"), "{body}");
        }
    }
    // duplicate names, non-multipart bodies, bad options, bad methods, unknown routes
    let (st, body) = add(
        &s,
        "",
        &[("x", "text/plain", b"1"), ("x", "text/plain", b"2")],
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    let r = c
        .post(s.api("add"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    for q in [
        "cid-version=7",
        "chunker=rabin",
        "pin=maybe",
        "profile=nope",
        "hash=md5",
    ] {
        let (st, body) = add(&s, q, &[("x", "text/plain", b"1")]).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{q}: {body}");
    }
    let r = c
        .post(s.api("add"))
        .header("content-type", "multipart/form-data; boundary=zzz")
        .body("--zzz\r\ngarbage")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c.get(s.api("cat")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(!error_text(&r.text().await.unwrap()).is_empty());
    let r = c.get(format!("{}/nope", s.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // everything stored before is intact and still pinned
    let got = post(&s, &format!("cat?arg={keep_cid}"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(&got[..], &keep[..]);
    let pins: Value = post(&s, "pin/ls").await.json().await.unwrap();
    assert_eq!(
        pins["Keys"].as_object().unwrap().len(),
        1,
        "failed adds must not pin anything: {pins}"
    );
}

#[tokio::test]
async fn state_changing_endpoints_need_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path(), &["--api-token", "s3cret"]);
    let (ct, body) = multipart(&[("a", "text/plain", b"hello world\n")]);
    let c = client();
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("s3cret"),
        Some("Bearer s3cret2"),
    ] {
        let mut r = c
            .post(s.api("add"))
            .header("content-type", ct.clone())
            .body(body.clone());
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }
    let r = c
        .post(s.api("pin/rm?arg=QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .post(s.api("add"))
        .header("content-type", ct)
        .header("authorization", "Bearer s3cret")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // reads stay open
    let r = post(&s, "cat?arg=QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o").await;
    assert_eq!(r.text().await.unwrap(), "hello world\n");
    let r = c
        .get(format!(
            "{}/ipfs/QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
            s.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn metrics_and_health() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path(), &[]);
    let (_, body) = add(&s, "", &[("a", "text/plain", &rand_bytes(600_000, 2))]).await;
    let cid = ndjson(&body)[0]["Hash"].as_str().unwrap().to_string();
    let _ = post(&s, &format!("cat?arg={cid}"))
        .await
        .bytes()
        .await
        .unwrap();
    let c = client();
    let h: Value = c
        .get(format!("{}/healthz", s.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ok");
    let m = c
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metric = |name: &str| -> f64 {
        m.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(metric("ipfaas_store_added_bytes_total"), 600_000.0);
    assert!(metric("ipfaas_store_read_bytes_total") >= 600_000.0);
    assert!(metric("ipfaas_store_blocks") >= 3.0);
    assert!(metric("ipfaas_store_bytes") >= 600_000.0);
    assert!(metric("ipfaas_store_add_duration_seconds_count") >= 1.0);
    assert!(metric("ipfaas_store_read_duration_seconds_count") >= 1.0);
    assert!(metric("process_resident_memory_bytes") > 0.0);
    assert!(m.contains("ipfaas_http_requests_total{route=\"add\",status=\"200\"} 1"));
}

#[tokio::test]
async fn a_second_node_fetches_content_over_bitswap() {
    let (ta, tb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start(ta.path(), &[]);
    let data = rand_bytes(3 << 20, 21);
    let (_, body) = add(&a, "", &[("shared.bin", "application/octet-stream", &data)]).await;
    let cid = ndjson(&body)[0]["Hash"].as_str().unwrap().to_string();
    let id: Value = post(&a, "id").await.json().await.unwrap();
    let addr = id["Addresses"][0].as_str().unwrap().to_string();

    let b = Server::start(tb.path(), &["--bootstrap", &addr, "--fetch-timeout", "20s"]);
    let r = post(&b, &format!("cat?arg={cid}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(&r.bytes().await.unwrap()[..], &data[..]);
    let m = client()
        .get(format!("{}/metrics", b.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let fetched: f64 = m
        .lines()
        .find(|l| l.starts_with("ipfaas_store_fetched_blocks_total "))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap();
    assert!(
        fetched >= 13.0,
        "3 MiB is 12 leaves and a root: fetched {fetched}"
    );
    // now local on B: served with A gone
    drop(a);
    let r = post(&b, &format!("cat?arg={cid}&offset=3000000&length=10")).await;
    assert_eq!(&r.bytes().await.unwrap()[..], &data[3_000_000..3_000_010]);
}

/// A web page can reach a loopback API: a foreign page's state change is refused before it is
/// read, a rebound host name is refused, an allowed origin works with CORS, and every answer
/// carries the headers that keep served content from running script on the API's origin.
#[tokio::test(flavor = "multi_thread")]
async fn web_pages_cannot_change_the_node_and_rebound_names_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        &tmp.path().join("repo"),
        &["--cors-origin", "https://app.example"],
    );
    let (ct, body) = multipart(&[("a.txt", "application/octet-stream", b"hello")]);
    let send = |origin: Option<&'static str>| {
        let mut r = client()
            .post(s.api("add"))
            .header("content-type", ct.clone())
            .body(body.clone());
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    // a "simple" cross-site form post, as a browser sends it
    let r = send(Some("https://evil.example")).await.unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("--cors-origin"),
        "{v}"
    );
    let pins = || async {
        post_json(&s, "pin/ls").await["Keys"]
            .as_object()
            .unwrap()
            .len()
    };
    assert_eq!(pins().await, 0, "nothing was added");
    // the allowed origin adds, and may read the answer
    let r = send(Some("https://app.example")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        "https://app.example"
    );
    assert_eq!(pins().await, 1, "the allowed page added");
    let pre = client()
        .request(reqwest::Method::OPTIONS, s.api("add"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 204);
    // no origin (curl, the Kubo clients) works as before
    assert_eq!(send(None).await.unwrap().status(), 200);
    // DNS rebinding: the right address, a foreign name
    let r = client()
        .get(format!("{}/healthz", s.url))
        .header("host", "rebind.evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 421);
    // every answer: no sniffing, a sandboxed document
    let r = client()
        .get(format!("{}/healthz", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    assert_eq!(header(&r, "content-security-policy"), "sandbox");
}
