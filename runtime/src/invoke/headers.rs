//! The HTTP response headers an invocation answers with (`POST /v1/functions/{name}/invoke`): the gateway
//! sets them, and clients, tests and benchmarks read them by these names.

/// The output's CID.
pub const OUTPUT_CID: &str = "x-ipfaas-output-cid";
/// The function CID that ran.
pub const FUNCTION_CID: &str = "x-ipfaas-function-cid";
/// The input's CID.
pub const INPUT_CID: &str = "x-ipfaas-input-cid";
/// `hit` when the result cache answered, else `miss`.
pub const CACHE: &str = "x-ipfaas-cache";
/// The peer that ran it, when it was forwarded.
pub const RAN_ON: &str = "x-ipfaas-ran-on";
/// The `/outputs` directory's CID, when the function wrote any.
pub const OUTPUTS_CID: &str = "x-ipfaas-outputs-cid";
/// The logs' CID, when there were logs.
pub const LOGS_CID: &str = "x-ipfaas-logs-cid";
/// Docker functions: the container's exit code.
pub const EXIT_CODE: &str = "x-ipfaas-exit-code";
/// Python functions run now: the fuel spent.
pub const FUEL: &str = "x-ipfaas-fuel";
