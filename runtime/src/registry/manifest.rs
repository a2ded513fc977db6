//! The deploy manifest, one parser for both kinds and both spellings: `ipfaas.toml` in a bundle,
//! or the JSON body of `POST /v1/functions`. TOML is read into the same JSON value first, so
//! sizes (`"256MiB"` or bytes) and durations (`"30s"` or milliseconds) have one reading.
//!
//! ```toml
//! name = "wordcount"        # both kinds
//! kind = "python"           # the default
//! memory = "512MiB"         # python: limits at the top level
//! fuel = 50_000_000_000
//! timeout = "60s"
//! max_output = "64MiB"
//! ```
//! A Docker function has `kind = "docker"`, `image`, and optionally `entrypoint`, `cmd`, `env`,
//! `workdir`, `user` (`uid[:gid]`), `secrets` (names of node secrets) and a `[limits]` table
//! (`memory`, `cpus`, `pids`, `timeout`, `max_output`).

use crate::error::{Error, Result};
use crate::executor::docker::DockerLimits;
use crate::executor::wasm::Limits;
use crate::executor::wasm::engine::MAX_MEMORY;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// A parsed manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The name to deploy under, unless the request gives one.
    pub name: Option<String>,
    /// What kind of function, and how to run it.
    pub spec: Spec,
}

/// The kind-specific part of a manifest.
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    /// A Python function: the bundle holds the code; the manifest only its limits.
    Python(Limits),
    /// A Docker function.
    Docker(DockerSpec),
}

/// How to run a Docker function.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerSpec {
    /// Image reference, resolved to an ID at deploy.
    pub image: String,
    /// Replaces the image's entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's command.
    pub cmd: Option<Vec<String>>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// Working directory in the container.
    pub workdir: Option<String>,
    /// Resource limits.
    pub limits: DockerLimits,
    /// `uid[:gid]` to run as instead of the unprivileged default.
    pub user: Option<String>,
    /// Names of node secrets set as environment variables at run time.
    pub secrets: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPython {
    #[allow(dead_code)]
    name: Option<Value>,
    #[allow(dead_code)]
    kind: Option<Value>,
    memory: Option<Value>,
    fuel: Option<u64>,
    timeout: Option<Value>,
    max_output: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocker {
    #[allow(dead_code)]
    name: Option<Value>,
    #[allow(dead_code)]
    kind: Value,
    image: String,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    workdir: Option<String>,
    #[serde(default)]
    limits: BTreeMap<String, Value>,
    user: Option<Value>,
    #[serde(default)]
    secrets: Vec<String>,
}

impl Manifest {
    /// Reads `ipfaas.toml`.
    pub fn from_toml(bytes: &[u8]) -> Result<Self> {
        let bad = |m: String| Error::InvalidInput(format!("ipfaas.toml: {m}"));
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8".into()))?;
        let v: Value = toml::from_str(text).map_err(|e| bad(e.message().to_string()))?;
        Self::parse(v, "ipfaas.toml")
    }

    /// Reads a manifest sent as JSON.
    pub fn from_json(v: Value) -> Result<Self> {
        Self::parse(v, "manifest")
    }

    /// Reads a manifest; errors start with `source` and name the field.
    fn parse(v: Value, source: &str) -> Result<Self> {
        let bad = |m: String| Error::InvalidInput(format!("{source}: {m}"));
        let Some(obj) = v.as_object() else {
            return Err(bad("not a table of settings".into()));
        };
        let name = match obj.get("name") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => return Err(bad(format!("name: a string, got {other}"))),
        };
        let spec = match obj.get("kind") {
            None => Spec::Python(python(v, &bad)?),
            Some(Value::String(k)) if k == "python" => Spec::Python(python(v, &bad)?),
            Some(Value::String(k)) if k == "docker" => Spec::Docker(docker(v, &bad)?),
            Some(k) => return Err(bad(format!("kind {k} is not supported (python, docker)"))),
        };
        Ok(Self { name, spec })
    }
}

fn python(v: Value, bad: &dyn Fn(String) -> Error) -> Result<Limits> {
    let raw: RawPython = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
    let mut limits = Limits::default();
    let field =
        |k: &str, r: std::result::Result<u64, String>| r.map_err(|m| bad(format!("{k}: {m}")));
    if let Some(v) = &raw.memory {
        limits.memory = field("memory", size(v))?;
        if limits.memory > MAX_MEMORY {
            return Err(bad("memory: at most 4GiB (wasm32)".into()));
        }
    }
    if let Some(f) = raw.fuel {
        limits.fuel = f;
    }
    if let Some(v) = &raw.timeout {
        limits.timeout_ms = field("timeout", duration(v))?;
    }
    if let Some(v) = &raw.max_output {
        limits.max_output = field("max_output", size(v))?;
    }
    Ok(limits)
}

