//! End-to-end tests, one binary (`cargo xtask integration` runs it with Azurite up).
//!
//! - `azurite_blob`: every Blob-dialect operation against Azurite over HTTP.
//! - `azurite_https`: Shared Key and bearer tokens over HTTPS with a generated CA.
//! - `pool`: connection reuse, idle eviction, in-flight limits.
//! - `dfs`: the DFS dialect against the in-repo DFS server (and a live account when configured).
//! - `retry`: retries resend identical bytes, re-sign, and reconcile ambiguous attempts.
//! - `cli`: the `adls` tool against Azurite.

mod azurite_blob;
mod azurite_https;
mod cli;
mod dfs;
mod identity;
mod logger;
mod matrix;
mod pool;
mod retry;
mod secrets;
