//! Where distributions come from: package indexes (the simple API: PEP 691 JSON, or PEP 503
//! HTML), `--find-links` pages and directories, and the bundle's own `wheels/`. Lists a
//! project's files across all of them, fetches metadata (PEP 658 files where offered) and
//! wheels, every byte counted against a limit.

use super::target::{self, DistFile, FileKind};
use bytes::Bytes;
use futures::StreamExt;
use pep508_rs::pep440_rs::Version;
use reqwest::Url;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Largest project page read from an index (boto3's JSON page is ~10 MiB).
const MAX_PAGE: u64 = 64 << 20;
/// Largest wheel downloaded.
pub const MAX_WHEEL: u64 = 256 << 20;

/// Where a file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// On an index or a find-links page.
    Url(String),
    /// In the bundle (its path there).
    Bundle(String),
    /// In a directory of this host the node's operator configured (a wheelhouse).
    Local(PathBuf),
}

/// One file a source offers.
#[derive(Debug, Clone)]
pub struct Dist {
    /// The file name.
    pub file: String,
    /// Its version.
    pub version: Version,
    /// Whether the guest can use it.
    pub kind: FileKind,
    /// Where it is.
    pub location: Location,
    /// Its sha256 as the source states it (checked when it is fetched).
    pub sha256: Option<String>,
    /// `Requires-Python`, as the source states it.
    pub requires_python: Option<String>,
    /// PEP 658: the URL of its metadata file, and that file's sha256 if given.
    pub metadata_url: Option<(String, Option<String>)>,
    /// PEP 592: yanked files are only chosen when pinned exactly.
    pub yanked: bool,
    /// It came from one of the node's own sources (not a bundle's): see [`super::guard`].
    pub trusted: bool,
}

/// A page source and who named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// Its URL.
    pub url: String,
    /// Named by the node's operator (may be anywhere), not by a bundle (public addresses
    /// only: see [`super::guard`]).
    pub trusted: bool,
}

/// Where to look, in order.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Simple API base URLs.
    pub indexes: Vec<Remote>,
    /// Find-links pages.
    pub link_pages: Vec<Remote>,
    /// Directories of this host (the node's wheelhouse).
    pub local_dirs: Vec<PathBuf>,
    /// Bundle directories (`wheels/`, and `--find-links` to a bundle directory).
    pub bundle_dirs: Vec<String>,
}

impl Sources {
    /// True when nothing here needs the network.
    pub fn offline(&self) -> bool {
        self.indexes.is_empty() && self.link_pages.is_empty()
    }
}

/// Talks to indexes. Cheap to clone.
#[derive(Clone)]
pub struct Index {
    client: reqwest::Client,
    /// For a bundle's URLs: public addresses only.
    public: reqwest::Client,
    bundle: Arc<BTreeMap<String, Bytes>>,
}

