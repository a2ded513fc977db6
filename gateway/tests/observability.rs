//! `deploy/observability/` against the real thing: `promtool` checks the config and runs the
//! rules' unit tests; every metric the rules and the Grafana dashboard read must be on a real
//! node's `/metrics`; a real Prometheus (Debian's `prometheus` package) scrapes a node and
//! answers queries for its series and the recording rules. And the metrics' own hygiene:
//! names, types and buckets.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/observability")
}

/// Runs `promtool ARGS` in the observability folder; asserts success.
fn promtool(args: &[&str]) -> String {
    let o = Command::new("promtool")
        .args(args)
        .current_dir(dir())
        .output()
        .expect("promtool (Debian's prometheus package; .ci/run installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "promtool {args:?}: {text}");
    text
}

/// Metric names in PromQL text: identifiers followed by a selector `{` or a range `[`, and bare
/// `ipfaas_`/`process_` names (in `ipfaas_peers == 0`). Recording rules (with `:`), label
/// names and functions are not.
fn metric_names(promql: &str) -> BTreeSet<String> {
    let b = promql.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        let start_ok = i == 0
            || !(b[i - 1].is_ascii_alphanumeric()
                || b[i - 1] == b'_'
                || b[i - 1] == b':'
                || b[i - 1] == b'$');
        if start_ok && (b[i].is_ascii_alphabetic() || b[i] == b'_') {
            let mut j = i;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b':') {
                j += 1;
            }
            let word = &promql[i..j];
            let next = promql[j..].trim_start().chars().next();
            let in_labels = promql[..i].rfind('{') > promql[..i].rfind('}');
            if !word.contains(':')
                && !in_labels
                && (matches!(next, Some('{') | Some('['))
                    || word.starts_with("ipfaas_")
                    || word.starts_with("process_"))
            {
                out.insert(word.to_string());
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// `expr:` values of a rules file (block scalars included).
fn rule_exprs(yaml: &str) -> Vec<String> {
    let mut exprs = Vec::new();
    let mut lines = yaml.lines().peekable();
    while let Some(l) = lines.next() {
        let Some(rest) = l.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if rest == "|" {
            let indent = l.len() - l.trim_start().len();
            let mut e = String::new();
            while let Some(n) = lines.peek() {
                if n.len() - n.trim_start().len() <= indent && !n.trim().is_empty() {
                    break;
                }
                e.push_str(n.trim());
                e.push(' ');
                lines.next();
            }
            exprs.push(e);
        } else {
            exprs.push(rest.to_string());
        }
    }
    exprs
}

/// Recording rule names a rules file defines.
fn recorded(yaml: &str) -> BTreeSet<String> {
    yaml.lines()
        .filter_map(|l| l.trim_start().strip_prefix("- record:"))
        .map(|n| n.trim().to_string())
        .collect()
}

/// The dashboard's panels' query expressions (rows' nested panels included).
fn dashboard_exprs(d: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = d["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = stack.pop() {
        stack.extend(p["panels"].as_array().into_iter().flatten());
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(
                t["expr"]
                    .as_str()
                    .expect("a target without expr")
                    .to_string(),
            );
        }
    }
    out
}

/// Metric families on a `/metrics` page: name → type.
fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let (n, t) = l.split_once(' ')?;
            Some((n.to_string(), t.to_string()))
        })
        .collect()
}

/// A node with some of everything done: adds, an invocation, a cache hit, a failure.
async fn busy_node(repo: &Path) -> Server {
    let s = Server::start(repo, &[]);
    let d = deploy_files(
        &s,
        &[
            (
                "function.py",
                b"def main(input, params):\n    if params.get('fail'):\n        raise ValueError('no')\n    return len(input.read())\n",
            ),
            ("ipfaas.toml", b"name = \"obs\"\n"),
        ],
    )
    .await;
    let name = d["name"].as_str().unwrap().to_string();
    let cid = add_cid(&s, "", &[("x", b"some bytes")]).await;
    for q in ["", "", "&fail=1"] {
        invoke(&s, &name, &format!("cid={cid}{q}")).await;
    }
    gateway_bytes(&s, &cid).await;
    s
}

