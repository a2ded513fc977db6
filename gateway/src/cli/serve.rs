//! `ipfaas serve`: the gateway — the embedded IPFS node, the functions, the network of nodes
//! and the HTTP API — configured from flags and `<repo>/config.toml`.

use super::ServeArgs;
use super::client::api_file;
use super::examples;
use crate::api::{self, App, ServerConfig};
use crate::units::parse_size;
use anyhow::{Context, Result};
use ipfaas_runtime::invoke::{Functions, FunctionsConfig, NetworkConfig, PeerInvoke};
use ipfaas_runtime::jobs::{Jobs, JobsConfig};
use ipfaas_runtime::net::Network;
use ipfaas_runtime::{Store, StoreConfig};
use std::path::Path;

fn multiaddrs(list: &[String], flag: &str) -> Result<Vec<rust_ipfs::Multiaddr>> {
    list.iter()
        .map(|a| a.parse().with_context(|| format!("invalid {flag} {a:?}")))
        .collect()
}

/// libp2p's TCP transport listens with SO_REUSEPORT, so a second node on the same port would
/// silently share it (the kernel then splits incoming connections between two unrelated nodes).
/// A plain bind, without SO_REUSEPORT, fails if anyone holds the port: refuse to start then.
fn check_swarm_ports(addrs: &[rust_ipfs::Multiaddr]) -> Result<()> {
    use rust_ipfs::Protocol;
    for a in addrs {
        let mut ip = None;
        let mut port = None;
        for p in a.iter() {
            match p {
                Protocol::Ip4(v) => ip = Some(std::net::IpAddr::V4(v)),
                Protocol::Ip6(v) => ip = Some(std::net::IpAddr::V6(v)),
                Protocol::Tcp(p) if p != 0 => port = Some(p),
                _ => {}
            }
        }
        if let (Some(ip), Some(port)) = (ip, port) {
            std::net::TcpListener::bind((ip, port)).with_context(|| {
                format!("swarm address {a} is not free (another IPFS node on this port?); choose one with --swarm-listen")
            })?;
        }
    }
    Ok(())
}

/// `serve` settings that may also come from a config file.
#[derive(serde::Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    bootstrap: Vec<String>,
    #[serde(default)]
    swarm_listen: Vec<String>,
    forward_threshold: Option<String>,
    peer_invoke: Option<String>,
    #[serde(default)]
    peer_allow: Vec<String>,
    fetch_on_read: Option<bool>,
    index_url: Option<String>,
    #[serde(default)]
    extra_index_url: Vec<String>,
    #[serde(default)]
    find_links: Vec<String>,
    no_index: Option<bool>,
}

