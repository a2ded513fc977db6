//! Command-line interface.

mod client;
mod examples;
mod function;
mod jobs;
mod lifecycle;
mod secret;
mod serve;
mod token;
mod unpack;

use crate::units::parse_size;
use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use client::{Backend, input_size};
use futures::StreamExt;
use ipfaas_runtime::store::add::AddOptions;
use ipfaas_runtime::unixfs::{ImportOptions, Profile};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

#[derive(Parser, Debug)]
#[command(
    name = "ipfaas",
    version,
    about = "FaaS gateway over content-addressed data, with an embedded IPFS node"
)]
pub struct Cli {
    /// Repository directory [default: $IPFAAS_HOME, else the platform data dir + /ipfaas]
    #[arg(long, global = true, env = "IPFAAS_HOME")]
    pub repo: Option<PathBuf>,
    /// Talk to this server instead of the one recorded in the repo (e.g. http://127.0.0.1:5001)
    #[arg(long, global = true, env = "IPFAAS_API")]
    pub api: Option<String>,
    /// Bearer token: required by `serve` for state-changing endpoints; sent by client commands.
    /// Visible in `ps` when given here: prefer IPFAAS_API_TOKEN or --api-token-file
    #[arg(long, global = true, env = "IPFAAS_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Read the token from this file (`serve` creates it, mode 0600, with a random token when
    /// missing) [client default: <repo>/api-token when it exists]
    #[arg(long, global = true, env = "IPFAAS_API_TOKEN_FILE")]
    pub api_token_file: Option<PathBuf>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the gateway: HTTP API + embedded IPFS node
    Serve(Box<ServeArgs>),
    /// Add files or directories; prints `added <cid> <name>` per item, the root last
    Add(AddArgs),
    /// Print a file's bytes
    Cat {
        /// CID or /ipfs/CID/path
        path: String,
        #[arg(long, default_value_t = 0)]
        offset: u64,
        #[arg(long)]
        length: Option<u64>,
    },
    /// Download a file or directory
    Get {
        path: String,
        /// Output path [default: the CID or last path segment]
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// List a directory
    Ls { path: String },
    /// Deploy a function directory (function.py, optional requirements.txt and ipfaas.toml)
    Deploy {
        dir: PathBuf,
        /// Name [default: `name` in ipfaas.toml, else the directory's name]
        #[arg(long)]
        name: Option<String>,
        /// Write requirements.lock next to the bundle: later deploys of it install exactly
        /// these wheels
        #[arg(long)]
        lock: bool,
        /// Resolve requirements.txt again, ignoring requirements.lock and earlier resolutions
        #[arg(long)]
        upgrade: bool,
    },
    /// Invoke a function (name or function CID) on an input CID; the output goes to stdout
    Invoke {
        function: String,
        cid: String,
        /// A parameter for the function (repeatable)
        #[arg(short = 'p', long = "param", value_parser = function::parse_param)]
        params: Vec<(String, String)>,
        /// Run even if the result is cached
        #[arg(long)]
        no_cache: bool,
        /// Submit it as a job (it survives restarts; see `ipfaas jobs`): prints the job's id
        #[arg(long = "async")]
        is_async: bool,
        /// With --async: follow the job (its logs and a status line) until it ends, then print
        /// its output
        #[arg(long, requires = "is_async")]
        follow: bool,
        /// With --async: POST the finished job (JSON) to this URL
        #[arg(long, value_name = "URL", requires = "is_async")]
        callback: Option<String>,
    },
    /// List asynchronous jobs, newest first
    Jobs {
        /// Only jobs in this state (queued, running, done, failed, cancelled, interrupted)
        #[arg(long)]
        status: Option<String>,
        /// Only jobs of this function (name or CID)
        #[arg(long)]
        function: Option<String>,
        /// At most this many
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show an asynchronous job; or follow, cancel or retry it
    Job {
        id: String,
        /// Stream its logs under a live status line until it ends; then print its output
        #[arg(long)]
        follow: bool,
        /// Cancel it: a queued job never runs, a running one is stopped
        #[arg(long, conflicts_with = "retry")]
        cancel: bool,
        /// Queue a failed, cancelled or interrupted job again
        #[arg(long)]
        retry: bool,
    },
    /// List deployed functions, or one function's versions (newest first, `*` = current)
    Functions {
        /// Show this name's versions instead
        #[arg(long, value_name = "NAME")]
        versions: Option<String>,
    },
    /// Point a function's name at an earlier version (default: the one before the current),
    /// or at any function CID, without rebuilding
    Rollback {
        name: String,
        /// The function CID to point at
        cid: Option<String>,
    },
    /// Remove a function's name and its versions
    Rm {
        name: String,
        /// Also unpin what only this function used (definitions, bundles, wheels, components);
        /// the garbage collector frees the blocks
        #[arg(long)]
        purge: bool,
    },
    /// Re-run an invocation on other nodes and check that their output CIDs agree with this one's
    Verify {
        function: String,
        cid: String,
        #[arg(short = 'p', long = "param", value_parser = function::parse_param)]
        params: Vec<(String, String)>,
        /// How many other nodes must agree
        #[arg(long, default_value_t = 1)]
        peers: usize,
    },
    /// List the connected peers of the running node
    Peers,
    /// Show the node's identity
    Id,
    /// Manage pins
    #[command(subcommand)]
    Pin(PinCmd),
    /// The repo: garbage collection
    #[command(subcommand)]
    Repo(RepoCmd),
    /// Secrets Docker functions get as environment variables (`secrets` in their manifest)
    #[command(subcommand)]
    Secret(secret::SecretCmd),
}

#[derive(Subcommand, Debug)]
pub enum RepoCmd {
    /// Remove every block no pin reaches (what reads fetched from peers, unpinned adds)
    Gc,
}

#[derive(Subcommand, Debug)]
pub enum PinCmd {
    /// List pinned roots
    Ls,
    /// Unpin a root (its blocks stay until garbage-collected)
    Rm { cid: String },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// HTTP listen address (API, gateway, metrics)
    #[arg(long, default_value = "127.0.0.1:5001")]
    pub listen: String,
    /// libp2p listen multiaddrs (repeatable) [default: /ip4/0.0.0.0/tcp/4001]
    #[arg(long = "swarm-listen")]
    pub swarm_listen: Vec<String>,
    /// Peers to stay connected to (repeatable multiaddrs, e.g. /ip4/10.0.0.1/tcp/4001/p2p/<id>
    /// or /dns4/node0/tcp/4001); re-dialled when the connection drops
    #[arg(long)]
    pub bootstrap: Vec<String>,
    /// Config file (TOML: bootstrap, swarm_listen, forward_threshold, peer_invoke, peer_allow,
    /// fetch_on_read)
    /// [default: <repo>/config.toml
    /// when it exists]
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Forward an invocation to a peer that holds its input when the input is not here and at
    /// least this large (compute-to-data); "off" never forwards
    #[arg(long)]
    pub forward_threshold: Option<String>,
    /// Which peers may run functions on this node over libp2p: "off", "allowlist" (the
    /// bootstrap peers and --peer-allow) or "any" [default: allowlist]
    #[arg(long)]
    pub peer_invoke: Option<String>,
    /// A peer id that may run functions here besides the bootstrap peers (repeatable)
    #[arg(long)]
    pub peer_allow: Vec<String>,
    /// With --api-token: let reads without the token (GET /ipfs/..., cat, get, ls) fetch
    /// missing blocks from peers, which stores them here; without it (or with
    /// --fetch-on-read=false) they read only what is here
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub fetch_on_read: Option<bool>,
    /// A web origin (https://app.example) whose pages may call this API (repeatable; CORS)
    #[arg(long)]
    pub cors_origin: Vec<String>,
    /// A host name requests may use besides loopback names when listening on loopback
    /// (repeatable; any other is refused as DNS rebinding)
    #[arg(long)]
    pub allow_host: Vec<String>,
    /// How long a read waits for a block that is neither local nor found on peers
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub fetch_timeout: Duration,
    /// Largest accepted request body (e.g. 512MiB, 8GiB)
    #[arg(long, default_value = "8GiB", value_parser = parse_size)]
    pub max_body_size: u64,
    /// No libp2p networking at all
    #[arg(long)]
    pub offline: bool,
    /// Do not deploy the bundled example functions on start
    #[arg(long)]
    pub no_examples: bool,
    /// Docker functions: containers running at once
    #[arg(long, default_value_t = 4)]
    pub max_containers: usize,
    /// Docker functions: invocations that may wait for a container before the answer is 429
    #[arg(long, default_value_t = 16)]
    pub container_queue: usize,
    /// Async jobs (`?async=true`) running at once, in slots of their own
    #[arg(long, default_value_t = 2)]
    pub job_concurrency: usize,
    /// Async jobs queued or running at most; past it, submissions get 429
    #[arg(long, default_value_t = 1000)]
    pub job_queue: u64,
    /// Finished jobs are deleted this long after they finish
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    pub job_retention: std::time::Duration,
    /// Finished jobs kept at most (the oldest go first)
    #[arg(long, default_value_t = 10_000)]
    pub job_keep: u64,
    /// Package index for requirements.txt [default: pip's configuration (PIP_INDEX_URL,
    /// pip.conf), else https://pypi.org/simple]
    #[arg(long, value_name = "URL")]
    pub index_url: Option<String>,
    /// A further package index (repeatable) [default: pip's configuration]
    #[arg(long, value_name = "URL")]
    pub extra_index_url: Vec<String>,
    /// A page (URL) or a directory of this host (a wheelhouse) listing wheels (repeatable)
    /// [default: pip's configuration]
    #[arg(long, value_name = "URL|DIR")]
    pub find_links: Vec<String>,
    /// Use no package index: only --find-links and bundles' wheels/ (offline deploys)
    #[arg(long)]
    pub no_index: bool,
    /// Serve a non-loopback --listen address without an API token (only on a trusted network)
    #[arg(long)]
    pub insecure: bool,
    /// Collect garbage (blocks no pin reaches: what reads fetched from peers, adds with
    /// pin=false) whenever the block store passes 90% of this size, e.g. 20GiB [default: only
    /// by `ipfaas repo gc`]
    #[arg(long, value_parser = parse_size)]
    pub storage_max: Option<u64>,
    /// Refuse new libp2p connections (accepted and dialled) while the node's resident memory
    /// is past this size, e.g. 4GiB [default: 80% of the machine's memory]
    #[arg(long, value_parser = parse_size)]
    pub p2p_max_memory: Option<u64>,
    /// HTTP connections served at once; more wait in the kernel's backlog until one closes
    #[arg(long, default_value_t = crate::api::conn::MAX_CONNECTIONS)]
    pub max_connections: usize,
}

#[derive(Args, Debug)]
pub struct AddArgs {
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Add directories recursively
    #[arg(short, long)]
    pub recursive: bool,
    /// Include files whose names start with `.`
    #[arg(short = 'H', long)]
    pub hidden: bool,
    /// Import profile: unixfs-v0-2015 (default, what `ipfs add` gives) or unixfs-v1-2025
    #[arg(long)]
    pub profile: Option<Profile>,
    #[arg(long)]
    pub cid_version: Option<u8>,
    #[arg(long)]
    pub raw_leaves: Option<bool>,
    /// size-N
    #[arg(long)]
    pub chunker: Option<String>,
    /// Wrap the items in a directory
    #[arg(short, long)]
    pub wrap_with_directory: bool,
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub pin: bool,
    /// Print only CIDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Print only the root CID
    #[arg(short = 'Q', long)]
    pub quieter: bool,
}

fn default_repo() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("ipfaas")
}

pub async fn run(cli: Cli) -> Result<()> {
    let repo = cli.repo.clone().unwrap_or_else(default_repo);
    match cli.cmd {
        Cmd::Serve(args) => {
            serve::serve(&repo, cli.api_token, cli.api_token_file.as_deref(), *args).await
        }
        cmd => {
            let token = token::for_client(cli.api_token, cli.api_token_file.as_deref(), &repo)?;
            let backend = Backend::connect(&repo, cli.api, token).await?;
            let r = match cmd {
                Cmd::Secret(c) => secret::run(&backend, &repo, c).await,
                cmd => client(&backend, cmd).await,
            };
            backend.close().await;
            r
        }
    }
}

async fn client(b: &Backend, cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Serve(_) | Cmd::Secret(_) => unreachable!("handled by run"),
        Cmd::Add(a) => add(b, a).await,
        Cmd::Cat {
            path,
            offset,
            length,
        } => {
            let mut s = b.cat(&path, offset, length).await?;
            let mut out = tokio::io::stdout();
            while let Some(chunk) = s.next().await {
                out.write_all(&chunk?).await?;
            }
            out.flush().await?;
            Ok(())
        }
        Cmd::Get { path, output } => {
            let name = ipfaas_runtime::IpfsPath::parse(&path)?.name();
            let out = output.unwrap_or_else(|| PathBuf::from(&name));
            let stream = b.get(&path).await?;
            let dest = out.clone();
            let reader =
                tokio_util::io::StreamReader::new(stream.map(|r| r.map_err(std::io::Error::other)));
            let sync = tokio_util::io::SyncIoBridge::new(reader);
            tokio::task::spawn_blocking(move || unpack::unpack(sync, &dest)).await??;
            eprintln!("Saving file(s) to {}", out.display());
            Ok(())
        }
        Cmd::Ls { path } => {
            let mut stdout = std::io::stdout().lock();
            for e in b.ls(&path).await? {
                if e.kind == 1 {
                    writeln!(stdout, "{} - {}/", e.hash, e.name)?;
                } else {
                    writeln!(stdout, "{} {} {}", e.hash, e.size, e.name)?;
                }
            }
            Ok(())
        }
        Cmd::Deploy {
            dir,
            name,
            lock,
            upgrade,
        } => function::deploy(b, &dir, name, function::DeployFlags { lock, upgrade }).await,
        Cmd::Invoke {
            function,
            cid,
            params,
            no_cache,
            is_async: true,
            follow,
            callback,
        } => {
            let params = params.into_iter().collect();
            jobs::submit(b, &function, &cid, params, !no_cache, callback, follow).await
        }
        Cmd::Invoke {
            function,
            cid,
            params,
            no_cache,
            ..
        } => function::invoke(b, &function, &cid, params, !no_cache).await,
        Cmd::Jobs {
            status,
            function,
            limit,
        } => jobs::list(b, status, function, limit).await,
        Cmd::Job {
            id,
            follow,
            cancel,
            retry,
        } => jobs::show(b, &id, follow, cancel, retry).await,
        Cmd::Functions { versions: None } => function::list(b).await,
        Cmd::Functions {
            versions: Some(name),
        } => lifecycle::versions(b, &name).await,
        Cmd::Rollback { name, cid } => lifecycle::rollback(b, &name, cid.as_deref()).await,
        Cmd::Rm { name, purge } => lifecycle::remove(b, &name, purge).await,
        Cmd::Verify {
            function,
            cid,
            params,
            peers,
        } => function::verify(b, &function, &cid, params, peers).await,
        Cmd::Peers => function::peers(b).await,
        Cmd::Id => {
            println!("{}", serde_json::to_string_pretty(&b.id().await?)?);
            Ok(())
        }
        Cmd::Pin(PinCmd::Ls) => {
            for c in b.pin_ls().await? {
                println!("{c} recursive");
            }
            Ok(())
        }
        Cmd::Pin(PinCmd::Rm { cid }) => {
            b.pin_rm(&cid).await?;
            println!("unpinned {cid}");
            Ok(())
        }
        Cmd::Repo(RepoCmd::Gc) => {
            let r = b.repo_gc().await?;
            println!(
                "removed {} blocks ({} bytes); kept {} blocks reachable from {} roots",
                r["removed_blocks"], r["removed_bytes"], r["kept_blocks"], r["roots"]
            );
            Ok(())
        }
    }
}

