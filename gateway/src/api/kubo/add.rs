//! `POST /api/v0/add`: a multipart body of files, directories (`application/x-directory`) and
//! symlinks (`application/symlink`), streamed into the store's importer on a blocking thread.
//!
//! The response is Kubo's NDJSON: `{"Name","Hash","Size"}` per file and directory (directories
//! after their contents, the wrapping directory last) and, with `progress=true`,
//! `{"Name","Bytes"}` lines while data flows. Result lines are sent only after the add is
//! durable. The status is decided when the first line is ready, so a bad request (a `..` file
//! name, a bad option) gets a 4xx even with progress on; a failure after that ends the stream with
//! an error line and the `X-Stream-Error` trailer, as Kubo does.

use crate::api::error::{ApiError, ApiResult};
use crate::api::{App, Body, Query};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::{HeaderMap, Request, Response, StatusCode, header};
use ipfaas_runtime::Error;
use ipfaas_runtime::store::add::{AddOptions, AddOutcome, Adder};
use ipfaas_runtime::unixfs::limits::MAX_SYMLINK_TARGET;
use ipfaas_runtime::unixfs::{ImportOptions, Profile};
use std::io::Read;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Messages from the HTTP side to the importer thread.
enum Msg {
    Dir(String),
    File(String),
    Data(Bytes),
    EndFile,
    Symlink(String, String),
    /// The body ended cleanly; without it the add is abandoned.
    End,
}

/// Lines from the importer back to the response.
enum Event {
    Progress(String, u64),
    Done(Result<AddOutcome, Error>),
}

pub fn options(q: &Query) -> ApiResult<AddOptions> {
    let profile: Profile = q
        .get("profile")
        .map(str::parse)
        .transpose()
        .map_err(ApiError::bad_request)?
        .unwrap_or_default();
    let mut import = ImportOptions::profile(profile);
    if let Some(v) = q.get("cid-version") {
        match v {
            "0" => import = import.with_cid_version(false),
            "1" => import = import.with_cid_version(true),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "cid-version must be 0 or 1, got {v:?}"
                )));
            }
        }
    }
    if q.get("raw-leaves").is_some() {
        import.raw_leaves = q.bool("raw-leaves", false)?;
    }
    if let Some(c) = q.get("chunker") {
        import = import.with_chunker(c).map_err(ApiError::bad_request)?;
    }
    if let Some(h) = q.get("hash").filter(|h| *h != "sha2-256") {
        return Err(ApiError::bad_request(format!(
            "hash {h:?} is not supported (only sha2-256)"
        )));
    }
    if q.bool("only-hash", false)? {
        return Err(ApiError::bad_request("only-hash is not supported"));
    }
    if q.bool("trickle", false)? {
        return Err(ApiError::bad_request("the trickle layout is not supported"));
    }
    Ok(AddOptions {
        import,
        wrap: q.bool("wrap-with-directory", false)?,
        pin: q.bool("pin", true)?,
        durable: true,
    })
}

fn boundary(headers: &HeaderMap) -> ApiResult<String> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    multer::parse_boundary(ct).map_err(|_| {
        ApiError::bad_request(format!(
            "expected a multipart/form-data body, got content-type {ct:?}"
        ))
    })
}

/// After the limit is exceeded, up to this much more of the body is read and dropped so the
/// client, still sending, gets to read the 413 instead of a connection reset.
const DRAIN_AFTER_LIMIT: u64 = 64 << 20;

/// The request body as a stream of chunks that fails once more than `limit` bytes arrived.
fn limited(body: Incoming, limit: u64) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let frames = http_body_util::BodyStream::new(body);
    futures::stream::unfold(
        (frames, 0u64, false),
        move |(mut frames, mut seen, done)| async move {
            if done {
                return None;
            }
            loop {
                let frame = match frames.next().await? {
                    Ok(f) => f,
                    Err(e) => return Some((Err(std::io::Error::other(e)), (frames, seen, true))),
                };
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                seen += data.len() as u64;
                if seen <= limit {
                    return Some((Ok(data), (frames, seen, false)));
                }
                let mut drained = 0u64;
                while drained < DRAIN_AFTER_LIMIT {
                    match frames.next().await {
                        Some(Ok(f)) => drained += f.data_ref().map_or(0, |d| d.len() as u64),
                        _ => break,
                    }
                }
                return Some((Err(std::io::Error::other(TooLarge)), (frames, seen, true)));
            }
        },
    )
}

