//! `adls`: a thin command-line tool on [`adls_rest`] for Azure Data Lake
//! Storage Gen2 (DFS) and Blob storage, Azurite included.
//!
//! ```text
//! adls [OPTIONS] fs create FS              create a filesystem (container)
//! adls [OPTIONS] fs rm FS                  delete a filesystem and everything in it
//! adls [OPTIONS] put FS/PATH               write stdin to a file, replacing it
//! adls [OPTIONS] append FS/PATH            append stdin at the end of an existing file
//! adls [OPTIONS] cat FS/PATH               write a file to stdout
//! adls [OPTIONS] stat FS/PATH              print length, etag, last-modified, content-type
//!                                          and metadata, one `key: value` per line
//! adls [OPTIONS] ls FS[/DIR] [--recursive] list the paths under DIR, one full path per line;
//!                                          directories end in `/`
//! adls [OPTIONS] rm FS/PATH                delete a file
//!
//! Options:
//!   --connection-string S   default: $AZURE_STORAGE_CONNECTION_STRING (prefer it)
//!   --dialect dfs|blob      default: blob for 127.0.0.1 / localhost, dfs otherwise
//!   -r, --recursive         (ls) descend into subdirectories
//! ```
//!
//! For example, against Azurite:
//!
//! ```text
//! export AZURE_STORAGE_CONNECTION_STRING='UseDevelopmentStorage=true'
//! adls fs create logs
//! printf 'hello\n' | adls put 'logs/2024/day one.txt'
//! printf 'world\n' | adls append 'logs/2024/day one.txt'
//! adls cat 'logs/2024/day one.txt'      # hello, world
//! adls ls logs --recursive              # 2024/day one.txt
//! ```
//!
//! FS is the part before the first `/`; paths are written unencoded (spaces,
//! unicode, `%+=&;,'!()*~` are sent correctly encoded).
//!
//! - `put` and `append` stream stdin in chunks of [`CHUNK`] bytes (appends,
//!   then one flush with close), so memory stays bounded whatever the size.
//!   Nothing appended is visible before that flush: `put` first replaces the
//!   file with an empty one, `append` keeps the old content readable and
//!   starts at its current length. `cat` reads ranges of [`CHUNK`] bytes and
//!   fails if the file changed while it was being read.
//! - Exit status 0 on success; 1 when an operation fails, with one line on
//!   stderr that carries the HTTP status, the storage error code and the
//!   request id; 2 on a usage error. A closed stdout (`adls cat … | head`)
//!   ends the command quietly with status 0.
//! - No secret is ever printed: errors from the library are redacted there,
//!   usage errors never quote values.
//! - `RUST_LOG` (e.g. `RUST_LOG=adls_rest=debug`) turns on logging to stderr;
//!   it is off by default, so stderr stays one line on failure.

mod args;

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;

use adls_rest::{
    AzureCliCredential, ByteRange, Checksums, Client, CreateMode, CreateOptions, Credential,
    DefaultAzureCredential, File, FlushOptions, ListOptions,
};
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};

use crate::args::{Auth, Command, Invocation, Location, USAGE};

/// Bytes per append (upload) and per ranged read (download).
pub const CHUNK: usize = 4 * 1024 * 1024;

/// The environment variable holding the connection string.
const ENV_CONNECTION_STRING: &str = "AZURE_STORAGE_CONNECTION_STRING";

/// Why a command did not succeed.
enum Failure {
    /// Bad command line or missing configuration: exit status 2.
    Usage(String),
    /// The library failed (service answer, connection, configuration): exit 1.
    Storage(adls_rest::Error),
    /// Local input or output failed: exit 1.
    Io(&'static str, std::io::Error),
    /// Anything else that failed: exit 1.
    Other(String),
}

impl From<adls_rest::Error> for Failure {
    fn from(e: adls_rest::Error) -> Self {
        Failure::Storage(e)
    }
}

fn main() -> ExitCode {
    let mut words = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.into_string() {
            Ok(s) => words.push(s),
            Err(_) => return usage_error("arguments must be valid UTF-8"),
        }
    }
    let invocation = match args::parse(words) {
        Ok(inv) => inv,
        Err(msg) => return usage_error(&msg),
    };
    if invocation.command == Command::Help {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    init_logging();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(Failure::Io("cannot start the async runtime", e)),
    };
    match runtime.block_on(run(invocation)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Io(_, e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(f) => report(f),
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("adls: {msg}\n\n{USAGE}");
    ExitCode::from(2)
}

/// Prints a failure as exactly one line on stderr and picks the exit status.
fn report(failure: Failure) -> ExitCode {
    let (status, text) = match failure {
        Failure::Usage(msg) => return usage_error(&msg),
        Failure::Storage(e) => (1, with_causes(&e)),
        Failure::Io(what, e) => (1, format!("{what}: {e}")),
        Failure::Other(msg) => (1, msg),
    };
    eprintln!("adls: {}", one_line(&text));
    ExitCode::from(status)
}

/// The error and the causes below its own source (which its `Display` already
/// shows), e.g. `… client error (Connect): tcp connect error: Connection refused`.
fn with_causes(e: &adls_rest::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e).and_then(|s| s.source());
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.contains(&c_text) {
            text.push_str(": ");
            text.push_str(&c_text);
        }
        cause = c.source();
    }
    text
}