fn docker(v: Value, bad: &dyn Fn(String) -> Error) -> Result<DockerSpec> {
    let raw: RawDocker = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
    if raw.image.trim().is_empty() {
        return Err(bad("image is empty".into()));
    }
    let mut limits = DockerLimits::default();
    for (k, v) in &raw.limits {
        let field =
            |r: std::result::Result<u64, String>| r.map_err(|m| bad(format!("limits.{k}: {m}")));
        match k.as_str() {
            "memory" => limits.memory = field(size(v))?,
            "max_output" => limits.max_output = field(size(v))?,
            "timeout" => limits.timeout_ms = field(duration(v))?,
            "pids" => {
                limits.pids = field(
                    v.as_u64()
                        .filter(|n| *n > 0 && *n <= i64::MAX as u64)
                        .ok_or_else(|| "a positive integer".to_string()),
                )? as i64
            }
            "cpus" => {
                limits.cpus = v
                    .as_f64()
                    .filter(|c| *c > 0.0 && c.is_finite())
                    .ok_or_else(|| bad(format!("limits.cpus: a positive number, got {v}")))?
            }
            other => {
                return Err(bad(format!(
                    "unknown limit {other:?} (memory, cpus, pids, timeout, max_output)"
                )));
            }
        }
    }
    // `user = 1000` in TOML is a number; `"1000:1000"` a string
    let user = match raw.user {
        None => None,
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) => Some(s),
        Some(v) => return Err(bad(format!("user: `uid` or `uid:gid`, got {v}"))),
    };
    if let Some(u) = &user {
        crate::executor::docker::def::parse_user(u).map_err(bad)?;
    }
    let mut secrets = raw.secrets;
    secrets.sort();
    secrets.dedup();
    Ok(DockerSpec {
        image: raw.image,
        entrypoint: raw.entrypoint,
        cmd: raw.cmd,
        env: raw.env,
        workdir: raw.workdir,
        limits,
        user,
        secrets,
    })
}

/// A size: a positive byte count or a string like `"256MiB"`.
fn size(v: &Value) -> std::result::Result<u64, String> {
    match v {
        Value::Number(n) if n.as_u64().is_some_and(|n| n > 0) => Ok(n.as_u64().unwrap_or(0)),
        Value::String(s) => match crate::units::parse_size(s)? {
            0 => Err(format!("{s:?} is zero")),
            n => Ok(n),
        },
        _ => Err("a byte count or a size like \"256MiB\"".into()),
    }
}

/// A duration: positive milliseconds or a string like `"30s"` (`ms`, `s`, `min`).
fn duration(v: &Value) -> std::result::Result<u64, String> {
    match v {
        Value::Number(n) if n.as_u64().is_some_and(|n| n > 0) => Ok(n.as_u64().unwrap_or(0)),
        Value::String(s) => humantime_ms(s),
        _ => Err("milliseconds or a duration like \"30s\"".into()),
    }
}

fn humantime_ms(s: &str) -> std::result::Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration"))?;
    let mul = match unit.trim() {
        "ms" => 1,
        "s" | "" => 1000,
        "m" | "min" => 60_000,
        u => return Err(format!("unknown unit {u:?} in {s:?} (ms, s, min)")),
    };
    n.checked_mul(mul)
        .filter(|ms| *ms > 0)
        .ok_or_else(|| format!("{s:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_units_and_errors() {
        let m =
            Manifest::from_toml(b"name = \"x\"\nmemory = \"64MiB\"\ntimeout = \"2s\"\nfuel = 5\n")
                .unwrap();
        assert_eq!(m.name.as_deref(), Some("x"));
        let Spec::Python(l) = m.spec else {
            panic!("{m:?}")
        };
        assert_eq!((l.memory, l.timeout_ms, l.fuel), (64 << 20, 2000, 5));
        for (text, culprit) in [
            ("memroy = 1\n", "memroy"),
            ("memory = \"5 parsecs\"\n", "parsecs"),
            ("memory = \"8GiB\"\n", "4GiB"),
            ("kind = \"cobol\"\n", "cobol"),
            ("timeout = 0\n", "timeout"),
            ("name = 3\n", "name"),
        ] {
            let e = Manifest::from_toml(text.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(culprit) && e.starts_with("ipfaas.toml: "),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn docker_from_toml_and_json_read_alike() {
        let toml = b"kind = \"docker\"\nimage = \"x:1\"\n[limits]\nmemory = \"64MiB\"\ntimeout = 1500\npids = 7\ncpus = 0.5\n";
        let json = serde_json::json!({"kind": "docker", "image": "x:1",
            "limits": {"memory": "64MiB", "timeout": 1500, "pids": 7, "cpus": 0.5}});
        let (a, b) = (
            Manifest::from_toml(toml).unwrap(),
            Manifest::from_json(json).unwrap(),
        );
        assert_eq!(a, b);
        let Spec::Docker(d) = a.spec else { panic!() };
        assert_eq!(
            (d.limits.memory, d.limits.timeout_ms, d.limits.pids),
            (64 << 20, 1500, 7)
        );
        for bad in [
            serde_json::json!({"kind": "docker", "image": " "}),
            serde_json::json!({"kind": "docker", "image": "x", "limits": {"ram": 1}}),
            serde_json::json!({"kind": "docker", "image": "x", "limits": {"pids": 0}}),
            serde_json::json!({"kind": "docker", "image": "x", "limits": {"cpus": -1}}),
            serde_json::json!({"kind": "docker", "image": "x", "privileged": true}),
            serde_json::json!(["kind", "docker"]),
        ] {
            assert!(Manifest::from_json(bad.clone()).is_err(), "{bad}");
        }
    }
}
