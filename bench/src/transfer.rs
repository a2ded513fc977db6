//! `ipfaas-bench transfer [--sizes-mib 64,1024] [--ipfaas PATH]`: moving a file CID between two
//! nodes on loopback, both ways, against a local read of the same CID on the node that has it.
//!
//! For each size and direction: the holder adds random bytes; then, timed, (1) the holder reads
//! the CID through its own `cat` (the local baseline), (2) the other node reads it through its
//! `cat`, which fetches every block over bitswap (what a fresh node does today), and (3) the
//! bench fetches it from the holder's trustless gateway as one CAR (`?format=car`), checking
//! every block's sha256 against its CID as a verifying client must (what a node could do
//! between nodes instead of per-block round trips). The fetching node's resident memory is
//! sampled before and after.

use super::invoke::{Server, ipfaas_binary};
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Peak and current resident memory of `pid`, in MiB (`VmHWM`, `VmRSS`).
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmHWM:"), field("VmRSS:"))
}

async fn json(http: &reqwest::Client, url: &str) -> Result<serde_json::Value> {
    let r = http.post(url).send().await?;
    if !r.status().is_success() {
        bail!("{url}: {}", r.status());
    }
    Ok(r.json().await?)
}

/// A node's loopback swarm address with its peer id.
async fn p2p_addr(http: &reqwest::Client, s: &Server) -> Result<String> {
    let t = Instant::now();
    loop {
        let id = json(http, &s.api("id")).await?;
        let peer = id["ID"].as_str().context("no ID")?.to_string();
        let addr = id["Addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str())
            .find(|a| a.starts_with("/ip4/127.0.0.1/tcp/"))
            .map(|a| a.split("/p2p/").next().unwrap_or(a).to_string());
        if let Some(a) = addr {
            return Ok(format!("{a}/p2p/{peer}"));
        }
        if t.elapsed() > Duration::from_secs(10) {
            bail!("no loopback swarm address: {id}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Streams `cat` of `cid` from `s`, counting bytes; (bytes, time).
async fn cat(http: &reqwest::Client, s: &Server, cid: &str) -> Result<(u64, Duration)> {
    let t = Instant::now();
    let r = http
        .post(s.api(&format!("cat?arg={cid}")))
        .timeout(Duration::from_secs(3600))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("cat {cid}: {} {}", r.status(), r.text().await?);
    }
    let mut n = 0u64;
    let mut body = r.bytes_stream();
    while let Some(b) = body.next().await {
        n += b?.len() as u64;
    }
    Ok((n, t.elapsed()))
}

/// Fetches `cid` as a CAR from `s`'s trustless gateway, checking every block against its CID;
/// (bytes of all blocks, blocks, time).
async fn car(http: &reqwest::Client, s: &Server, cid: &str) -> Result<(u64, u64, Duration)> {
    use sha2::Digest;
    let t = Instant::now();
    let r = http
        .get(format!("{}/ipfs/{cid}?format=car", s.url))
        .timeout(Duration::from_secs(3600))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("car {cid}: {}", r.status());
    }
    let mut body = r.bytes_stream();
    let mut buf = bytes::BytesMut::new();
    let (mut header_done, mut bytes, mut blocks) = (false, 0u64, 0u64);
    loop {
        // take every whole section in the buffer
        loop {
            let mut len = 0u64;
            let mut shift = 0;
            let mut used = None;
            for (i, b) in buf.iter().enumerate().take(10) {
                len |= u64::from(b & 0x7f) << shift;
                shift += 7;
                if b & 0x80 == 0 {
                    used = Some(i + 1);
                    break;
                }
            }
            let Some(used) = used else { break };
            if buf.len() < used + len as usize {
                break;
            }
            let section = buf.split_to(used + len as usize).split_off(used);
            if !header_done {
                header_done = true;
                continue;
            }
            let mut r = std::io::Cursor::new(&section[..]);
            let c = cid::Cid::read_bytes(&mut r).context("a section's CID")?;
            let data = &section[r.position() as usize..];
            if c.hash().code() != 0x12 || c.hash().digest() != sha2::Sha256::digest(data).as_slice()
            {
                bail!("block {c} does not match its CID");
            }
            bytes += data.len() as u64;
            blocks += 1;
        }
        match body.next().await {
            Some(b) => buf.extend_from_slice(&b?),
            None => break,
        }
    }
    if !buf.is_empty() {
        bail!("the CAR ends inside a section");
    }
    Ok((bytes, blocks, t.elapsed()))
}

fn mbs(n: u64, d: Duration) -> f64 {
    n as f64 / 1e6 / d.as_secs_f64()
}

/// `ipfaas add -Q` of `size` random bytes into the running node `s`; the CID.
fn add(bin: &Path, s: &Server, dir: &Path, size: u64, seed: u64) -> Result<String> {
    let file = dir.join(format!("data-{seed}"));
    super::write_seeded_file(&file, size, seed)?;
    let o = std::process::Command::new(bin)
        .args(["add", "-Q", "--repo"])
        .arg(&s.repo)
        .arg(&file)
        .output()?;
    std::fs::remove_file(&file)?;
    if !o.status.success() {
        bail!("ipfaas add: {}", String::from_utf8_lossy(&o.stderr));
    }
    Ok(String::from_utf8(o.stdout)?.trim().to_string())
}

pub async fn run(args: &[String]) -> Result<()> {
    let sizes: Vec<u64> = super::arg::<String>(args, "--sizes-mib")
        .unwrap_or_else(|| "64,1024".into())
        .split(',')
        .map(|s| s.trim().parse::<u64>().map(|m| m << 20))
        .collect::<Result<_, _>>()?;
    let bin = ipfaas_binary(args)?;
    println!("ipfaas: {}", bin.display());
    let dir = tempfile::tempdir()?;
    let http = reqwest::Client::new();
    let swarm = ["--no-examples", "--swarm-listen", "/ip4/127.0.0.1/tcp/0"];
    let a = Server::spawn(&bin, &dir.path().join("a"), &swarm)?;
    let a_addr = p2p_addr(&http, &a).await?;
    let mut b_args = swarm.to_vec();
    b_args.extend(["--bootstrap", &a_addr, "--fetch-timeout", "600s"]);
    let b = Server::spawn(&bin, &dir.path().join("b"), &b_args)?;
    p2p_addr(&http, &b).await?;
    // B dialled A at start; wait until each sees the other
    let t = Instant::now();
    while json(&http, &a.api("swarm/peers")).await?["Peers"]
        .as_array()
        .is_none_or(|p| p.is_empty())
    {
        if t.elapsed() > Duration::from_secs(20) {
            bail!("the nodes did not connect");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "\n| size | direction | local read MB/s | bitswap MB/s | bitswap / local | CAR over HTTP MB/s (verified) | CAR / local | fetcher RSS before → after (peak) MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut seed = 0;
    for &size in &sizes {
        for (from, to, name) in [(&a, &b, "A → B"), (&b, &a, "B → A")] {
            // bytes of their own: no block is already on the fetching node
            seed += 1;
            let cid = add(&bin, from, dir.path(), size, seed)?;
            let (n, local) = cat(&http, from, &cid).await?;
            if n != size {
                bail!("local cat gave {n} bytes of {size}");
            }
            let (_, rss0) = rss_mib(to.pid());
            let (n, remote) = cat(&http, to, &cid).await?;
            if n != size {
                bail!("bitswap cat gave {n} bytes of {size}");
            }
            let (peak, rss1) = rss_mib(to.pid());
            let (n, blocks, over_car) = car(&http, from, &cid).await?;
            // dag-pb leaves wrap the file's bytes: the blocks hold a little more than it
            if n < size {
                bail!("the CAR held {n} bytes ({blocks} blocks) for a {size}-byte file");
            }
            println!(
                "| {} MiB | {name} | {:.0} | {:.0} | {:.2} | {:.0} | {:.2} | {rss0:.0} → {rss1:.0} ({peak:.0}) |",
                size >> 20,
                mbs(size, local),
                mbs(size, remote),
                local.as_secs_f64() / remote.as_secs_f64(),
                mbs(size, over_car),
                local.as_secs_f64() / over_car.as_secs_f64(),
            );
        }
    }
    println!("\n(targets: node to node >= 250 MB/s for 1 GiB, with flat memory)");
    Ok(())
}
