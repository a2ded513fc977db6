//! Callbacks: a finished job is POSTed as JSON to the URL its submitter gave
//! (`X-Callback-Url`, as OpenFaaS does), a few times if the receiver fails.

use serde_json::{Value, json};
use std::time::Duration;

/// Attempts at delivering one callback.
const ATTEMPTS: u32 = 3;

/// Refuses what is not an absolute `http`/`https` URL.
pub fn check_url(u: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(u).map_err(|e| format!("callback URL {u:?}: {e}"))?;
    match parsed.scheme() {
        "http" | "https" if parsed.host_str().is_some() => Ok(()),
        _ => Err(format!(
            "callback URL {u:?}: only http:// and https:// URLs with a host are called back"
        )),
    }
}

/// POSTs `body` to `url` until a 2xx answer, at most [`ATTEMPTS`] times (1 s, then 2 s
/// apart); what happened, as recorded in the job.
pub async fn deliver(http: &reqwest::Client, url: &str, body: &Value) -> Value {
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        match http
            .post(url)
            .header("content-type", "application/json")
            .header("x-ipfaas-job", body["job"].as_str().unwrap_or_default())
            .body(body.to_string())
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {
                return json!({"url": url, "delivered": true, "status": r.status().as_u16(), "attempts": attempt});
            }
            Ok(r) => last = format!("the receiver answered {}", r.status()),
            Err(e) => last = format!("{e}"),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
        }
    }
    json!({"url": url, "delivered": false, "attempts": ATTEMPTS, "error": last})
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn only_http_urls_with_a_host_are_called_back() {
        assert!(check_url("http://127.0.0.1:8080/done").is_ok());
        assert!(check_url("https://example.org/hook?x=1").is_ok());
        for bad in [
            "file:///etc/passwd",
            "ftp://h/x",
            "/relative",
            "",
            "http://",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
