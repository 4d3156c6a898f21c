//! End-to-end tests, one binary (`cargo xtask integration` runs it with Azurite up).
//!
//! - `azurite_blob`: every Blob-dialect operation against Azurite over HTTP.
//! - `azurite_https`: Shared Key and bearer tokens over HTTPS with a generated CA.
//! - `pool`: connection reuse, idle eviction, in-flight limits.
//! - `dfs`: the DFS contract against the in-repo DFS server, the independent DFS
//!   emulator (its quirks asserted), and a live account when configured.
//! - `retry`: retries resend identical bytes, re-sign, and reconcile ambiguous attempts.
//! - `cli`: the `adls` tool against Azurite.
//! - `logger`: llm-log-callback end to end: volume, faults, outages, overflow, layouts.
//! - `matrix`: every id exactly once for server × layout × fault (`MATRIX` lines).
//! - `ledger`: the ledger's corners (shared names, duplicate ids, poisoned spill files,
//!   abandoned commits, SIGKILL).
//! - `shipper`: the `llm-log-shipper` binary: LiteLLM's three formats and gzip, refusals,
//!   metrics, health, SIGTERM, every record read back once; SIGKILL under load; real
//!   LiteLLM logging through its `generic_api` callback.
//! - `readers`: polars, pyarrow (adlfs) and DuckDB read every format the logger writes,
//!   on Azurite and the DFS emulator, and agree with what was logged.
//! - `identity`, `secrets`: Entra ID credentials; no secret in any output.

mod azurite_blob;
mod azurite_https;
mod cli;
mod dfs;
mod identity;
mod ledger;
mod logger;
mod matrix;
mod pool;
mod readers;
mod retry;
mod secrets;
mod shipper;
