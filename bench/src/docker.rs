//! `ipfaas-bench docker [--iters N] [--size-kib N]`: end-to-end invocation of a Docker function
//! over HTTP against the same container started by hand (`docker run --rm`, the same image,
//! isolation flags and input mounted read-only), in one run; prints the ratio and the
//! breakdown by stage from `Server-Timing`.

use super::invoke::{ipfaas_binary, ms, pct, start};
use anyhow::{Context, Result, bail};
use ipfaas_runtime::invoke::headers;
use std::process::Command;
use std::time::Instant;

const PROBE_C: &str = include_str!("../../gateway/tests/fixtures/probe.c");

fn docker(args: &[&str]) -> Result<String> {
    let o = Command::new("docker")
        .args(args)
        .output()
        .context("docker CLI")?;
    if !o.status.success() {
        bail!("docker {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
    Ok(String::from_utf8(o.stdout)?)
}

/// Builds the tests' probe (a static C program) into a `FROM scratch` image tagged `tag`.
pub(crate) fn probe_image(dir: &std::path::Path, tag: &str) -> Result<()> {
    std::fs::write(dir.join("probe.c"), PROBE_C)?;
    let st = Command::new("gcc")
        .args(["-static", "-O2", "-o", "probe", "probe.c"])
        .current_dir(dir)
        .status()?;
    if !st.success() {
        bail!("gcc -static failed");
    }
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY probe /probe\nENTRYPOINT [\"/probe\"]\n",
    )?;
    docker(&["build", "-q", "-t", tag, dir.to_str().unwrap()])?;
    Ok(())
}

fn timing(h: &str, name: &str) -> f64 {
    h.split(',')
        .find_map(|p| p.trim().strip_prefix(&format!("{name};dur=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

pub async fn run(args: &[String]) -> Result<()> {
    let iters: usize = super::arg(args, "--iters").unwrap_or(30);
    let size_kib: usize = super::arg(args, "--size-kib").unwrap_or(1024);
    let dir = tempfile::tempdir()?;
    let tag = "ipfaas-bench-probe:latest";
    probe_image(dir.path(), tag)?;

    let bin = ipfaas_binary(args)?;
    let repo = dir.path().join("repo");
    let s = start(&bin, &repo)?;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/v1/functions", s.url))
        .json(&serde_json::json!({"name": "cat", "kind": "docker", "image": tag}))
        .send()
        .await?;
    if r.status() != 201 {
        bail!("deploy: {}", r.text().await?);
    }
    let input: Vec<u8> = (0..size_kib * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let input_file = dir.path().join("input.bin");
    std::fs::write(&input_file, &input)?;
    let cid = http
        .post(format!("{}/v1/functions/cat/invoke?mode=cat", s.url))
        .body(input.clone())
        .send()
        .await?
        .headers()
        .get(headers::INPUT_CID)
        .context("no input CID")?
        .to_str()?
        .to_string();
    let url = format!("{}/v1/functions/cat/invoke?cid={cid}&mode=cat", s.url);

    let (mut ours, mut stages) = (Vec::new(), [0.0f64; 4]);
    for _ in 0..iters {
        let t = Instant::now();
        let r = http.post(&url).send().await?;
        let h = r
            .headers()
            .get("server-timing")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = r.bytes().await?;
        ours.push(t.elapsed());
        if body.as_ref() != input.as_slice() {
            bail!("wrong output");
        }
        for (i, n) in ["fetch", "instantiate", "execute", "publish"]
            .iter()
            .enumerate()
        {
            stages[i] += timing(&h, n);
        }
    }

    // the same container by hand: same image, isolation flags and a read-only input mount
    let mount = dir.path().join("inputs");
    std::fs::create_dir_all(&mount)?;
    std::fs::copy(&input_file, mount.join(&cid))?;
    let outputs = tempfile::tempdir()?;
    let docker_cli = crate::exe::tool("docker")?;
    println!("baseline: `docker run --rm` with {docker_cli}");
    let mut theirs = Vec::new();
    for _ in 0..iters {
        let t = Instant::now();
        let o = Command::new(&docker_cli.path)
            .args(["run", "--rm", "--network", "none", "--read-only"])
            .args(["--security-opt", "no-new-privileges", "--cap-drop", "ALL"])
            .args([
                "--memory",
                "256m",
                "--pids-limit",
                "128",
                "--log-driver",
                "none",
            ])
            .arg("-v")
            .arg(format!("{}:/inputs:ro", mount.display()))
            .arg("-v")
            .arg(format!("{}:/outputs", outputs.path().display()))
            .args(["-e", "IPFAAS_PARAM_MODE=cat", "-e"])
            .arg(format!("IPFAAS_INPUT=/inputs/{cid}"))
            .arg(tag)
            .output()?;
        theirs.push(t.elapsed());
        if o.stdout != input {
            bail!(
                "docker run gave the wrong output: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    let (a, b) = (pct(&mut ours, 0.5), pct(&mut theirs, 0.5));
    let n = iters as f64;
    println!("Docker function, {size_kib} KiB input, {iters} runs each:");
    println!("  ipfaas invoke over HTTP : median {:.1} ms", ms(a));
    println!(
        "    stages (mean): fetch/export {:.1} ms, create+start {:.1} ms, run {:.1} ms, output+remove {:.1} ms",
        stages[0] / n,
        stages[1] / n,
        stages[2] / n,
        stages[3] / n
    );
    println!("  docker run --rm         : median {:.1} ms", ms(b));
    println!(
        "  ratio ipfaas/docker run : {:.2} [target <= 1.2]",
        a.as_secs_f64() / b.as_secs_f64()
    );
    drop(s);
    let _ = docker(&["rmi", "-f", tag]);
    Ok(())
}