fn read_config(repo: &Path, given: Option<&Path>) -> Result<FileConfig> {
    let (path, must) = match given {
        Some(p) => (p.to_path_buf(), true),
        None => (repo.join("config.toml"), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if !must && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(FileConfig::default());
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    toml::from_str(&text).with_context(|| format!("{} is not a valid config", path.display()))
}

/// "off" (or "none", "0") never forwards; otherwise a size such as 64MiB.
fn forward_threshold(s: &str) -> Result<Option<u64>> {
    match s.trim() {
        "off" | "none" | "0" => Ok(None),
        v => Ok(Some(
            parse_size(v).map_err(anyhow::Error::msg).with_context(|| {
                format!("forward threshold {v:?}: expected a size (64MiB) or \"off\"")
            })?,
        )),
    }
}

/// Runs the gateway until a shutdown signal.
pub(super) async fn serve(
    repo: &Path,
    api_token: Option<String>,
    api_token_file: Option<&Path>,
    args: ServeArgs,
) -> Result<()> {
    let file = read_config(repo, args.config.as_deref())?;
    let mut listen_list = args.swarm_listen.clone();
    if listen_list.is_empty() {
        listen_list = file.swarm_listen.clone();
    }
    if listen_list.is_empty() {
        listen_list.push("/ip4/0.0.0.0/tcp/4001".into());
    }
    let mut bootstrap_list = file.bootstrap.clone();
    bootstrap_list.extend(args.bootstrap.iter().cloned());
    let forward = forward_threshold(
        args.forward_threshold
            .as_deref()
            .or(file.forward_threshold.as_deref())
            .unwrap_or("64MiB"),
    )?;
    let mut peer_allow = file.peer_allow.clone();
    peer_allow.extend(args.peer_allow.iter().cloned());
    let peer_mode = args
        .peer_invoke
        .as_deref()
        .or(file.peer_invoke.as_deref())
        .unwrap_or("allowlist");
    let peer_invoke = PeerInvoke::parse(peer_mode, &peer_allow).map_err(anyhow::Error::msg)?;
    // the API's address and token first: a node that must not serve does not open its repo
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let api_token = super::token::for_server(
        api_token,
        api_token_file,
        addr.ip().is_loopback(),
        args.insecure,
        &args.listen,
    )?;
    let listen = multiaddrs(&listen_list, "--swarm-listen")?;
    let bootstrap = multiaddrs(&bootstrap_list, "--bootstrap")?;
    if !args.offline {
        check_swarm_ports(&listen)?;
    }
    let registry = prometheus::Registry::new();
    let cfg = StoreConfig {
        repo: repo.to_path_buf(),
        listen,
        bootstrap: vec![],
        fetch_timeout: args.fetch_timeout,
        offline: args.offline,
        storage_max: args.storage_max,
        p2p_max_memory: args.p2p_max_memory,
        protocols: vec![ipfaas_runtime::invoke::remote::protocol()],
    };
    let store = Store::open(cfg, &registry).await?;
    let mut fcfg = FunctionsConfig::default();
    // flags, then the config file, then pip's own configuration
    let pk = &mut fcfg.packages;
    if let Some(u) = args.index_url.clone().or(file.index_url.clone()) {
        pk.index_url = Some(u);
    }
    for (flag, conf, dest) in [
        (
            &args.extra_index_url,
            &file.extra_index_url,
            &mut pk.extra_index_urls,
        ),
        (&args.find_links, &file.find_links, &mut pk.find_links),
    ] {
        if !flag.is_empty() {
            *dest = flag.clone();
        } else if !conf.is_empty() {
            *dest = conf.clone();
        }
    }
    pk.no_index |= args.no_index || file.no_index == Some(true);
    let functions = Functions::open(store.clone(), &registry, fcfg)?;
    let network = Network::start(store.clone(), bootstrap, &registry)?;
    functions.attach_network(
        network.clone(),
        NetworkConfig {
            forward_threshold: forward,
            peer_invoke,
        },
    );
    let docker_cfg = ipfaas_runtime::executor::docker::DockerConfig {
        containers: args.max_containers.max(1),
        queue: args.container_queue,
        ..Default::default()
    };
    if let Err(e) = functions.connect_docker(&registry, docker_cfg).await {
        tracing::warn!("Docker functions are off: {e}");
    }
    let url = format!("http://{addr}");
    let api = api_file(store.repo());
    let tmp = api.with_extension("tmp");
    std::fs::write(&tmp, format!("{url}\n"))?;
    std::fs::rename(&tmp, &api)?;
    tracing::info!(
        "ipfaas {} listening on {url} (repo {}, peer {}, auth {}, peer invocations {peer_mode})",
        env!("CARGO_PKG_VERSION"),
        store.repo().display(),
        store.peer_id(),
        if api_token.is_some() { "on" } else { "off" }
    );
    if !args.no_examples {
        examples::deploy_missing(functions.clone());
    }
    let jobs = Jobs::open(
        &store.repo().join("jobs.sqlite"),
        functions.clone(),
        JobsConfig {
            concurrency: args.job_concurrency,
            queue: args.job_queue,
            keep_for: args.job_retention,
            keep: args.job_keep,
        },
        &registry,
    )
    .await?;
    let app = App::new(
        store.clone(),
        functions.clone(),
        network,
        jobs,
        registry,
        ServerConfig {
            api_token,
            max_body: args.max_body_size,
            fetch_on_read: args.fetch_on_read.or(file.fetch_on_read).unwrap_or(false),
            browser: crate::api::browser::BrowserPolicy {
                loopback: addr.ip().is_loopback(),
                allowed_hosts: args.allow_host.clone(),
                allowed_origins: args.cors_origin.clone(),
            },
        },
    )?;
    api::run(app, listener, args.max_connections, shutdown_signal()).await;
    if let Err(e) = functions.flush().await {
        tracing::error!("making the last invocation outputs durable failed: {e}");
    }
    let _ = std::fs::remove_file(&api);
    tracing::info!("shutting down");
    store.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