/// Reads at most `max` bytes of a response.
async fn body(resp: reqwest::Response, max: u64, what: &str) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > max) {
        return Err(format!("{what}: larger than {max} bytes"));
    }
    let mut out = Vec::new();
    let mut s = resp.bytes_stream();
    while let Some(chunk) = s.next().await {
        let chunk = chunk.map_err(|e| format!("{what}: {e}"))?;
        if out.len() as u64 + chunk.len() as u64 > max {
            return Err(format!("{what}: larger than {max} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

pub(crate) fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    crate::executor::wasm::load::hex(&sha2::Sha256::digest(b))
}

impl Index {
    /// An index client using `client` for the node's sources and `public` for the bundle's,
    /// reading vendored wheels from the bundle `files`.
    pub fn new(
        client: reqwest::Client,
        public: reqwest::Client,
        files: Arc<BTreeMap<String, Bytes>>,
    ) -> Self {
        Self {
            client,
            public,
            bundle: files,
        }
    }

    /// The client for a URL named by the node (`trusted`) or by a bundle, after checking
    /// what a bundle may name.
    fn client_for(&self, url: &str, trusted: bool) -> Result<&reqwest::Client, String> {
        if trusted {
            return Ok(&self.client);
        }
        let u = Url::parse(url).map_err(|e| format!("{}: {e}", redact(url)))?;
        super::guard::url_ok(&u)?;
        Ok(&self.public)
    }

    /// The bundle's bytes of `path`.
    pub fn bundle_file(&self, path: &str) -> Option<&Bytes> {
        self.bundle.get(path)
    }

    /// Every file of project `name` (normalised) the sources offer.
    pub async fn project(&self, sources: &Sources, name: &str) -> Result<Vec<Dist>, String> {
        let mut out = Vec::new();
        for dir in &sources.bundle_dirs {
            let prefix = format!("{dir}/");
            for (path, data) in self.bundle.range(prefix.clone()..) {
                let Some(file) = path.strip_prefix(&prefix) else {
                    break;
                };
                if file.contains('/') {
                    continue;
                }
                if let Some(d) = named(file, name) {
                    out.push(Dist {
                        sha256: Some(sha256_hex(data)),
                        ..local_dist(file, d, Location::Bundle(path.clone()))
                    });
                }
            }
        }
        for dir in &sources.local_dirs {
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue; // pip warns and goes on
            };
            for e in rd.flatten() {
                let file = e.file_name().to_string_lossy().into_owned();
                if let Some(d) = named(&file, name) {
                    out.push(local_dist(&file, d, Location::Local(e.path())));
                }
            }
        }
        let pages = sources
            .indexes
            .iter()
            .map(|base| {
                let url = format!("{}/{name}/", base.url.trim_end_matches('/'));
                (url, true, base.trusted)
            })
            .chain(
                sources
                    .link_pages
                    .iter()
                    .map(|u| (u.url.clone(), false, u.trusted)),
            );
        let fetched = futures::future::join_all(
            pages.map(|(url, index, trusted)| self.page(url, index, trusted, name)),
        )
        .await;
        for page in fetched {
            out.extend(page?);
        }
        Ok(out)
    }

    /// One simple-API or find-links page, its files of `name`.
    async fn page(
        &self,
        url: String,
        index: bool,
        trusted: bool,
        name: &str,
    ) -> Result<Vec<Dist>, String> {
        let what = format!("GET {}", redact(&url));
        let resp = self
            .client_for(&url, trusted)?
            .get(&url)
            .header(
                "Accept",
                "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1",
            )
            .send()
            .await
            .map_err(|e| format!("{what}: {}", chain(&e)))?;
        if index && resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if !resp.status().is_success() {
            return Err(format!("{what}: HTTP {}", resp.status()));
        }
        let base = resp.url().clone();
        let json = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.contains("json"));
        let bytes = body(resp, MAX_PAGE, &what).await?;
        let links = if json {
            json_links(&bytes).map_err(|e| format!("{what}: {e}"))?
        } else {
            html_links(&String::from_utf8_lossy(&bytes))
        };
        Ok(links
            .into_iter()
            .filter_map(|l| {
                let url = base.join(&l.href).ok()?;
                let (url, frag) = split_fragment(url);
                let file = l.file.unwrap_or_else(|| {
                    url.path_segments()
                        .and_then(|mut s| s.next_back())
                        .map(percent_decode)
                        .unwrap_or_default()
                });
                let d = named(&file, name)?;
                let sha256 = l.sha256.or(frag);
                let metadata_url = l.metadata.map(|h| (format!("{url}.metadata"), h));
                Some(Dist {
                    file,
                    version: d.version,
                    kind: d.kind,
                    location: Location::Url(url.to_string()),
                    sha256,
                    requires_python: l.requires_python,
                    metadata_url,
                    yanked: l.yanked,
                    trusted,
                })
            })
            .collect())
    }

    /// GETs `url` with the client `trusted` calls for ([`Dist::trusted`]); a successful
    /// answer, and how errors name the request.
    async fn send(&self, url: &str, trusted: bool) -> Result<(reqwest::Response, String), String> {
        let what = format!("GET {}", redact(url));
        let resp = self
            .client_for(url, trusted)?
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{what}: {}", chain(&e)))?;
        if !resp.status().is_success() {
            return Err(format!("{what}: HTTP {}", resp.status()));
        }
        Ok((resp, what))
    }

    /// GETs `url` whole (at most `max` bytes); `trusted` as for [`Dist::trusted`].
    pub async fn get(&self, url: &str, max: u64, trusted: bool) -> Result<Vec<u8>, String> {
        let (resp, what) = self.send(url, trusted).await?;
        body(resp, max, &what).await
    }

    /// Streams `url` into `dest` (at most `max` bytes); returns its sha256.
    pub async fn download(
        &self,
        url: &str,
        dest: &std::path::Path,
        trusted: bool,
    ) -> Result<String, String> {
        use sha2::Digest;
        use tokio::io::AsyncWriteExt;
        let (resp, what) = self.send(url, trusted).await?;
        if resp.content_length().is_some_and(|n| n > MAX_WHEEL) {
            return Err(format!("{what}: larger than {MAX_WHEEL} bytes"));
        }
        let mut f = tokio::fs::File::create(dest)
            .await
            .map_err(|e| e.to_string())?;
        let mut h = sha2::Sha256::new();
        let (mut n, mut s) = (0u64, resp.bytes_stream());
        while let Some(chunk) = s.next().await {
            let chunk = chunk.map_err(|e| format!("{what}: {e}"))?;
            n += chunk.len() as u64;
            if n > MAX_WHEEL {
                return Err(format!("{what}: larger than {MAX_WHEEL} bytes"));
            }
            h.update(&chunk);
            f.write_all(&chunk).await.map_err(|e| e.to_string())?;
        }
        f.flush().await.map_err(|e| e.to_string())?;
        Ok(crate::executor::wasm::load::hex(&h.finalize()))
    }
}

/// `url` without a user name or password (a node's index URL may carry credentials, which
/// must not reach a lock, an answer or a log).
pub fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// The error and its causes on one line (reqwest's own message hides the cause).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn named(file: &str, name: &str) -> Option<DistFile> {
    target::parse_file(file).filter(|d| d.name == name)
}

