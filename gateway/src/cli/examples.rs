//! The example functions in `functions/`, compiled into the binary so `serve` can deploy them on
//! first start wherever it runs.

use ipfaas_runtime::Functions;
use ipfaas_runtime::registry::Bundle;

macro_rules! example {
    ($name:literal, [$($file:literal),*]) => {
        ($name, &[$(($file, include_bytes!(concat!("../../../functions/", $name, "/", $file)) as &[u8])),*])
    };
}

pub type Example = (&'static str, &'static [(&'static str, &'static [u8])]);

pub const EXAMPLES: &[Example] = &[
    example!("wordcount", ["function.py", "ipfaas.toml"]),
    example!("csv-stats", ["function.py", "ipfaas.toml"]),
    example!("sha256-manifest", ["function.py", "ipfaas.toml"]),
    example!(
        "csv-table",
        ["function.py", "ipfaas.toml", "requirements.txt"]
    ),
];

pub fn bundle(files: &[(&str, &'static [u8])]) -> ipfaas_runtime::Result<Bundle> {
    let mut b = Bundle::default();
    for (path, data) in files {
        b.insert(path, bytes::Bytes::from_static(data))?;
    }
    Ok(b)
}

/// Deploys, in the background and one at a time, every example not yet deployed under its name.
pub fn deploy_missing(functions: Functions) {
    tokio::spawn(async move {
        for (name, files) in EXAMPLES {
            if functions.resolve_name(name).is_ok() {
                continue;
            }
            tracing::info!("deploying example function {name} (first start)");
            let r = match bundle(files) {
                Ok(b) => {
                    functions
                        .deploy(Some(name.to_string()), b, None, false)
                        .await
                }
                Err(e) => Err(e),
            };
            match r {
                Ok(d) => tracing::info!(
                    "example {name} deployed as {} in {} ms",
                    d.function_cid,
                    d.build_ms
                ),
                Err(e) => tracing::warn!("example {name} could not be deployed: {e}"),
            }
        }
    });
}
