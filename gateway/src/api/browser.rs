//! What a web page may make this API do. A page on any origin can send requests to a node's
//! loopback address, and a name it controls can be re-pointed there (DNS rebinding), so:
//!
//! - **Host**: when the API listens on a loopback address, a request must name a loopback host
//!   (`localhost`, `127.0.0.1`, `[::1]`) or one given with `--allow-host`; any other name is a
//!   rebinding attempt and gets 421.
//! - **Origin**: a browser names the page's origin on every cross-origin request that can
//!   change state. A request other than GET/HEAD that carries an `Origin` not given with
//!   `--cors-origin` is refused with 403, before it is read; allowed origins get CORS headers
//!   and their preflights are answered. Non-browser clients (curl, the Kubo clients) send none.
//! - **Content**: every response says `X-Content-Type-Options: nosniff` and
//!   `Content-Security-Policy: sandbox`, so a document served from this origin (a function's
//!   output, a file under `/ipfs/`) runs no script with the API's origin; types a browser would
//!   render actively (HTML, SVG, XML, JavaScript) also go out as attachments.

use super::Body;
use super::error::ApiError;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

/// The node's rules for browser-originated requests.
#[derive(Debug, Clone, Default)]
pub struct BrowserPolicy {
    /// Whether the API listens on a loopback address (then `Host` is checked).
    pub loopback: bool,
    /// Extra host names a request may name (`--allow-host`).
    pub allowed_hosts: Vec<String>,
    /// Origins that may call state-changing endpoints (`--cors-origin`).
    pub allowed_origins: Vec<String>,
}

fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "localhost"
        || h.ends_with(".localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The host part of a `Host` value (`name:port`, `[v6]:port`).
fn host_part(v: &str) -> &str {
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    v.rsplit_once(':').map_or(v, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            v
        }
    })
}

impl BrowserPolicy {
    fn origin_allowed(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == origin)
    }

    /// Refuses a request from a rebound name or a foreign page's state change; answers an
    /// allowed origin's CORS preflight. `Ok(None)`: go on and route the request.
    pub fn check<B>(&self, req: &Request<B>) -> Result<Option<Response<Body>>, ApiError> {
        if self.loopback {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .or_else(|| req.uri().authority().map(|a| a.to_string()));
            if let Some(h) = host {
                let name = host_part(&h);
                if !is_loopback_host(name)
                    && !self
                        .allowed_hosts
                        .iter()
                        .any(|a| a.eq_ignore_ascii_case(name))
                {
                    return Err(ApiError::new(
                        StatusCode::MISDIRECTED_REQUEST,
                        format!(
                            "this node answers to loopback names only, not {name:?} (add it with --allow-host)"
                        ),
                    ));
                }
            }
        }
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        if let Some(origin) = origin {
            let allowed = self.origin_allowed(origin);
            if req.method() == Method::OPTIONS && allowed {
                let mut r = Response::new(super::full(""));
                *r.status_mut() = StatusCode::NO_CONTENT;
                set_all(
                    r.headers_mut(),
                    &[
                        (
                            header::ACCESS_CONTROL_ALLOW_METHODS,
                            "GET, HEAD, POST, DELETE",
                        ),
                        (
                            header::ACCESS_CONTROL_ALLOW_HEADERS,
                            "authorization, content-type",
                        ),
                        (header::ACCESS_CONTROL_MAX_AGE, "600"),
                    ],
                );
                return Ok(Some(r));
            }
            let reads = matches!(*req.method(), Method::GET | Method::HEAD);
            if !allowed && !reads {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "requests from the web page at {origin:?} may not change this node (allow an origin with --cors-origin)"
                    ),
                ));
            }
        }
        Ok(None)
    }

    /// Adds the content-safety headers, and CORS headers for an allowed `origin`.
    pub fn decorate(&self, origin: Option<&str>, resp: &mut Response<Body>) {
        let h = resp.headers_mut();
        set_all(
            h,
            &[
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::CONTENT_SECURITY_POLICY, "sandbox"),
            ],
        );
        let active = h
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_active_type);
        if active && !h.contains_key(header::CONTENT_DISPOSITION) {
            h.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment"),
            );
        }
        if let Some(o) = origin.filter(|o| self.origin_allowed(o))
            && let Ok(v) = HeaderValue::from_str(o)
        {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
}

fn set_all(h: &mut hyper::HeaderMap, pairs: &[(header::HeaderName, &'static str)]) {
    for (k, v) in pairs {
        h.insert(k.clone(), HeaderValue::from_static(v));
    }
}

/// Media types a browser renders with scripts or as a document of the serving origin.
fn is_active_type(ct: &str) -> bool {
    let t = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        t.as_str(),
        "text/html" | "application/xhtml+xml" | "image/svg+xml" | "text/xml" | "application/xml"
    ) || t.contains("javascript")
        || t.ends_with("+xml")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, host: &str, origin: Option<&str>) -> Request<()> {
        let mut b = Request::builder()
            .method(method)
            .uri("/v1/functions")
            .header(header::HOST, host);
        if let Some(o) = origin {
            b = b.header(header::ORIGIN, o);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn hosts_origins_and_content_types() {
        let p = BrowserPolicy {
            loopback: true,
            allowed_hosts: vec!["node0".into()],
            allowed_origins: vec!["https://app.example".into()],
        };
        for ok in [
            "127.0.0.1:5001",
            "localhost:5001",
            "[::1]:5001",
            "node0:5001",
            "LOCALHOST",
        ] {
            assert!(p.check(&req(Method::GET, ok, None)).is_ok(), "{ok}");
        }
        for bad in ["rebind.evil.example:5001", "127.0.0.1.evil.example", "evil"] {
            let e = p.check(&req(Method::GET, bad, None)).unwrap_err();
            assert_eq!(e.status, StatusCode::MISDIRECTED_REQUEST, "{bad}");
        }
        // a listener on a public address is reached by any name
        let open = BrowserPolicy {
            loopback: false,
            ..p.clone()
        };
        assert!(open.check(&req(Method::GET, "node7:5001", None)).is_ok());
        // a foreign page may read, not write; an allowed one may both, and gets its preflight
        let h = "127.0.0.1:5001";
        assert!(
            p.check(&req(Method::GET, h, Some("https://evil.example")))
                .is_ok()
        );
        let e = p
            .check(&req(Method::POST, h, Some("https://evil.example")))
            .unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        let e = p.check(&req(Method::POST, h, Some("null"))).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(matches!(
            p.check(&req(Method::POST, h, Some("https://app.example"))),
            Ok(None)
        ));
        let pre = p
            .check(&req(Method::OPTIONS, h, Some("https://app.example")))
            .unwrap();
        assert_eq!(pre.unwrap().status(), StatusCode::NO_CONTENT);
        // content types a browser would render actively go out as attachments
        for (ct, attached) in [
            ("text/html; charset=utf-8", true),
            ("image/svg+xml", true),
            ("application/javascript", true),
            ("application/atom+xml", true),
            ("application/json", false),
            ("text/plain", false),
        ] {
            let mut r = Response::new(super::super::full(""));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
            p.decorate(Some("https://app.example"), &mut r);
            let h = r.headers();
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(h[header::CONTENT_SECURITY_POLICY], "sandbox");
            assert_eq!(
                h.contains_key(header::CONTENT_DISPOSITION),
                attached,
                "{ct}"
            );
            assert_eq!(
                h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
                "https://app.example"
            );
        }
    }
}