#[derive(Debug)]
struct TooLarge;
impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("body too large")
    }
}
impl std::error::Error for TooLarge {}

fn is_too_large(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.is::<TooLarge>() || e.to_string() == "body too large" {
            return true;
        }
        cur = e.source();
    }
    false
}

pub(crate) fn query_unescape(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

/// Reads `Msg`s on the importer thread: file bodies become a `Read`.
struct Feed {
    rx: mpsc::Receiver<Msg>,
    events: mpsc::UnboundedSender<Event>,
    progress: bool,
}

struct FileReader<'a> {
    rx: &'a mut mpsc::Receiver<Msg>,
    buf: Bytes,
    done: bool,
}

impl Read for FileReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() && !self.done {
            match self.rx.blocking_recv() {
                Some(Msg::Data(b)) => self.buf = b,
                Some(Msg::EndFile) => self.done = true,
                // the HTTP side stopped (client gone, body error): abandon the add
                _ => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "request body ended mid-file",
                    ));
                }
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        let _ = self.buf.split_to(n);
        Ok(n)
    }
}

impl Feed {
    fn run(mut self, a: &mut Adder<'_>) -> ipfaas_runtime::Result<()> {
        while let Some(m) = self.rx.blocking_recv() {
            match m {
                Msg::End => return Ok(()),
                Msg::Dir(p) => a.dir(&p)?,
                Msg::Symlink(p, t) => {
                    a.symlink(&p, &t)?;
                }
                Msg::File(p) => {
                    let mut r = FileReader {
                        rx: &mut self.rx,
                        buf: Bytes::new(),
                        done: false,
                    };
                    let (events, progress) = (self.events.clone(), self.progress);
                    let mut last = 0;
                    let report = |n| {
                        if progress && n - last >= 256 * 1024 {
                            last = n;
                            let _ = events.send(Event::Progress(p.clone(), n));
                        }
                    };
                    if p.is_empty() {
                        a.unnamed_file(&mut r, report)?;
                    } else {
                        a.file(&p, &mut r, report)?;
                    }
                }
                Msg::Data(_) | Msg::EndFile => {
                    return Err(Error::InvalidInput("file data outside a file part".into()));
                }
            }
        }
        Err(Error::InvalidInput("request body ended early".into()))
    }
}

/// Parses the multipart body and forwards it to the importer. Returns the error that should
/// become the response when the body is at fault (bad multipart, too large); if the importer
/// stops first (say, on a bad file name) its own error is the answer and this returns `Ok`.
async fn pump(
    body: Incoming,
    boundary: String,
    limit: u64,
    tx: mpsc::Sender<Msg>,
) -> Result<(), ApiError> {
    match pump_inner(body, boundary, limit, &tx).await {
        Err(Some(e)) => Err(e),
        Err(None) => Ok(()),
        Ok(()) => {
            let _ = tx.send(Msg::End).await;
            Ok(())
        }
    }
}

/// The importer's end of the channel. Once it hangs up (it refused the add), the rest of the
/// body is read and dropped, up to [`DRAIN_AFTER_LIMIT`] bytes, so that a client still
/// uploading reads the importer's JSON error instead of a broken pipe.
struct ToImporter<'a> {
    tx: &'a mpsc::Sender<Msg>,
    open: bool,
    dropped: u64,
}

impl ToImporter<'_> {
    async fn send(&mut self, m: Msg) {
        if self.open && self.tx.send(m).await.is_err() {
            self.open = false;
        }
    }

    /// Whether to keep reading the body: always while the importer listens, then while the
    /// dropped bytes stay under the drain bound.
    fn keep_reading(&mut self, len: usize) -> bool {
        if !self.open {
            self.dropped += len as u64;
        }
        self.dropped < DRAIN_AFTER_LIMIT
    }
}