async fn add(b: &Backend, a: AddArgs) -> Result<()> {
    let mut import = ImportOptions::profile(a.profile.unwrap_or_default());
    let mut query: Vec<(String, String)> = vec![];
    if let Some(p) = a.profile {
        query.push((
            "profile".into(),
            match p {
                Profile::UnixfsV0_2015 => "unixfs-v0-2015".into(),
                Profile::UnixfsV1_2025 => "unixfs-v1-2025".into(),
            },
        ));
    }
    if let Some(v) = a.cid_version {
        if v > 1 {
            bail!("--cid-version must be 0 or 1");
        }
        import = import.with_cid_version(v == 1);
        query.push(("cid-version".into(), v.to_string()));
    }
    if let Some(r) = a.raw_leaves {
        import.raw_leaves = r;
        query.push(("raw-leaves".into(), r.to_string()));
    }
    if let Some(c) = &a.chunker {
        import = import.with_chunker(c).map_err(anyhow::Error::msg)?;
        query.push(("chunker".into(), c.clone()));
    }
    query.push((
        "wrap-with-directory".into(),
        a.wrap_with_directory.to_string(),
    ));
    query.push(("pin".into(), a.pin.to_string()));
    let opts = AddOptions {
        import,
        wrap: a.wrap_with_directory,
        pin: a.pin,
        durable: true,
    };

    let mut named = Vec::new();
    for p in &a.paths {
        let name = p
            .canonicalize()
            .with_context(|| format!("{}", p.display()))?
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "root".into());
        named.push((p.clone(), name));
    }
    let total = input_size(&named, a.recursive, a.hidden)?;
    let pb = if total >= 16 << 20 && !a.quiet && !a.quieter {
        let pb = indicatif::ProgressBar::new(total);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{bytes}/{total_bytes} [{wide_bar}] {binary_bytes_per_sec} eta {eta}",
            )
            .expect("valid template"),
        );
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };
    let lines = b
        .add(&named, opts, query, a.recursive, a.hidden, pb.clone())
        .await;
    pb.finish_and_clear();
    let lines = lines?;
    let mut stdout = std::io::stdout().lock();
    if a.quieter {
        if let Some(l) = lines.last() {
            writeln!(stdout, "{}", l.hash)?;
        }
        return Ok(());
    }
    for l in &lines {
        if a.quiet {
            writeln!(stdout, "{}", l.hash)?;
        } else {
            writeln!(stdout, "added {} {}", l.hash, l.name)?;
        }
    }
    Ok(())
}