fn local_dist(file: &str, d: DistFile, location: Location) -> Dist {
    Dist {
        file: file.to_string(),
        version: d.version,
        kind: d.kind,
        location,
        sha256: None,
        requires_python: None,
        metadata_url: None,
        yanked: false,
        trusted: true,
    }
}

fn split_fragment(mut url: Url) -> (Url, Option<String>) {
    let frag = url
        .fragment()
        .and_then(|f| f.strip_prefix("sha256="))
        .filter(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase);
    url.set_fragment(None);
    (url, frag)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hexval = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hexval(b[i + 1]), hexval(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One file link of a page.
#[derive(Debug, Default, PartialEq)]
struct Link {
    href: String,
    file: Option<String>,
    sha256: Option<String>,
    requires_python: Option<String>,
    /// PEP 658: offered, with the metadata file's sha256 if given.
    metadata: Option<Option<String>>,
    yanked: bool,
}

/// PEP 691's JSON page.
fn json_links(bytes: &[u8]) -> Result<Vec<Link>, String> {
    #[derive(serde::Deserialize)]
    struct Page {
        files: Vec<File>,
    }
    #[derive(serde::Deserialize)]
    struct File {
        filename: String,
        url: String,
        #[serde(default)]
        hashes: BTreeMap<String, String>,
        #[serde(rename = "requires-python", default)]
        requires_python: Option<String>,
        #[serde(rename = "core-metadata", default)]
        core_metadata: Option<serde_json::Value>,
        #[serde(rename = "dist-info-metadata", default)]
        dist_info_metadata: Option<serde_json::Value>,
        #[serde(default)]
        yanked: Option<serde_json::Value>,
    }
    let page: Page =
        serde_json::from_slice(bytes).map_err(|e| format!("not a PEP 691 page: {e}"))?;
    Ok(page
        .files
        .into_iter()
        .map(|f| {
            let meta = f.core_metadata.or(f.dist_info_metadata);
            let metadata = match meta {
                Some(serde_json::Value::Bool(true)) => Some(None),
                Some(serde_json::Value::Object(h)) => Some(
                    h.get("sha256")
                        .and_then(|v| v.as_str())
                        .map(str::to_ascii_lowercase),
                ),
                _ => None,
            };
            let yanked = match f.yanked {
                Some(serde_json::Value::Bool(b)) => b,
                Some(serde_json::Value::String(_)) => true,
                _ => false,
            };
            Link {
                href: f.url,
                file: Some(f.filename),
                sha256: f.hashes.get("sha256").map(|h| h.to_ascii_lowercase()),
                requires_python: f.requires_python,
                metadata,
                yanked,
            }
        })
        .collect())
}

/// PEP 503's HTML page: the anchors, with their `data-*` attributes. Hand-written because the
/// format is anchors only; a whole HTML parser would add a large dependency for no gain.
fn html_links(html: &str) -> Vec<Link> {
    let mut out = Vec::new();
    let lower = html.to_ascii_lowercase();
    let mut at = 0;
    while let Some(i) = lower[at..].find("<a") {
        let start = at + i + 2;
        if !lower[start..].starts_with(|c: char| c.is_ascii_whitespace()) {
            at = start;
            continue;
        }
        let Some(end) = lower[start..].find('>').map(|e| start + e) else {
            break;
        };
        let attrs = attributes(&html[start..end]);
        // the link text runs to the next tag (searching further is quadratic on hostile pages)
        let text_end = lower[end..].find('<').map_or(lower.len(), |e| end + e);
        let text = unescape(html[end + 1..text_end].trim());
        at = end + 1;
        let Some(href) = attrs.get("href") else {
            continue;
        };
        let meta = attrs
            .get("data-core-metadata")
            .or_else(|| attrs.get("data-dist-info-metadata"));
        out.push(Link {
            href: href.clone(),
            file: (!text.is_empty()).then_some(text),
            sha256: None,
            requires_python: attrs.get("data-requires-python").cloned(),
            metadata: meta.map(|m| {
                m.strip_prefix("sha256=")
                    .map(|h| h.to_ascii_lowercase())
                    .filter(|h| h.len() == 64)
            }),
            yanked: attrs.contains_key("data-yanked"),
        });
    }
    out
}

/// `name="value"`, `name='value'`, `name=value` and bare `name`, names lower-cased, values
/// unescaped.
fn attributes(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let ns = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' {
            i += 1;
        }
        if ns == i {
            i += 1;
            continue;
        }
        let name = s[ns..i].to_ascii_lowercase();
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let vs = i + 1;
                i = vs;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                value = unescape(&s[vs..i.min(b.len())]);
                i += 1;
            } else {
                let vs = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                value = unescape(&s[vs..i]);
            }
        }
        out.insert(name, value);
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