#[test]
fn promtool_accepts_the_config_and_the_rules_pass_their_tests() {
    let out = promtool(&["check", "config", "prometheus.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
    let out = promtool(&["check", "rules", "rules.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
    let out = promtool(&["test", "rules", "rules_test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn the_metric_name_scanner_finds_selectors_and_skips_labels_and_rules() {
    let got = metric_names(
        "sum by (job, le) (rate(ipfaas_a_bucket{job=\"x\",stage=~\"b\"}[5m])) / ipfaas:rec:ratio + up{job=\"ipfaas\"} and ipfaas_peers == 0 and foo[1m]",
    );
    let want: BTreeSet<String> = ["ipfaas_a_bucket", "up", "ipfaas_peers", "foo"]
        .map(String::from)
        .into();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_rules_and_dashboard_read_is_on_a_real_node() {
    let tmp = tempfile::tempdir().unwrap();
    let s = busy_node(&tmp.path().join("repo")).await;
    let text = get_text(&format!("{}/metrics", s.url)).await;
    let fams = families(&text);

    let rules = std::fs::read_to_string(dir().join("rules.yml")).unwrap();
    let dashboard: Value =
        serde_json::from_slice(&std::fs::read(dir().join("grafana-dashboard.json")).unwrap())
            .unwrap();
    let mut exprs = rule_exprs(&rules);
    assert!(exprs.len() >= 10, "{exprs:?}");
    let dash = dashboard_exprs(&dashboard);
    assert!(dash.len() >= 20, "{dash:?}");
    exprs.extend(dash.iter().cloned());

    let mut missing = vec![];
    for e in &exprs {
        for m in metric_names(e) {
            if m == "up" {
                continue; // Prometheus makes it; queried from the real one below
            }
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| {
                    m.strip_suffix(s)
                        .filter(|b| fams.get(*b).is_some_and(|t| t == "histogram"))
                })
                .unwrap_or(&m);
            if !fams.contains_key(base) {
                missing.push(format!("{m} (in {e})"));
            }
        }
    }
    assert!(missing.is_empty(), "not on /metrics: {missing:#?}");

    // the dashboard uses only recording rules that rules.yml defines
    let defined = recorded(&rules);
    for e in &dash {
        for w in e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
            if w.starts_with("ipfaas:") {
                assert!(defined.contains(w), "{w} is not recorded in rules.yml");
            }
        }
    }
    // every panel has a data source and a place
    let mut stack: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = stack.pop() {
        assert!(p["gridPos"]["w"].as_u64().is_some(), "{p}");
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{p}");
        }
        stack.extend(p["panels"].as_array().into_iter().flatten());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metric_names_types_and_buckets_follow_prometheus_conventions() {
    let tmp = tempfile::tempdir().unwrap();
    let s = busy_node(&tmp.path().join("repo")).await;
    let text = get_text(&format!("{}/metrics", s.url)).await;
    let fams = families(&text);
    let ours: Vec<(&String, &String)> = fams
        .iter()
        .filter(|(n, _)| n.starts_with("ipfaas_"))
        .collect();
    assert!(ours.len() >= 30, "{ours:?}");
    for (name, kind) in &ours {
        match kind.as_str() {
            "counter" => assert!(name.ends_with("_total"), "counter {name} lacks _total"),
            "histogram" => assert!(
                name.ends_with("_seconds") || name.ends_with("_bytes"),
                "histogram {name}: a unit suffix"
            ),
            "gauge" => assert!(
                !name.ends_with("_total"),
                "gauge {name} named like a counter"
            ),
            other => panic!("{name}: type {other}"),
        }
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name}"
        );
    }
    // sub-millisecond invocations and requests land in buckets of their own
    for h in [
        "ipfaas_invoke_stage_seconds",
        "ipfaas_http_request_duration_seconds",
    ] {
        let smallest = text
            .lines()
            .filter(|l| l.starts_with(&format!("{h}_bucket{{")))
            .filter_map(|l| {
                let le = l.split("le=\"").nth(1)?.split('"').next()?;
                le.parse::<f64>().ok()
            })
            .fold(f64::INFINITY, f64::min);
        assert!(smallest <= 0.0002, "{h}: smallest bucket {smallest}");
    }
}

/// A free loopback port (bound and released: Prometheus takes it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /api/v1/query?query=Q` on Prometheus at `prom`: the result vector.
async fn query(prom: &str, q: &str) -> Vec<Value> {
    let r = client()
        .get(format!("{prom}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .await;
    let Ok(r) = r else { return vec![] };
    let v: Value = r.json().await.unwrap_or_default();
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_scrapes_a_node_and_evaluates_the_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let s = busy_node(&tmp.path().join("repo")).await;
    let target = s.url.trim_start_matches("http://").to_string();
    // the shipped config, with this node as the target, a fast scrape and the rules by path
    let config = std::fs::read_to_string(dir().join("prometheus.yml"))
        .unwrap()
        .replace("127.0.0.1:5001", &target)
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
        .replace(
            "  - rules.yml",
            &format!("  - {}", dir().join("rules.yml").display()),
        );
    assert!(config.contains(&target), "{config}");
    let cfg = tmp.path().join("prometheus.yml");
    std::fs::write(&cfg, config).unwrap();
    let port = free_port();
    let mut prom = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            tmp.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian's prometheus package; .ci/run installs it)");
    let url = format!("http://127.0.0.1:{port}");

    let wait_for = |q: &'static str| {
        let url = url.clone();
        async move {
            let t = Instant::now();
            loop {
                let r = query(&url, q).await;
                if !r.is_empty() {
                    return r;
                }
                assert!(t.elapsed() < Duration::from_secs(60), "no answer to {q}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    let up = wait_for("up{job=\"ipfaas\"} == 1").await;
    assert_eq!(up[0]["metric"]["instance"], target.as_str(), "{up:?}");
    let inv = wait_for("ipfaas_invocations_total").await;
    let outcomes: BTreeSet<&str> = inv
        .iter()
        .filter_map(|v| v["metric"]["outcome"].as_str())
        .collect();
    assert!(
        outcomes.contains("ok") && outcomes.contains("exception"),
        "{inv:?}"
    );
    // more invocations while it watches: the recording rules then have rates to record
    let name = inv[0]["metric"]["function"].as_str().unwrap().to_string();
    let cid = add_cid(&s, "", &[("y", b"more bytes")]).await;
    for i in 0..20 {
        invoke(&s, &name, &format!("cid={cid}&i={i}")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rate = wait_for("ipfaas:invocations:rate5m > 0").await;
    assert_eq!(rate[0]["metric"]["function"], name.as_str(), "{rate:?}");
    wait_for("ipfaas:invoke_stage_seconds:p99_5m").await;
    let _ = prom.kill();
    let _ = prom.wait();
}
