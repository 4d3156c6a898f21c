//! `cargo xtask demo [-- --rate N --seconds N]`: starts Azurite on a free
//! loopback port and runs the `demo` example of llm-log-callback against it
//! (a simulated gateway logging a few thousand records per second for 10 s),
//! then stops Azurite.

use crate::azurite::{Azurite, ACCOUNT, ACCOUNT_KEY};
use crate::util::cargo;
use crate::Result;

/// Runs the demo; fails if the demo does.
pub fn run(args: &[String]) -> Result {
    let azurite = Azurite::start_http()?;
    let connection_string = format!(
        "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};BlobEndpoint={}",
        azurite.url
    );
    eprintln!(
        "Azurite {} is up at {}",
        crate::azurite::VERSION,
        azurite.url
    );
    let args: Vec<&String> = args.iter().filter(|a| a.as_str() != "--").collect();
    let status = cargo()
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "llm-log-callback",
            "--example",
            "demo",
            "--",
        ])
        .args(args)
        .env("AZURE_STORAGE_CONNECTION_STRING", connection_string)
        .status()
        .map_err(|e| format!("running the demo: {e}"))?;
    azurite.stop();
    if !status.success() {
        return Err(format!("demo failed ({status})").into());
    }
    Ok(())
}
