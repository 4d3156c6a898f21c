//! The `adls` binary end to end: against Azurite (Blob dialect) and against the
//! in-repo DFS test server (`--dialect dfs`), with the same contract.
//!
//! The tests package does not depend on `adls-cli`, so the binary is built once
//! with `cargo build -p adls-cli` and run from `<target dir>/debug/adls`.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use adls_tests::dfs_server::{DfsServer, Options};
use adls_tests::{required_env, unique_name, AZURITE_ACCOUNT, AZURITE_KEY, ENV_AZURITE_HTTP};

/// A name with spaces, unicode and every character that needs care in a URL.
const AWKWARD: &str = "ünïcödé 名前 %+=&;,'!()*~.txt";

/// The `adls` binary, built on first use.
fn adls_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        adls_tests::cargo_build(&["--package", "adls-cli", "--bin", "adls"], "adls")
    })
}

/// What one run of `adls` did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    /// Asserts a failure with status 1 and exactly one line on stderr, and returns that line.
    fn one_line_failure(&self) -> &str {
        assert_eq!(self.code, Some(1), "expected exit status 1: {self:?}");
        assert!(
            self.stderr.ends_with('\n') && self.stderr.lines().count() == 1,
            "expected one line on stderr: {:?}",
            self.stderr
        );
        assert!(self.stderr.starts_with("adls: "), "{:?}", self.stderr);
        assert!(self.stdout.is_empty(), "stdout: {:?}", self.stdout);
        self.stderr.trim_end()
    }

    /// Everything printed, stdout and stderr.
    fn all_output(&self) -> String {
        format!("{}{}", String::from_utf8_lossy(&self.stdout), self.stderr)
    }
}

