//! Where CLI commands run: against a running `ipfaas serve` over HTTP (found through the
//! `<repo>/api` file it writes, like `ipfs` finds its daemon), or on the repo directly.

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use ipfaas_runtime::store::add::AddOptions;
use ipfaas_runtime::unixfs::read::Kind;
use ipfaas_runtime::{IpfsPath, Store, StoreConfig};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

pub type Bytestream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

pub enum Backend {
    Remote(Remote),
    Local(Store),
}

#[derive(Clone)]
pub struct Remote {
    pub base: String,
    http: reqwest::Client,
    token: Option<String>,
}

/// One line of `add` output.
#[derive(Debug, Clone)]
pub struct AddedLine {
    pub name: String,
    pub hash: String,
}

#[derive(Debug, Clone)]
pub struct LsEntry {
    pub name: String,
    pub hash: String,
    pub size: u64,
    pub kind: u64,
}

pub fn api_file(repo: &Path) -> PathBuf {
    repo.join("api")
}

impl Backend {
    /// `api`: an explicit server URL; otherwise the repo's `api` file, if its server answers.
    pub async fn connect(repo: &Path, api: Option<String>, token: Option<String>) -> Result<Self> {
        let http = reqwest::Client::builder().build()?;
        let explicit = api.is_some();
        let base = match api {
            Some(a) => Some(a),
            None => std::fs::read_to_string(api_file(repo))
                .ok()
                .map(|s| s.trim().to_string()),
        };
        if let Some(base) = base {
            let base = base.trim_end_matches('/').to_string();
            let alive = http
                .get(format!("{base}/healthz"))
                .timeout(Duration::from_secs(3))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if alive {
                let token = if token.is_some() && !super::token::may_send(&base, explicit) {
                    eprintln!(
                        "warning: not sending the API token to {base}, which the repo's api file names: only loopback addresses get it unless --api names the server"
                    );
                    None
                } else {
                    token
                };
                return Ok(Backend::Remote(Remote { base, http, token }));
            }
            if explicit {
                bail!("the ipfaas API at {base} does not answer");
            }
        }
        let store = Store::open(StoreConfig::offline(repo), &prometheus::Registry::new())
            .await
            .with_context(|| format!("opening the repo at {}", repo.display()))?;
        Ok(Backend::Local(store))
    }

    pub async fn close(self) {
        if let Backend::Local(s) = self {
            s.shutdown().await;
        }
    }
}