/// Collapses every run of whitespace (service messages hold newlines) to one space.
fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Logging to stderr when `RUST_LOG` is set; none otherwise.
fn init_logging() {
    if std::env::var_os("RUST_LOG").is_none() {
        return;
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn run(invocation: Invocation) -> Result<(), Failure> {
    let Invocation {
        connection_string,
        dialect,
        auth,
        account,
        command,
    } = invocation;
    let from_env;
    let from_account;
    let connection_string = match (&connection_string, &account) {
        (Some(s), _) => s.expose_secret(),
        (None, Some(name)) => {
            from_account = format!("AccountName={name}");
            &from_account
        }
        (None, None) => match std::env::var(ENV_CONNECTION_STRING) {
            Ok(s) if !s.trim().is_empty() => {
                from_env = s;
                &from_env
            }
            _ => {
                return Err(Failure::Usage(format!(
                    "no connection string: set {ENV_CONNECTION_STRING} or pass --connection-string (or --account with --auth default|cli)"
                )))
            }
        },
    };
    let info = adls_rest::connection_string::parse(connection_string)?;
    let credential = match auth {
        Auth::ConnectionString => info.credential,
        Auth::Key => match info.credential {
            c @ Credential::SharedKey(_) => c,
            _ => {
                return Err(Failure::Usage(
                    "--auth key: the connection string has no AccountKey".into(),
                ))
            }
        },
        Auth::Sas => match info.credential {
            c @ Credential::Sas(_) => c,
            _ => match std::env::var("AZURE_STORAGE_SAS_TOKEN") {
                Ok(t) if !t.trim().is_empty() => Credential::sas(&t)?,
                _ => {
                    return Err(Failure::Usage(
                        "--auth sas: the connection string has no SharedAccessSignature and AZURE_STORAGE_SAS_TOKEN is not set".into(),
                    ))
                }
            },
        },
        Auth::Default => Credential::bearer(Arc::new(DefaultAzureCredential::new())),
        Auth::Cli => Credential::bearer(Arc::new(AzureCliCredential::new())),
    };
    let mut builder = Client::builder(info.account, credential).dialect(info.dialect);
    if let Some(d) = dialect {
        builder = builder.dialect(d);
    }
    let client = builder.build()?;
    match command {
        Command::Help => Ok(()),
        Command::FsCreate { fs } => Ok(client.filesystem(&fs)?.create().await?),
        Command::FsRm { fs } => Ok(client.filesystem(&fs)?.delete().await?),
        Command::Put(loc) => put(&file(&client, &loc)?).await,
        Command::Append(loc) => append(&file(&client, &loc)?).await,
        Command::Cat(loc) => cat(&file(&client, &loc)?, &loc).await,
        Command::Stat(loc) => stat(&file(&client, &loc)?).await,
        Command::Rm(loc) => Ok(file(&client, &loc)?.delete().await?),
        Command::Ls { fs, dir, recursive } => ls(&client, &fs, dir, recursive).await,
    }
}

fn file(client: &Client, loc: &Location) -> Result<File, Failure> {
    Ok(client.filesystem(&loc.fs)?.file(&loc.path)?)
}

/// stdin → create (overwrite), appends, flush with close.
async fn put(file: &File) -> Result<(), Failure> {
    file.create(&CreateOptions {
        mode: CreateMode::Overwrite,
        ..Default::default()
    })
    .await?;
    upload_stdin(file, 0).await
}

/// stdin → appends at the file's current length, flush with close.
async fn append(file: &File) -> Result<(), Failure> {
    let start = file.properties().await?.content_length;
    upload_stdin(file, start).await
}

/// Appends stdin from `start` in chunks of [`CHUNK`], reading the next chunk
/// while the previous one is sent (at most two chunks in memory), then flushes.
async fn upload_stdin(file: &File, start: u64) -> Result<(), Failure> {
    let mut stdin = tokio::io::stdin();
    let checksums = Checksums {
        md5: true,
        crc64: false,
    };
    let mut position = start;
    let mut chunk = read_chunk(&mut stdin).await?;
    while !chunk.is_empty() {
        let len = chunk.len() as u64;
        let (sent, next) = tokio::join!(
            file.append(position, chunk, checksums),
            read_chunk(&mut stdin)
        );
        sent?;
        position += len;
        chunk = next?;
    }
    file.flush(
        position,
        &FlushOptions {
            close: true,
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

/// Reads up to [`CHUNK`] bytes, fewer only at the end of the input.
async fn read_chunk<R: AsyncRead + Unpin>(input: &mut R) -> Result<Bytes, Failure> {
    let mut buf = vec![0u8; CHUNK];
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]).await {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Failure::Io("cannot read stdin", e)),
        }
    }
    buf.truncate(filled);
    Ok(Bytes::from(buf))
}

/// The file → stdout in ranges of [`CHUNK`], fetching the next range while the
/// previous one is written. The length comes from a properties call; when
/// more than one range was read, a second properties call checks the etag so
/// that a file replaced mid-way is reported instead of printed mixed.
async fn cat(file: &File, loc: &Location) -> Result<(), Failure> {
    let before = file.properties().await?;
    if before.is_directory {
        return Err(Failure::Other(format!("`{loc}` is a directory")));
    }
    let length = before.content_length;
    let fetch = |start: u64| {
        file.read_range(ByteRange {
            start,
            len: Some((length - start).min(CHUNK as u64)),
        })
    };
    let mut stdout = tokio::io::stdout();
    let write_err = |e| Failure::Io("cannot write to stdout", e);
    let mut ranges = 0u64;
    let mut position = 0u64;
    let mut current = Bytes::new();
    while position < length {
        let (written, next) = tokio::join!(stdout.write_all(&current), fetch(position));
        written.map_err(write_err)?;
        current = next?;
        ranges += 1;
        if current.is_empty() {
            return Err(Failure::Other(format!(
                "`{loc}` ended at byte {position}, before the {length} bytes its properties announced; it changed while it was being read"
            )));
        }
        position += current.len() as u64;
    }
    stdout.write_all(&current).await.map_err(write_err)?;
    stdout.flush().await.map_err(write_err)?;
    if ranges > 1 {
        let after = file.properties().await?;
        if after.etag != before.etag {
            return Err(Failure::Other(format!(
                "`{loc}` changed while it was being read (etag {} became {}); the output may mix both versions",
                before.etag, after.etag
            )));
        }
    }
    Ok(())
}

/// Properties as `key: value` lines.
async fn stat(file: &File) -> Result<(), Failure> {
    let props = file.properties().await?;
    let mut out = String::new();
    let mut line = |k: &str, v: &str| {
        out.push_str(k);
        out.push_str(": ");
        out.push_str(v);
        out.push('\n');
    };
    line("length", &props.content_length.to_string());
    line("etag", &props.etag);
    if let Some(t) = props.last_modified {
        line("last-modified", &adls_rest::ops::format_http_date(t));
    }
    if let Some(ct) = &props.content_type {
        line("content-type", ct);
    }
    line(
        "type",
        if props.is_directory {
            "directory"
        } else {
            "file"
        },
    );
    for (name, value) in props.metadata.iter() {
        line(&format!("metadata.{name}"), value);
    }
    write_stdout(out.as_bytes()).await
}

/// One full path per line, directories with a trailing `/`, page by page.
async fn ls(
    client: &Client,
    fs: &str,
    dir: Option<String>,
    recursive: bool,
) -> Result<(), Failure> {
    let fs = client.filesystem(fs)?;
    let options = ListOptions {
        directory: dir,
        recursive,
        page_size: None,
    };
    let mut continuation: Option<String> = None;
    loop {
        let page = fs.list_page(&options, continuation.as_deref()).await?;
        let mut out = String::new();
        for item in &page.items {
            out.push_str(&item.name);
            if item.is_directory {
                out.push('/');
            }
            out.push('\n');
        }
        write_stdout(out.as_bytes()).await?;
        match page.continuation {
            Some(c) => continuation = Some(c),
            None => return Ok(()),
        }
    }
}

async fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    let mut stdout = tokio::io::stdout();
    stdout
        .write_all(bytes)
        .await
        .map_err(|e| Failure::Io("cannot write to stdout", e))?;
    stdout
        .flush()
        .await
        .map_err(|e| Failure::Io("cannot write to stdout", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_collapses_newlines() {
        assert_eq!(
            one_line("storage service error: the service answered 404 (code BlobNotFound, request id r): The specified blob does not exist.\nRequestId:r\r\nTime:2024\n"),
            "storage service error: the service answered 404 (code BlobNotFound, request id r): The specified blob does not exist. RequestId:r Time:2024"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn chunks_are_full_until_the_end() {
        let data: Vec<u8> = (0..CHUNK * 2 + 5).map(|i| (i % 251) as u8).collect();
        // A reader that hands out small pieces, like a pipe.
        let mut reader = tokio::io::BufReader::with_capacity(1000, &data[..]);
        let mut total = Vec::new();
        let mut sizes = Vec::new();
        loop {
            let Ok(chunk) = read_chunk(&mut reader).await else {
                panic!("reading from memory cannot fail");
            };
            if chunk.is_empty() {
                break;
            }
            sizes.push(chunk.len());
            total.extend_from_slice(&chunk);
        }
        assert_eq!(sizes, [CHUNK, CHUNK, 5]);
        assert_eq!(total, data);
    }
}