/// Runs `adls` with `args`, `stdin` as its input and `env` as its only
/// `AZURE_STORAGE_CONNECTION_STRING` (none when `None`), without `RUST_LOG`.
fn run_adls(env: Option<&str>, args: &[&str], stdin: &[u8]) -> Run {
    let mut cmd = Command::new(adls_binary());
    cmd.args(args)
        .env_remove("AZURE_STORAGE_CONNECTION_STRING")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(cs) = env {
        cmd.env("AZURE_STORAGE_CONNECTION_STRING", cs);
    }
    let mut child = cmd.spawn().expect("start adls");
    let mut input = child.stdin.take().expect("stdin is piped");
    let stdin = stdin.to_vec();
    // A separate thread, so a large input cannot deadlock against the outputs;
    // a child that exits early closes the pipe, which is not our failure.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let out = child.wait_with_output().expect("wait for adls");
    writer.join().expect("stdin writer");
    Run {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// Where the commands go and what that endpoint's answers look like.
#[derive(Clone)]
struct Target {
    connection_string: String,
    /// `--dialect ...` arguments, if any.
    dialect_args: Vec<&'static str>,
    dfs: bool,
}

impl Target {
    fn azurite() -> Target {
        let endpoint = required_env(ENV_AZURITE_HTTP);
        Target {
            connection_string: connection_string(&endpoint, AZURITE_KEY, false),
            dialect_args: Vec::new(),
            dfs: false,
        }
    }

    fn dfs_server(server: &DfsServer) -> Target {
        Target {
            connection_string: connection_string(&server.endpoint(), AZURITE_KEY, true),
            dialect_args: vec!["--dialect", "dfs"],
            dfs: true,
        }
    }

    /// The same endpoint with a different (valid base64) key.
    fn with_wrong_key(&self) -> (Target, String) {
        use base64::Engine as _;
        let key = base64::engine::general_purpose::STANDARD.encode([0x5au8; 64]);
        let mut t = self.clone();
        t.connection_string = t.connection_string.replace(AZURITE_KEY, &key);
        assert!(t.connection_string.contains(&key));
        (t, key)
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> Run {
        let mut all = self.dialect_args.clone();
        all.extend_from_slice(args);
        run_adls(Some(&self.connection_string), &all, stdin)
    }

    /// Runs a command that must succeed silently on stderr; returns stdout.
    fn ok(&self, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let run = self.run(args, stdin);
        assert!(
            run.code == Some(0) && run.stderr.is_empty(),
            "adls {args:?} failed: {run:?}"
        );
        run.stdout
    }

    fn stat(&self, location: &str) -> Vec<(String, String)> {
        let out = String::from_utf8(self.ok(&["stat", location], b"")).expect("UTF-8");
        out.lines()
            .map(|l| {
                let (k, v) = l
                    .split_once(": ")
                    .unwrap_or_else(|| panic!("stat line without `: `: {l:?}"));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    fn length(&self, location: &str) -> u64 {
        let stat = self.stat(location);
        let (_, v) = stat
            .iter()
            .find(|(k, _)| k == "length")
            .unwrap_or_else(|| panic!("no length in {stat:?}"));
        v.parse().expect("length is a number")
    }

    fn ls(&self, args: &[&str]) -> BTreeSet<String> {
        let out = String::from_utf8(self.ok(args, b"")).expect("UTF-8");
        assert!(out.is_empty() || out.ends_with('\n'), "{out:?}");
        let lines: Vec<String> = out.lines().map(str::to_string).collect();
        let set: BTreeSet<String> = lines.iter().cloned().collect();
        assert_eq!(set.len(), lines.len(), "duplicate lines: {lines:?}");
        set
    }

    fn not_found_code(&self) -> &'static str {
        if self.dfs {
            "PathNotFound"
        } else {
            "BlobNotFound"
        }
    }

    /// A fresh filesystem, created with `adls fs create`.
    fn new_filesystem(&self) -> String {
        let fs = unique_name("cli");
        self.ok(&["fs", "create", &fs], b"");
        fs
    }
}

fn connection_string(endpoint: &str, key: &str, with_dfs: bool) -> String {
    let mut s = format!(
        "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};BlobEndpoint={endpoint}"
    );
    if with_dfs {
        s.push_str(&format!(";DfsEndpoint={endpoint}"));
    }
    s
}

/// `n` reproducible pseudo-random bytes.
fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; n];
    fastrand::Rng::with_seed(seed).fill(&mut v);
    v
}

// ---------------------------------------------------------------------------
// The contract, run against each target
// ---------------------------------------------------------------------------

/// fs create (and its 409), put / overwrite / cat / stat of an awkward name, fs rm.
fn files_with_awkward_names(t: &Target) {
    let fs = t.new_filesystem();
    let again = t.run(&["fs", "create", &fs], b"");
    let line = again.one_line_failure();
    let exists = if t.dfs {
        "FilesystemAlreadyExists"
    } else {
        "ContainerAlreadyExists"
    };
    assert!(line.contains("409") && line.contains(exists), "{line}");

    let location = format!("{fs}/dir one/{AWKWARD}");
    let first = "first version, a little longer\n".repeat(3);
    t.ok(&["put", &location], first.as_bytes());
    assert_eq!(t.ok(&["cat", &location], b""), first.as_bytes());
    let stat = t.stat(&location);
    let keys: Vec<&str> = stat.iter().map(|(k, _)| k.as_str()).collect();
    for key in ["length", "etag", "last-modified", "type"] {
        assert!(keys.contains(&key), "{key} missing from {stat:?}");
    }
    assert!(
        stat.contains(&("length".into(), first.len().to_string())),
        "{stat:?}"
    );
    assert!(stat.contains(&("type".into(), "file".into())), "{stat:?}");

    // put replaces
    t.ok(&["put", &location], b"second\n");
    assert_eq!(t.ok(&["cat", &location], b""), b"second\n");
    assert_eq!(t.length(&location), 7);

    t.ok(&["fs", "rm", &fs], b"");
    let gone = t.run(&["ls", &fs], b"");
    let line = gone.one_line_failure();
    assert!(line.contains("404"), "{line}");
}

/// 10 MiB (three 4 MiB chunks, the last partial) up, down, and appended to.
fn large_input_crosses_chunk_boundaries(t: &Target) {
    let fs = t.new_filesystem();
    let location = format!("{fs}/big/{AWKWARD}");
    let data = random_bytes(10 * 1024 * 1024 + 123, 1);
    t.ok(&["put", &location], &data);
    assert_eq!(t.length(&location), data.len() as u64);
    let back = t.ok(&["cat", &location], b"");
    assert!(
        back == data,
        "cat gave {} bytes, not the {} put",
        back.len(),
        data.len()
    );

    let more = random_bytes(4 * 1024 * 1024 + 1, 2);
    t.ok(&["append", &location], &more);
    let mut expected = data;
    expected.extend_from_slice(&more);
    assert_eq!(t.length(&location), expected.len() as u64);
    let back = t.ok(&["cat", &location], b"");
    assert!(
        back == expected,
        "cat gave {} bytes, not the {} expected",
        back.len(),
        expected.len()
    );
    t.ok(&["fs", "rm", &fs], b"");
}

/// append starts at the current end; an empty put and an empty append work.
fn append_adds_at_the_end(t: &Target) {
    let fs = t.new_filesystem();
    let location = format!("{fs}/{AWKWARD}");
    t.ok(&["put", &location], b"");
    assert_eq!(t.length(&location), 0);
    assert_eq!(t.ok(&["cat", &location], b""), b"");
    t.ok(&["append", &location], b"hello ");
    t.ok(&["append", &location], b"world\n");
    t.ok(&["append", &location], b"");
    assert_eq!(t.ok(&["cat", &location], b""), b"hello world\n");
    assert_eq!(t.length(&location), 12);

    // appending to a file that does not exist is a 404, not a new file
    let missing = t.run(&["append", &format!("{fs}/missing")], b"data");
    let line = missing.one_line_failure();
    assert!(line.contains("404"), "{line}");
    t.ok(&["fs", "rm", &fs], b"");
}

/// ls prints full names exactly, directories with a trailing `/`, recursive and not.
fn ls_lists_names_exactly(t: &Target) {
    let fs = t.new_filesystem();
    let awkward = format!("dir/{AWKWARD}");
    for name in ["a.txt", "dir/b.txt", "dir/sub/c.txt", awkward.as_str()] {
        t.ok(&["put", &format!("{fs}/{name}")], name.as_bytes());
    }
    let set =
        |names: &[&str]| -> BTreeSet<String> { names.iter().map(|s| s.to_string()).collect() };

    assert_eq!(t.ls(&["ls", &fs]), set(&["a.txt", "dir/"]));
    assert_eq!(t.ls(&["ls", &format!("{fs}/")]), set(&["a.txt", "dir/"]));
    assert_eq!(
        t.ls(&["ls", &format!("{fs}/dir")]),
        set(&["dir/b.txt", &awkward, "dir/sub/"])
    );
    // Blob listings have no directory entries when recursive; DFS ones do.
    let mut everything = set(&["a.txt", "dir/b.txt", "dir/sub/c.txt", &awkward]);
    let mut under_dir = set(&["dir/b.txt", "dir/sub/c.txt", &awkward]);
    if t.dfs {
        everything.extend(set(&["dir/", "dir/sub/"]));
        under_dir.insert("dir/sub/".into());
    }
    assert_eq!(t.ls(&["ls", &fs, "--recursive"]), everything);
    assert_eq!(t.ls(&["ls", "-r", &format!("{fs}/dir/")]), under_dir);

    // every listed file reads back as its own name
    for name in t.ls(&["ls", &fs, "--recursive"]) {
        if !name.ends_with('/') {
            assert_eq!(
                t.ok(&["cat", &format!("{fs}/{name}")], b""),
                name.as_bytes()
            );
        }
    }
    t.ok(&["fs", "rm", &fs], b"");
}

/// After rm, cat fails with status 1 and one stderr line carrying 404, the code and a request id.
fn rm_then_cat_fails_on_one_line(t: &Target) {
    let fs = t.new_filesystem();
    let location = format!("{fs}/{AWKWARD}");
    t.ok(&["put", &location], b"short-lived");
    t.ok(&["rm", &location], b"");
    for command in ["cat", "stat", "rm"] {
        let run = t.run(&[command, &location], b"");
        let line = run.one_line_failure();
        assert!(
            line.contains("404") && line.contains(t.not_found_code()),
            "adls {command}: {line}"
        );
        if !t.dfs {
            assert!(line.contains("request id "), "adls {command}: {line}");
        }
    }
    t.ok(&["fs", "rm", &fs], b"");
}

/// A wrong key: status 1, one line with the 403, and no key anywhere in the output.
fn wrong_key_fails_without_printing_it(t: &Target) {
    let fs = t.new_filesystem();
    let location = format!("{fs}/x");
    t.ok(&["put", &location], b"x");
    let (wrong, key) = t.with_wrong_key();
    let secrets = [key.as_str(), AZURITE_KEY, &key[..20], &AZURITE_KEY[..20]];

    let mut runs = vec![
        wrong.run(&["cat", &location], b""),
        wrong.run(&["put", &location], b"y"),
        wrong.run(&["ls", &fs], b""),
    ];
    // the same through the option, with no environment variable
    let mut args = wrong.dialect_args.clone();
    args.extend([
        "--connection-string",
        &wrong.connection_string,
        "stat",
        &location,
    ]);
    runs.push(run_adls(None, &args, b""));
    for run in &runs {
        let line = run.one_line_failure();
        assert!(line.contains("403"), "{line}");
        for s in secrets {
            assert!(!run.all_output().contains(s), "a key was printed: {run:?}");
        }
    }

    // a key that is not base64: a configuration error that does not echo it
    let bad = "not//base64!!secretvalue";
    let run = run_adls(
        Some(&t.connection_string.replace(AZURITE_KEY, bad)),
        &["cat", &location],
        b"",
    );
    run.one_line_failure();
    assert!(!run.all_output().contains("secretvalue"), "{run:?}");

    // the file is untouched
    assert_eq!(t.ok(&["cat", &location], b""), b"x");
    t.ok(&["fs", "rm", &fs], b"");
}

// ---------------------------------------------------------------------------
// Azurite (Blob dialect, chosen from the loopback endpoint)
// ---------------------------------------------------------------------------

#[test]
fn azurite_files_with_awkward_names() {
    files_with_awkward_names(&Target::azurite());
}

#[test]
fn azurite_large_input_crosses_chunk_boundaries() {
    large_input_crosses_chunk_boundaries(&Target::azurite());
}

#[test]
fn azurite_append_adds_at_the_end() {
    append_adds_at_the_end(&Target::azurite());
}

#[test]
fn azurite_ls_lists_names_exactly() {
    ls_lists_names_exactly(&Target::azurite());
}

#[test]
fn azurite_rm_then_cat_fails_on_one_line() {
    rm_then_cat_fails_on_one_line(&Target::azurite());
}

#[test]
fn azurite_wrong_key_fails_without_printing_it() {
    wrong_key_fails_without_printing_it(&Target::azurite());
}

// ---------------------------------------------------------------------------
// The DFS dialect against the in-repo DFS test server
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn dfs_server_whole_contract() {
    // Pages of two entries, so `ls` follows continuation tokens.
    let server = DfsServer::start_with(Options {
        page_size: 2,
        ..Options::default()
    })
    .await;
    let t = Target::dfs_server(&server);
    tokio::task::spawn_blocking(move || {
        files_with_awkward_names(&t);
        large_input_crosses_chunk_boundaries(&t);
        append_adds_at_the_end(&t);
        ls_lists_names_exactly(&t);
        rm_then_cat_fails_on_one_line(&t);
        // Not `wrong_key_fails_without_printing_it`: this server checks the form
        // of a Shared Key header, not the signature (Azurite checks that).
    })
    .await
    .expect("the contract passed against the DFS test server");
    // every request carried the pinned version and a Shared Key signature
    for r in server.requests() {
        assert_eq!(r.header("x-ms-version"), Some(adls_rest::API_VERSION));
        assert!(r
            .header("authorization")
            .is_some_and(|a| a.starts_with("SharedKey devstoreaccount1:")));
    }
}

// ---------------------------------------------------------------------------
// Usage (no server needed)
// ---------------------------------------------------------------------------

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let help = run_adls(None, &["--help"], b"");
    assert_eq!(help.code, Some(0), "{help:?}");
    let text = String::from_utf8_lossy(&help.stdout);
    for word in [
        "Usage:",
        "fs create",
        "put",
        "append",
        "cat",
        "stat",
        "ls",
        "rm",
        "--recursive",
    ] {
        assert!(text.contains(word), "help lacks {word}: {text}");
    }

    let cs = "UseDevelopmentStorage=true";
    for args in [
        &[][..],
        &["frobnicate"],
        &["put"],
        &["put", "fsonly"],
        &["cat", "a/b", "c/d"],
        &["cat", "a/b", "--recursive"],
        &["--dialect", "adls", "cat", "a/b"],
        &["cat", "a/b", "--no-such-option"],
    ] {
        let run = run_adls(Some(cs), args, b"");
        assert_eq!(run.code, Some(2), "adls {args:?}: {run:?}");
        assert!(run.stderr.contains("Usage:"), "adls {args:?}: {run:?}");
        assert!(run.stdout.is_empty(), "adls {args:?}: {run:?}");
    }

    // no connection string at all
    let run = run_adls(None, &["cat", "a/b"], b"");
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("AZURE_STORAGE_CONNECTION_STRING"),
        "{run:?}"
    );
}