/// `Err(None)`: the importer hung up (its error is the answer).
async fn pump_inner(
    body: Incoming,
    boundary: String,
    limit: u64,
    tx: &mpsc::Sender<Msg>,
) -> Result<(), Option<ApiError>> {
    let mut mp = multer::Multipart::new(limited(body, limit), boundary);
    let bad = |e: multer::Error| {
        Some(if is_too_large(&e) {
            ApiError::too_large(limit)
        } else {
            ApiError::bad_request(format!("malformed multipart body: {e}"))
        })
    };
    let mut out = ToImporter {
        tx,
        open: true,
        dropped: 0,
    };
    let mut parts = 0usize;
    'parts: loop {
        let mut field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(_) if !out.open => break,
            Err(e) => return Err(bad(e)),
        };
        parts += 1;
        // As Kubo does, the entry's path is the `filename` parameter alone (QueryEscape'd); a
        // part without one is an unnamed file, named by its CID.
        let path = query_unescape(field.file_name().unwrap_or(""));
        let ct = field
            .content_type()
            .map(|m| m.essence_str().to_string())
            .unwrap_or_default();
        match ct.as_str() {
            "application/x-directory" | "multipart/form-data" => out.send(Msg::Dir(path)).await,
            "application/symlink" => {
                // a target is a path: read at most PATH_MAX of it, never the whole part
                let mut target = Vec::new();
                loop {
                    match field.chunk().await {
                        Ok(Some(c)) if target.len() + c.len() <= MAX_SYMLINK_TARGET => {
                            target.extend_from_slice(&c)
                        }
                        Ok(Some(_)) => {
                            return Err(Some(ApiError::bad_request(format!(
                                "the symlink {path:?} has a target longer than {MAX_SYMLINK_TARGET} bytes"
                            ))));
                        }
                        Ok(None) => break,
                        Err(_) if !out.open => break 'parts,
                        Err(e) => return Err(bad(e)),
                    }
                }
                match String::from_utf8(target) {
                    Ok(t) => out.send(Msg::Symlink(path, t)).await,
                    Err(_) => {
                        return Err(Some(ApiError::bad_request(format!(
                            "the symlink {path:?} has a target that is not UTF-8"
                        ))));
                    }
                }
            }
            _ => {
                out.send(Msg::File(path)).await;
                loop {
                    match field.chunk().await {
                        Ok(Some(chunk)) => {
                            let len = chunk.len();
                            out.send(Msg::Data(chunk)).await;
                            if !out.keep_reading(len) {
                                break 'parts;
                            }
                        }
                        Ok(None) => break,
                        Err(_) if !out.open => break 'parts,
                        Err(e) => return Err(bad(e)),
                    }
                }
                out.send(Msg::EndFile).await;
            }
        }
    }
    if !out.open {
        return Err(None);
    }
    if parts == 0 {
        return Err(Some(ApiError::bad_request(
            "the multipart body holds no files",
        )));
    }
    Ok(())
}

fn result_lines(out: &AddOutcome, opts: &AddOptions) -> Vec<serde_json::Value> {
    out.added
        .iter()
        .map(|a| {
            let name = if a.path.is_empty() && !opts.wrap { a.cid.to_string() } else { a.path.clone() };
            serde_json::json!({"Name": name, "Hash": a.cid.to_string(), "Size": a.tsize.to_string()})
        })
        .collect()
}

fn line(v: &serde_json::Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

/// Everything checked before the body is read.
fn prepare(
    app: &App,
    parts: &hyper::http::request::Parts,
) -> ApiResult<(AddOptions, bool, String)> {
    app.authorize(&parts.headers)?;
    let q = Query::parse(&parts.uri);
    let opts = options(&q)?;
    let progress = q.bool("progress", false)?;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > app.cfg.max_body) {
        return Err(ApiError::too_large(app.cfg.max_body));
    }
    Ok((opts, progress, boundary(&parts.headers)?))
}