/// Makes `ring` the process's TLS crypto provider (once; later calls do nothing). reqwest is
/// built without a provider of its own (`rustls-no-provider`, to keep one crypto library in
/// the tree), so every process that makes an HTTP client calls this first.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The HTTP client for indexes: the node's certificate authorities (pip's `cert`, else
/// `SSL_CERT_FILE`/the system's, else the Mozilla roots), the proxy variables, a timeout.
/// `public_only` makes the client for a bundle's URLs (see [`super::guard`]).
pub fn client(
    cert: Option<&std::path::Path>,
    timeout: Duration,
    public_only: bool,
) -> Result<reqwest::Client, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    match cert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("certificate bundle {}: {e}", path.display()))?;
            for c in certs {
                let c = c.map_err(|e| format!("certificate bundle {}: {e}", path.display()))?;
                let _ = roots.add(c);
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    if roots.is_empty() {
        if let Some(p) = cert {
            return Err(format!(
                "certificate bundle {} holds no certificate",
                p.display()
            ));
        }
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    install_crypto_provider();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut b = reqwest::Client::builder();
    if public_only {
        b = b
            .dns_resolver(Arc::new(super::guard::PublicOnly))
            .redirect(super::guard::redirects());
    }
    b.tls_backend_preconfigured(tls)
        .user_agent(concat!("ipfaas/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(timeout)
        .timeout(Duration::from_secs(300))
        .build()
        .map_err(|e| chain(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pep_691_pages() {
        let page = br#"{"meta":{"api-version":"1.1"},"name":"six","files":[
            {"filename":"six-1.16.0-py2.py3-none-any.whl","url":"../../p/six-1.16.0-py2.py3-none-any.whl",
             "hashes":{"sha256":"ABCD"},"requires-python":">=2.7","core-metadata":{"sha256":"ee"},"yanked":false},
            {"filename":"six-1.0.tar.gz","url":"https://f.example/six-1.0.tar.gz","hashes":{},"yanked":"broken"}]}"#;
        let l = json_links(page).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].sha256.as_deref(), Some("abcd"));
        assert_eq!(l[0].metadata, Some(Some("ee".into())));
        assert!(!l[0].yanked && l[1].yanked);
        assert!(json_links(b"<html>").is_err());
    }

    #[test]
    fn pep_503_pages() {
        let html = r#"<!DOCTYPE html><html><body>
            <a href="../../p/six-1.16.0-py2.py3-none-any.whl#sha256=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
               data-requires-python="&gt;=2.7, !=3.0.*" data-core-metadata="sha256=1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef">six-1.16.0-py2.py3-none-any.whl</a><br/>
            <A HREF='six-1.15.0.tar.gz' data-yanked>six-1.15.0.tar.gz</A>
            <abbr>not a link</abbr><a>no href</a></body></html>"#;
        let l = html_links(html);
        assert_eq!(l.len(), 2, "{l:?}");
        assert_eq!(l[0].requires_python.as_deref(), Some(">=2.7, !=3.0.*"));
        assert!(l[0].metadata.as_ref().unwrap().is_some());
        assert_eq!(l[1].file.as_deref(), Some("six-1.15.0.tar.gz"));
        assert!(l[1].yanked);
        let base = Url::parse("https://i.example/simple/six/").unwrap();
        let (u, frag) = split_fragment(base.join(&l[0].href).unwrap());
        assert_eq!(
            u.as_str(),
            "https://i.example/p/six-1.16.0-py2.py3-none-any.whl"
        );
        assert!(frag.unwrap().starts_with("0123"));
        assert_eq!(percent_decode("a%2Bb%zz%4"), "a+b%zz%4");
        assert_eq!(
            redact("https://me:s3cret@mirror.example/simple/six/"),
            "https://mirror.example/simple/six/"
        );
        // a hostile page: anchors that never close stay linear (and find nothing)
        let page = "<a href=x-1.0.tar.gz>".repeat(200_000);
        let t = std::time::Instant::now();
        assert_eq!(html_links(&page).len(), 200_000);
        assert!(t.elapsed() < std::time::Duration::from_secs(20));
    }

    proptest::proptest! {
        #[test]
        fn html_never_panics(html in "(?s)[<>aA =\"'/#&;a-z0-9.\\-\\n]{0,300}") {
            let _ = html_links(&html);
        }
    }
}