pub async fn check(resp: reqwest::Response) -> Result<reqwest::Response> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    let msg = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("error")
                .or(v.get("Message"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or(body);
    Err(anyhow!("{msg} (HTTP {status})"))
}

impl Remote {
    /// A request to `path` on the server, with the token when one is set.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    fn post(&self, cmd: &str) -> reqwest::RequestBuilder {
        let r = self.http.post(format!("{}/api/v0/{cmd}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }
}

/// Kubo's client escapes multipart file names with `url.QueryEscape`.
fn escape(name: &str) -> String {
    form_urlencoded::byte_serialize(name.as_bytes()).collect()
}

/// One item to upload, in walk order (a directory before its contents).
enum Item {
    Dir(String),
    File(String, PathBuf, u64),
    Symlink(String, String),
}

fn walk(
    fs_path: &Path,
    name: &str,
    recursive: bool,
    hidden: bool,
    out: &mut Vec<Item>,
) -> Result<()> {
    let meta =
        std::fs::symlink_metadata(fs_path).with_context(|| format!("{}", fs_path.display()))?;
    if meta.is_symlink() {
        out.push(Item::Symlink(
            name.into(),
            std::fs::read_link(fs_path)?.to_string_lossy().into_owned(),
        ));
    } else if meta.is_dir() {
        if !recursive {
            bail!("{} is a directory; use -r", fs_path.display());
        }
        out.push(Item::Dir(name.into()));
        let mut children: Vec<_> = std::fs::read_dir(fs_path)?.collect::<std::io::Result<_>>()?;
        children.sort_by_key(|e| e.file_name());
        for e in children {
            let child = e
                .file_name()
                .into_string()
                .map_err(|n| anyhow!("file name {n:?} is not valid UTF-8"))?;
            if hidden || !child.starts_with('.') {
                walk(&e.path(), &format!("{name}/{child}"), true, hidden, out)?;
            }
        }
    } else {
        out.push(Item::File(name.into(), fs_path.into(), meta.len()));
    }
    Ok(())
}

/// Total bytes of regular files below `paths` (for the progress bar).
pub fn input_size(paths: &[(PathBuf, String)], recursive: bool, hidden: bool) -> Result<u64> {
    let mut items = Vec::new();
    for (p, n) in paths {
        walk(p, n, recursive, hidden, &mut items)?;
    }
    Ok(items
        .iter()
        .map(|i| if let Item::File(_, _, n) = i { *n } else { 0 })
        .sum())
}

impl Backend {
    /// Adds local paths (each named as given) and returns Kubo-style result lines.
    pub async fn add(
        &self,
        paths: &[(PathBuf, String)],
        opts: AddOptions,
        query: Vec<(String, String)>,
        recursive: bool,
        hidden: bool,
        progress: indicatif::ProgressBar,
    ) -> Result<Vec<AddedLine>> {
        match self {
            Backend::Local(store) => {
                let paths = paths.to_vec();
                let wrap = opts.wrap;
                let pb = progress.clone();
                let out = store
                    .add(opts, move |a| {
                        // progress reports each file's running total; sum them up
                        let (mut done, mut cur, mut last) = (0u64, String::new(), 0u64);
                        for (p, name) in &paths {
                            a.local(p, name, recursive, hidden, &mut |file, n| {
                                if file != cur {
                                    cur = file.to_string();
                                    last = 0;
                                }
                                done += n - last;
                                last = n;
                                pb.set_position(done);
                            })?;
                        }
                        Ok(())
                    })
                    .await?;
                Ok(out
                    .added
                    .iter()
                    .map(|a| AddedLine {
                        name: if a.path.is_empty() && !wrap {
                            a.cid.to_string()
                        } else {
                            a.path.clone()
                        },
                        hash: a.cid.to_string(),
                    })
                    .collect())
            }
            Backend::Remote(r) => {
                let mut items = Vec::new();
                for (p, n) in paths {
                    walk(p, n, recursive, hidden, &mut items)?;
                }
                let mut form = reqwest::multipart::Form::new();
                for item in items {
                    let part = match item {
                        Item::Dir(name) => reqwest::multipart::Part::bytes(Vec::new())
                            .file_name(escape(&name))
                            .mime_str("application/x-directory")?,
                        Item::Symlink(name, target) => reqwest::multipart::Part::text(target)
                            .file_name(escape(&name))
                            .mime_str("application/symlink")?,
                        Item::File(name, path, len) => {
                            let f = tokio::fs::File::open(&path)
                                .await
                                .with_context(|| path.display().to_string())?;
                            let pb = progress.clone();
                            let s = tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024)
                                .inspect_ok(move |b| pb.inc(b.len() as u64));
                            reqwest::multipart::Part::stream_with_length(
                                reqwest::Body::wrap_stream(s),
                                len,
                            )
                            .file_name(escape(&name))
                            .mime_str("application/octet-stream")?
                        }
                    };
                    form = form.part("file", part);
                }
                let resp = check(r.post("add").query(&query).multipart(form).send().await?).await?;
                let text = resp.text().await?;
                let mut out = Vec::new();
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let v: Value = serde_json::from_str(line)
                        .with_context(|| format!("bad add response line {line:?}"))?;
                    if let Some(msg) = v
                        .get("Message")
                        .and_then(Value::as_str)
                        .filter(|_| v.get("Type").and_then(Value::as_str) == Some("error"))
                    {
                        bail!("{msg}");
                    }
                    if let (Some(name), Some(hash)) = (
                        v.get("Name").and_then(Value::as_str),
                        v.get("Hash").and_then(Value::as_str),
                    ) {
                        out.push(AddedLine {
                            name: name.into(),
                            hash: hash.into(),
                        });
                    }
                }
                Ok(out)
            }
        }
    }

    async fn resolve_local(store: &Store, arg: &str) -> Result<cid::Cid> {
        Ok(store.resolve_path(&IpfsPath::parse(arg)?).await?)
    }

    pub async fn cat(&self, arg: &str, offset: u64, length: Option<u64>) -> Result<Bytestream> {
        match self {
            Backend::Local(store) => {
                let cid = Self::resolve_local(store, arg).await?;
                let (_, s) = store.cat(cid, offset, length).await?;
                Ok(Box::pin(s.map_err(anyhow::Error::from)))
            }
            Backend::Remote(r) => {
                let mut q = vec![("arg", arg.to_string()), ("offset", offset.to_string())];
                if let Some(l) = length {
                    q.push(("length", l.to_string()));
                }
                let resp = check(r.post("cat").query(&q).send().await?).await?;
                Ok(Box::pin(resp.bytes_stream().map_err(anyhow::Error::from)))
            }
        }
    }

    /// The tar stream of `arg` (root entry named after the last path segment or the CID).
    pub async fn get(&self, arg: &str) -> Result<Bytestream> {
        match self {
            Backend::Local(store) => {
                let path = IpfsPath::parse(arg)?;
                let cid = store.resolve_path(&path).await?;
                store.stat(&cid).await?;
                let name = path.name();
                Ok(Box::pin(store.tar(cid, name).map_err(anyhow::Error::from)))
            }
            Backend::Remote(r) => {
                let resp = check(r.post("get").query(&[("arg", arg)]).send().await?).await?;
                Ok(Box::pin(resp.bytes_stream().map_err(anyhow::Error::from)))
            }
        }
    }

    pub async fn ls(&self, arg: &str) -> Result<Vec<LsEntry>> {
        match self {
            Backend::Local(store) => {
                let cid = Self::resolve_local(store, arg).await?;
                if store.stat(&cid).await? != Kind::Directory {
                    return Ok(vec![]);
                }
                let out = store
                    .listing(&cid)
                    .await?
                    .into_iter()
                    .map(|(e, kind)| {
                        let (kind, size, _) = crate::api::kubo::kubo_type(&kind);
                        LsEntry {
                            name: e.name,
                            hash: e.cid.to_string(),
                            size,
                            kind: kind.into(),
                        }
                    })
                    .collect();
                Ok(out)
            }
            Backend::Remote(r) => {
                let v: Value = check(r.post("ls").query(&[("arg", arg)]).send().await?)
                    .await?
                    .json()
                    .await?;
                let links = v["Objects"][0]["Links"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                Ok(links
                    .iter()
                    .map(|l| LsEntry {
                        name: l["Name"].as_str().unwrap_or("").into(),
                        hash: l["Hash"].as_str().unwrap_or("").into(),
                        size: l["Size"].as_u64().unwrap_or(0),
                        kind: l["Type"].as_u64().unwrap_or(0),
                    })
                    .collect())
            }
        }
    }

    pub async fn id(&self) -> Result<Value> {
        match self {
            Backend::Local(store) => Ok(serde_json::json!({
                "ID": store.peer_id().to_string(),
                "Addresses": [],
                "AgentVersion": concat!("ipfaas/", env!("CARGO_PKG_VERSION")),
            })),
            Backend::Remote(r) => Ok(check(r.post("id").send().await?).await?.json().await?),
        }
    }

    pub async fn pin_ls(&self) -> Result<Vec<String>> {
        match self {
            Backend::Local(store) => Ok(store.pins()?.iter().map(ToString::to_string).collect()),
            Backend::Remote(r) => {
                let v: Value = check(r.post("pin/ls").send().await?).await?.json().await?;
                Ok(v["Keys"]
                    .as_object()
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default())
            }
        }
    }

    /// Collects garbage: removes every block no pin reaches; returns what it did.
    pub async fn repo_gc(&self) -> Result<Value> {
        match self {
            Backend::Local(store) => Ok(serde_json::to_value(store.gc().await?)?),
            Backend::Remote(r) => Ok(check(
                r.request(reqwest::Method::POST, "/v1/repo/gc")
                    .send()
                    .await?,
            )
            .await?
            .json()
            .await?),
        }
    }

    pub async fn pin_rm(&self, cid: &str) -> Result<()> {
        match self {
            Backend::Local(store) => {
                let c = ipfaas_runtime::error::parse_cid(cid)?;
                if !store.unpin(&c).await? {
                    bail!("{c} is not pinned");
                }
                Ok(())
            }
            Backend::Remote(r) => check(r.post("pin/rm").query(&[("arg", cid)]).send().await?)
                .await
                .map(drop),
        }
    }
}
