//! Serving connections: the accept loop and what bounds each connection. A client has
//! [`HEADER_READ_TIMEOUT`] to send a request's head (also the idle keep-alive limit),
//! [`WRITE_STALL_TIMEOUT`] to take each part of a response, and at most `--max-connections`
//! (default [`MAX_CONNECTIONS`]) are served at once. HTTP/1 only: HTTP/2 with prior knowledge would bypass the first two.

use super::{App, handle};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// How long a client may take to send a request's headers, counted from when the connection
/// is ready for the next request: also how long an idle keep-alive connection stays open.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// The most connections served at once by default (`--max-connections`); past it, new
/// connections wait in the kernel's backlog until one closes.
pub const MAX_CONNECTIONS: usize = 1024;

/// How long a write to a client may make no progress before the connection is dropped: a
/// client that stops reading a response must not hold a connection slot for ever.
pub const WRITE_STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A connection whose writes fail with `TimedOut` once one has waited [`WRITE_STALL_TIMEOUT`]
/// without the client taking any byte. (hyper has a header-read timeout but none for writes.)
struct Stalled<S> {
    io: S,
    /// How long a write may wait.
    limit: std::time::Duration,
    /// Armed while a write is pending; reset by every write that makes progress.
    stall: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Stalled<S> {
    fn new(io: S, limit: std::time::Duration) -> Self {
        Self {
            io,
            limit,
            stall: None,
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Stalled<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> Stalled<S> {
    /// Runs one write-side poll under the stall timer.
    fn guarded<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        op: impl FnOnce(
            std::pin::Pin<&mut S>,
            &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<T>>,
    ) -> std::task::Poll<std::io::Result<T>> {
        use std::future::Future;
        use std::task::Poll;
        match op(std::pin::Pin::new(&mut self.io), cx) {
            Poll::Ready(r) => {
                self.stall = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let limit = self.limit;
                let timer = self
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client stopped reading",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Stalled<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.guarded(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.guarded(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.guarded(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Serves at most `max_connections` connections at once until `shutdown` resolves; in-flight
/// requests finish first.
pub async fn run(
    app: Arc<App>,
    listener: TcpListener,
    max_connections: usize,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    // HTTP/1 only: HTTP/2 (with prior knowledge) would bypass the header and idle timeouts
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    // accept errors (out of file descriptors, mostly) back off instead of spinning
    let mut backoff = std::time::Duration::ZERO;
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, peer): (_, SocketAddr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => {
                    backoff = std::time::Duration::ZERO;
                    x
                }
                Err(e) => {
                    backoff = (backoff * 2).clamp(
                        std::time::Duration::from_millis(5),
                        std::time::Duration::from_secs(1),
                    );
                    tracing::warn!("accept: {e}; retrying in {backoff:?}");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => continue,
                        _ = &mut shutdown => break,
                    }
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let svc = hyper::service::service_fn(move |req| handle(app.clone(), req));
        let conn = builder
            .serve_connection_with_upgrades(
                TokioIo::new(Stalled::new(stream, WRITE_STALL_TIMEOUT)),
                svc,
            )
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection from {peer}: {e}");
            }
            drop(slot);
        });
    }
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => tracing::warn!("shutdown: gave up waiting for open connections"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_write_the_client_does_not_take_times_out_and_one_it_takes_does_not() {
        let (server, mut client) = tokio::io::duplex(1024);
        let limit = std::time::Duration::from_millis(200);
        let mut s = Stalled::new(server, limit);
        // the client reads slowly but steadily: every write makes progress in time
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 512];
            let mut got = 0;
            while got < 8 << 10 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                got += client.read(&mut buf).await.unwrap();
            }
            client
        });
        s.write_all(&vec![7u8; 8 << 10]).await.unwrap();
        let _client = reader.await.unwrap();
        // now it stops reading: the pipe fills and the next write gives up after the limit
        let t = std::time::Instant::now();
        let more = vec![7u8; 8 << 10];
        let write = s.write_all(&more);
        let e = tokio::time::timeout(limit * 20, write)
            .await
            .expect("the stalled write never gave up")
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(
            t.elapsed() >= limit && t.elapsed() < limit * 10,
            "{:?}",
            t.elapsed()
        );
    }
}
