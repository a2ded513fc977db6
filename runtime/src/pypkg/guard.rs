//! What a bundle's own URLs may reach. The index URLs of a requirements file, the URLs in its
//! lock, and every URL a page from such an index lists come from whoever deploys: they are
//! fetched only from public addresses (not loopback, private, link-local, shared or reserved
//! ranges), checked when a name resolves, for address literals, and on every redirect, so a
//! deploy cannot make the node probe its own network. The node's own sources (its flags, pip's
//! configuration) are the operator's and may be anywhere.
//!
//! Through an HTTP proxy (`HTTPS_PROXY`) names resolve at the proxy, so only address literals
//! and redirects are checked here: the proxy's own rules apply.

use std::net::{IpAddr, SocketAddr};

/// Is `ip` an address on the public internet?
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || a == 0
                || a >= 224 // multicast and reserved
                || (a == 100 && (b & 0xc0) == 64) // shared address space (CGNAT)
                || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
                || (a == 198 && (b & 0xfe) == 18)) // benchmarking
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b)) // NAT64: embeds any IPv4
        }
    }
}

/// Whether a bundle may make the node fetch `url`: http(s), and when its host is an address
/// literal, a public one (names are checked when they resolve: [`PublicOnly`]).
pub fn url_ok(url: &reqwest::Url) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{url}: only http and https URLs are fetched"));
    }
    let host = url.host_str().unwrap_or("");
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>()
        && !is_public(ip)
    {
        return Err(format!(
            "{}: {ip} is not a public address (a bundle's URLs may only reach public addresses; the node's own --index-url/--find-links may be anywhere)",
            super::index::redact(url.as_str())
        ));
    }
    if host.is_empty() {
        return Err(format!("{url}: no host"));
    }
    Ok(())
}

/// Resolves names to their public addresses only.
pub struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "{host} resolves to no public address (a bundle's URLs may only reach public addresses; the node's own --index-url/--find-links may be anywhere)"
                )
                .into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The redirect policy for a bundle's URLs: each hop checked by [`url_ok`], at most 10.
pub fn redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= 10 {
            return attempt.error("more than 10 redirects");
        }
        match url_ok(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(e) => attempt.error(e),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_refused() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(!is_public(bad.parse().unwrap()), "{bad}");
        }
        for good in ["151.101.0.223", "8.8.8.8", "2a04:4e42::223"] {
            assert!(is_public(good.parse().unwrap()), "{good}");
        }
        for (url, ok) in [
            ("https://pypi.org/simple/", true),
            ("http://169.254.169.254/latest/", false),
            ("http://[::1]:8080/", false),
            ("http://10.0.0.5:8080/admin", false),
            ("file:///etc/passwd", false),
        ] {
            assert_eq!(
                url_ok(&reqwest::Url::parse(url).unwrap()).is_ok(),
                ok,
                "{url}"
            );
        }
    }

    #[tokio::test]
    async fn names_resolve_to_public_addresses_only() {
        use reqwest::dns::Resolve;
        use std::str::FromStr;
        let name = reqwest::dns::Name::from_str("localhost").unwrap();
        let e = PublicOnly
            .resolve(name)
            .await
            .err()
            .expect("localhost refused");
        assert!(e.to_string().contains("no public address"), "{e}");
    }
}