/// Reads and drops up to [`DRAIN_AFTER_LIMIT`] bytes of a body we refuse, so a client that is
/// still sending reads our answer rather than a reset connection.
async fn drain(body: Incoming) {
    let mut frames = http_body_util::BodyStream::new(body);
    let mut n = 0u64;
    while n < DRAIN_AFTER_LIMIT {
        match frames.next().await {
            Some(Ok(f)) => n += f.data_ref().map_or(0, |d| d.len() as u64),
            _ => break,
        }
    }
}

/// The error a failed add answers with. A successful add implies a clean body (the importer
/// only commits after the pump's `End`), so only failures need this: the transport's error
/// (413, malformed multipart) wins over the importer's "request body ended early" it caused.
async fn failure(pump: tokio::task::JoinHandle<Result<(), ApiError>>, e: Error) -> ApiError {
    match pump.await {
        Ok(Err(pe)) => pe,
        _ => ApiError::from(e),
    }
}

pub async fn add(app: &Arc<App>, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    let (parts, body) = req.into_parts();
    let (opts, progress, boundary) = match prepare(app, &parts) {
        Ok(p) => p,
        Err(e) => {
            // a declared oversize body is refused without reading it
            if e.status != StatusCode::PAYLOAD_TOO_LARGE {
                drain(body).await;
            }
            return Err(e);
        }
    };
    let limit = app.cfg.max_body;

    let (tx, rx) = mpsc::channel(16);
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let feed = Feed {
        rx,
        events: ev_tx.clone(),
        progress,
    };
    let store = app.store.clone();
    let add_opts = opts.clone();
    tokio::spawn(async move {
        let r = store.add(add_opts, move |a| feed.run(a)).await;
        let _ = ev_tx.send(Event::Done(r));
    });
    let pump = tokio::spawn(pump(body, boundary, limit, tx));

    // Decide the status on the first event.
    let first = ev_rx
        .recv()
        .await
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "import task vanished"))?;
    if let Event::Done(res) = first {
        return match res {
            Ok(out) => {
                let body: Vec<u8> = result_lines(&out, &opts)
                    .iter()
                    .flat_map(|v| line(v).to_vec())
                    .collect();
                let mut r = Response::new(crate::api::full(body));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                );
                Ok(r)
            }
            Err(e) => Err(failure(pump, e).await),
        };
    }
    // Progress is flowing: stream.
    let stream = futures::stream::unfold((Some(first), ev_rx, Some(pump), opts), |(mut pending, mut rx, mut pump, opts)| async move {
        let ev = match pending.take() {
            Some(e) => e,
            None => rx.recv().await?,
        };
        let frames: Vec<Frame<Bytes>> = match ev {
            Event::Progress(name, n) => vec![Frame::data(line(&serde_json::json!({"Name": name, "Bytes": n})))],
            Event::Done(Ok(out)) => result_lines(&out, &opts).iter().map(|v| Frame::data(line(v))).collect(),
            Event::Done(Err(e)) => {
                let msg = match pump.take() {
                    Some(p) => failure(p, e).await.message,
                    None => e.to_string(),
                };
                let mut trailers = HeaderMap::new();
                trailers.insert("X-Stream-Error", msg.parse().unwrap_or(header::HeaderValue::from_static("add failed")));
                vec![
                    Frame::data(line(&serde_json::json!({"Message": msg, "Code": 0, "Type": "error", "error": msg}))),
                    Frame::trailers(trailers),
                ]
            }
        };
        Some((futures::stream::iter(frames.into_iter().map(Ok::<_, std::io::Error>)), (None, rx, pump, opts)))
    })
    .flatten();
    let mut r = Response::new(BodyExt::boxed_unsync(http_body_util::StreamBody::new(
        stream,
    )));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    h.insert("X-Chunked-Output", header::HeaderValue::from_static("1"));
    h.insert(
        header::TRAILER,
        header::HeaderValue::from_static("X-Stream-Error"),
    );
    Ok(r)
}
