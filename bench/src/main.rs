//! ipfaas benchmarks. Not tests: each prints its numbers and a ratio against a baseline measured
//! in the same run, on the same machine and input.
//!
//! `ipfaas-bench store-add [--size-mib N] [--dir DIR]`: adds one file of N MiB (default 1024) of
//! random bytes to an on-disk repo, once with rust-ipfs' stock store (fsync per block) and once
//! with ipfaas' store (one syncfs per add), and prints MB/s for both and the ratio. The disk's
//! own rate (a copy of the input plus fsync) is measured in the same run: on a virtual disk whose
//! throughput drifts, it tells whether a slow result is the store or the disk.
//!
//! `ipfaas-bench invoke [--iters N] [--seconds S] [--concurrency C] [--sha-mib N]`: see
//! [`invoke`]; needs the release `ipfaas` binary beside this one.
//!
//! `ipfaas-bench docker [--iters N] [--size-kib N]`: see [`docker`].
//!
//! `ipfaas-bench soak [--minutes M] [--workers W] [--no-docker]`: see [`soak`].
//! `ipfaas-bench load [--minutes M] [--clients C]`: see [`load`].

mod docker;
mod exe;
mod invoke;
mod load;
mod peers;
mod soak;
mod transfer;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use ipfaas_runtime::store::add::AddOptions;
use ipfaas_runtime::{Store, StoreConfig};
use rust_ipfs::builder::DefaultIpfsBuilder;
use rust_ipfs::unixfs::UnixfsStatus;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn write_random_file(path: &Path, size: u64) -> Result<()> {
    write_seeded_file(path, size, 0)
}

/// `size` pseudo-random bytes; a different `seed` gives different bytes (no shared blocks).
fn write_seeded_file(path: &Path, size: u64, seed: u64) -> Result<()> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut s = 0x9E37_79B9_7F4A_7C15u64 ^ seed.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for w in buf.chunks_exact_mut(8) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            w.copy_from_slice(&s.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.into_inner()?.sync_all()?;
    Ok(())
}

/// Flushes earlier dirty pages so one run's write-back does not land in the next one's time.
fn sync_all() {
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

/// The disk itself: the same bytes copied to a new file on the same file system, then fsync'd.
fn raw_copy(file: &Path, dir: &Path) -> Result<Duration> {
    let dest = dir.join("raw-copy.bin");
    let t = Instant::now();
    std::fs::copy(file, &dest)?;
    std::fs::File::open(&dest)?.sync_all()?;
    let el = t.elapsed();
    std::fs::remove_file(&dest)?;
    Ok(el)
}

async fn stock_add(repo: &Path, file: &Path) -> Result<(String, Duration)> {
    let ipfs = DefaultIpfsBuilder::new().set_path(repo).start().await?;
    let t = Instant::now();
    let mut st = ipfs
        .add_unixfs(file.to_path_buf())
        .cid_version(cid::Version::V0);
    let mut cid = None;
    while let Some(s) = st.next().await {
        match s {
            UnixfsStatus::CompletedStatus { path, .. } => {
                cid = path.root().cid().map(ToString::to_string)
            }
            UnixfsStatus::FailedStatus { error, .. } => return Err(error),
            _ => {}
        }
    }
    let el = t.elapsed();
    ipfs.exit_daemon().await;
    Ok((cid.context("stock add returned no CID")?, el))
}

async fn ipfaas_add(repo: &Path, file: &Path) -> Result<(String, Duration)> {
    let store = Store::open(StoreConfig::offline(repo), &prometheus::Registry::new()).await?;
    let t = Instant::now();
    let f = file.to_path_buf();
    let out = store
        .add(AddOptions::default(), move |a| {
            a.local(&f, "f", false, false, &mut |_, _| {})
        })
        .await?;
    let el = t.elapsed();
    store.shutdown().await;
    Ok((out.roots[0].cid.to_string(), el))
}

async fn store_add(args: &[String]) -> Result<()> {
    let size_mib: u64 = arg(args, "--size-mib").unwrap_or(1024);
    let dir: PathBuf = arg::<String>(args, "--dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench-store-add"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let size = size_mib << 20;
    let file = dir.join("input.bin");
    eprintln!(
        "writing {size_mib} MiB of random input to {} ...",
        file.display()
    );
    write_random_file(&file, size)?;

    sync_all();
    eprintln!("baseline: the disk (copy + fsync) ...");
    let raw_t = raw_copy(&file, &dir)?;
    sync_all();
    eprintln!("baseline: rust-ipfs stock on-disk store (fsync per block) ...");
    let (stock_cid, stock_t) = stock_add(&dir.join("stock-repo"), &file).await?;
    sync_all();
    eprintln!("ipfaas store (one syncfs per add) ...");
    let (our_cid, our_t) = ipfaas_add(&dir.join("ipfaas-repo"), &file).await?;
    if our_cid != stock_cid {
        bail!("CIDs differ: ipfaas {our_cid} vs stock {stock_cid}");
    }
    let (ours, stock, raw) = (mbps(size, our_t), mbps(size, stock_t), mbps(size, raw_t));
    println!("store-add: {size_mib} MiB file, CID {our_cid} (same from both)");
    println!("  disk (copy + fsync)   : {raw:8.1} MB/s ({raw_t:.2?})");
    println!("  stock rust-ipfs store : {stock:8.1} MB/s ({stock_t:.2?})");
    println!("  ipfaas store          : {ours:8.1} MB/s ({our_t:.2?})");
    println!("  ratio ipfaas/stock    : {:8.2}x", ours / stock);
    println!("  ratio ipfaas/disk     : {:8.2}x", ours / raw);
    println!(
        "  target >= 250 MB/s    : {}",
        if ours >= 250.0 { "met" } else { "NOT met" }
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    ipfaas_runtime::pypkg::index::install_crypto_provider();
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("store-add") => store_add(&args).await,
        Some("invoke") => invoke::run(&args).await,
        Some("docker") => docker::run(&args).await,
        Some("soak") => soak::run(&args).await,
        Some("load") => load::run(&args).await,
        Some("peers") => peers::run(&args).await,
        Some("transfer") => transfer::run(&args).await,
        _ => bail!(
            "usage: ipfaas-bench store-add [--size-mib N] [--dir DIR]\n       ipfaas-bench invoke [--iters N] [--seconds S] [--concurrency C] [--sha-mib N] [--ipfaas PATH]\n       ipfaas-bench docker [--iters N] [--size-kib N] [--ipfaas PATH]\n       ipfaas-bench soak [--minutes M] [--workers W] [--no-docker] [--ipfaas PATH]\n       ipfaas-bench load [--minutes M] [--clients C] [--ipfaas PATH]\n       ipfaas-bench peers [--seconds S] [--rounds R] [--ipfaas PATH]\n       ipfaas-bench transfer [--sizes-mib 64,1024] [--ipfaas PATH]"
        ),
    }
}
