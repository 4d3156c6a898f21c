//! Command-line parsing: a pure function from the arguments to an
//! [`Invocation`], so every rule is unit-tested without a server.
//!
//! Error messages never echo a value that could be a secret: an unknown
//! option is quoted only up to its `=`, and stray positional arguments are
//! counted, not quoted.

use adls_rest::secret::Secret;
use adls_rest::Dialect;

/// The help text (`adls --help`), also shown after a usage error.
pub const USAGE: &str = "\
adls: a command-line tool for Azure Data Lake Storage Gen2 and Blob storage

Usage:
  adls [OPTIONS] fs create FS              create a filesystem (container)
  adls [OPTIONS] fs rm FS                  delete a filesystem and everything in it
  adls [OPTIONS] put FS/PATH               write stdin to a file, replacing it
  adls [OPTIONS] append FS/PATH            append stdin at the end of an existing file
  adls [OPTIONS] cat FS/PATH               write a file to stdout
  adls [OPTIONS] stat FS/PATH              print length, etag, last-modified, content-type
                                           and metadata, one `key: value` per line
  adls [OPTIONS] ls FS[/DIR] [--recursive] list the paths under DIR, one full path per line;
                                           directories end in `/`
  adls [OPTIONS] rm FS/PATH                delete a file

Options:
  --connection-string S   Azure Storage connection string; default: the environment
                          variable AZURE_STORAGE_CONNECTION_STRING (prefer it: other
                          users can read command lines)
  --account NAME          a public-cloud account (https://NAME.dfs.core.windows.net),
                          instead of a connection string; use with --auth default|cli
  --auth MODE             key: the connection string's AccountKey; sas: its
                          SharedAccessSignature (or AZURE_STORAGE_SAS_TOKEN);
                          default: Entra ID (AZURE_TENANT_ID/AZURE_CLIENT_ID with
                          AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE, then
                          managed identity, then the Azure CLI); cli: `az` only.
                          Without --auth: whatever the connection string carries
  --dialect dfs|blob      REST API to speak; default: blob for 127.0.0.1 and localhost
                          endpoints (Azurite), dfs otherwise
  -r, --recursive         (ls) descend into subdirectories
  -h, --help              print this help
  --                      end of options (for paths that start with `-`)

FS is the part before the first `/`; paths are written unencoded.
Exit status: 0 on success, 1 when an operation fails (one line on stderr with
the HTTP status, error code and request id), 2 on a usage error.
Logging: RUST_LOG (e.g. RUST_LOG=adls_rest=debug) writes to stderr; off by default.
";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct Invocation {
    /// `--connection-string`, if given (else the environment variable is used).
    pub connection_string: Option<Secret>,
    /// `--dialect`, if given (else the connection string's endpoint decides).
    pub dialect: Option<Dialect>,
    /// `--auth`: how requests are authorized.
    pub auth: Auth,
    /// `--account NAME`: a public-cloud account, instead of a connection string.
    pub account: Option<String>,
    /// The command.
    pub command: Command,
}

/// A file inside a filesystem: `FS/PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The filesystem (container): the part before the first `/`.
    pub fs: String,
    /// The path inside it, unencoded, never empty.
    pub path: String,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.fs, self.path)
    }
}

/// One command.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// `--help`.
    Help,
    /// `fs create FS`.
    FsCreate {
        /// The filesystem.
        fs: String,
    },
    /// `fs rm FS`.
    FsRm {
        /// The filesystem.
        fs: String,
    },
    /// `put FS/PATH`.
    Put(Location),
    /// `append FS/PATH`.
    Append(Location),
    /// `cat FS/PATH`.
    Cat(Location),
    /// `stat FS/PATH`.
    Stat(Location),
    /// `rm FS/PATH`.
    Rm(Location),
    /// `ls FS[/DIR] [--recursive]`.
    Ls {
        /// The filesystem.
        fs: String,
        /// The directory to list; `None` for the filesystem's root.
        dir: Option<String>,
        /// Descend into subdirectories.
        recursive: bool,
    },
}

/// How `adls` authorizes its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Auth {
    /// Whatever the connection string carries (account key, SAS, or nothing).
    #[default]
    ConnectionString,
    /// The connection string's account key; an error if it has none.
    Key,
    /// The connection string's SAS, or `AZURE_STORAGE_SAS_TOKEN`.
    Sas,
    /// Entra ID: environment (client secret, workload identity), managed identity, Azure CLI.
    Default,
    /// Entra ID through `az account get-access-token`.
    Cli,
}

/// Parses the arguments (without the program name). `Err` holds a one-line
/// message for a usage error.
pub fn parse<I>(args: I) -> Result<Invocation, String>
where
    I: IntoIterator<Item = String>,
{
    let mut connection_string = None;
    let mut dialect = None;
    let mut auth = Auth::ConnectionString;
    let mut account = None;
    let mut recursive = false;
    let mut help = false;
    let mut positional = Vec::new();
    let mut options_done = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if options_done || arg == "-" || !arg.starts_with('-') {
            positional.push(arg);
            continue;
        }
        if arg == "--" {
            options_done = true;
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        let mut value = |what: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("`{name}` needs a value ({what})"))
        };
        match name {
            "-h" | "--help" => help = true,
            "-r" | "--recursive" => recursive = true,
            "--connection-string" => {
                connection_string = Some(Secret::new(value("a connection string")?));
            }
            "--dialect" => {
                let v = value("`dfs` or `blob`")?;
                dialect = Some(match v.as_str() {
                    "dfs" => Dialect::Dfs,
                    "blob" => Dialect::Blob,
                    _ => return Err(format!("`--dialect` must be `dfs` or `blob`, found `{v}`")),
                });
            }
            "--auth" => {
                let v = value("`key`, `sas`, `default` or `cli`")?;
                auth = match v.as_str() {
                    "key" => Auth::Key,
                    "sas" => Auth::Sas,
                    "default" => Auth::Default,
                    "cli" => Auth::Cli,
                    _ => {
                        return Err(format!(
                            "`--auth` must be `key`, `sas`, `default` or `cli`, found `{v}`"
                        ))
                    }
                };
            }
            "--account" => {
                let v = value("a storage account name")?;
                if !(3..=24).contains(&v.len())
                    || !v
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                {
                    return Err("`--account` must be 3-24 lowercase letters and digits".into());
                }
                account = Some(v);
            }
            _ => return Err(format!("unknown option `{name}`")),
        }
        if inline.is_some() && matches!(name, "-h" | "--help" | "-r" | "--recursive") {
            return Err(format!("`{name}` takes no value"));
        }
    }
    if help {
        return Ok(Invocation {
            connection_string,
            dialect,
            auth,
            account,
            command: Command::Help,
        });
    }
    let words: Vec<&str> = positional.iter().map(String::as_str).collect();
    let command = match words.as_slice() {
        [] => return Err("missing command".into()),
        ["fs", "create", rest @ ..] => Command::FsCreate {
            fs: filesystem("fs create", rest)?,
        },
        ["fs", "rm", rest @ ..] => Command::FsRm {
            fs: filesystem("fs rm", rest)?,
        },
        ["fs", ..] => return Err("`fs` takes a subcommand: `create` or `rm`".into()),
        ["put", rest @ ..] => Command::Put(location("put", rest)?),
        ["append", rest @ ..] => Command::Append(location("append", rest)?),
        ["cat", rest @ ..] => Command::Cat(location("cat", rest)?),
        ["stat", rest @ ..] => Command::Stat(location("stat", rest)?),
        ["rm", rest @ ..] => Command::Rm(location("rm", rest)?),
        ["ls", rest @ ..] => {
            let [arg] = rest else {
                return Err(arity("ls", "FS[/DIR]", rest.len()));
            };
            let (fs, dir) = match arg.split_once('/') {
                Some((fs, dir)) => (fs, dir.trim_matches('/')),
                None => (*arg, ""),
            };
            if fs.is_empty() {
                return Err(
                    "`ls` needs FS[/DIR]; the filesystem before the first `/` is empty".into(),
                );
            }
            Command::Ls {
                fs: fs.to_string(),
                dir: (!dir.is_empty()).then(|| dir.to_string()),
                recursive,
            }
        }
        [other, ..] => {
            // Quote the word only when it looks like a command, not like a secret.
            return Err(
                if other.len() <= 16 && other.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    format!("unknown command `{other}`")
                } else {
                    "unknown command".into()
                },
            );
        }
    };
    if recursive && !matches!(command, Command::Ls { .. }) {
        return Err("`--recursive` applies to `ls` only".into());
    }
    if account.is_some() && connection_string.is_some() {
        return Err("give `--account` or `--connection-string`, not both".into());
    }
    Ok(Invocation {
        connection_string,
        dialect,
        auth,
        account,
        command,
    })
}

fn arity(command: &str, expected: &str, found: usize) -> String {
    format!("`{command}` takes one argument, {expected}; found {found}")
}

fn filesystem(command: &str, rest: &[&str]) -> Result<String, String> {
    match rest {
        [fs] if !fs.is_empty() && !fs.contains('/') => Ok(fs.to_string()),
        [_] => Err(format!("`{command}` takes a filesystem name, without `/`")),
        _ => Err(arity(command, "FS", rest.len())),
    }
}

fn location(command: &str, rest: &[&str]) -> Result<Location, String> {
    let [arg] = rest else {
        return Err(arity(command, "FS/PATH", rest.len()));
    };
    match arg.split_once('/') {
        Some((fs, path)) if !fs.is_empty() && !path.trim_matches('/').is_empty() => Ok(Location {
            fs: fs.to_string(),
            path: path.to_string(),
        }),
        _ => Err(format!(
            "`{command}` needs FS/PATH: a filesystem, `/`, and a non-empty path"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Invocation, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    fn cmd(args: &[&str]) -> Command {
        p(args).expect("parses").command
    }

    #[test]
    fn auth_modes_and_account() {
        assert_eq!(
            p(&["cat", "fs1/x"]).expect("parses").auth,
            Auth::ConnectionString
        );
        for (v, a) in [
            ("key", Auth::Key),
            ("sas", Auth::Sas),
            ("default", Auth::Default),
            ("cli", Auth::Cli),
        ] {
            assert_eq!(p(&["--auth", v, "cat", "fs1/x"]).expect("parses").auth, a);
        }
        let inv = p(&["--auth=cli", "--account", "myacct", "ls", "fs1"]).expect("parses");
        assert_eq!(inv.account.as_deref(), Some("myacct"));
        assert!(p(&["--auth", "password", "cat", "fs1/x"]).is_err());
        assert!(p(&["--account", "Bad_Name", "cat", "fs1/x"]).is_err());
        assert!(p(&[
            "--account",
            "myacct",
            "--connection-string",
            "A=b",
            "cat",
            "fs1/x"
        ])
        .is_err());
    }

    fn loc(fs: &str, path: &str) -> Location {
        Location {
            fs: fs.into(),
            path: path.into(),
        }
    }

    #[test]
    fn commands() {
        assert_eq!(
            cmd(&["fs", "create", "logs"]),
            Command::FsCreate { fs: "logs".into() }
        );
        assert_eq!(
            cmd(&["fs", "rm", "logs"]),
            Command::FsRm { fs: "logs".into() }
        );
        assert_eq!(
            cmd(&["put", "logs/a/b.json"]),
            Command::Put(loc("logs", "a/b.json"))
        );
        assert_eq!(
            cmd(&["append", "logs/x"]),
            Command::Append(loc("logs", "x"))
        );
        assert_eq!(cmd(&["cat", "logs/x"]), Command::Cat(loc("logs", "x")));
        assert_eq!(cmd(&["stat", "logs/x"]), Command::Stat(loc("logs", "x")));
        assert_eq!(cmd(&["rm", "logs/x"]), Command::Rm(loc("logs", "x")));
        assert_eq!(cmd(&["--help"]), Command::Help);
        assert_eq!(cmd(&["cat", "-h"]), Command::Help);
    }

    #[test]
    fn paths_are_taken_verbatim_after_the_first_slash() {
        let name = "d ir/ünï 名 %+=&;,'!()*~.txt";
        assert_eq!(
            cmd(&["put", &format!("logs/{name}")]),
            Command::Put(loc("logs", name))
        );
        // A path that starts with `-` after `--`.
        assert_eq!(
            cmd(&["cat", "--", "logs/-x"]),
            Command::Cat(loc("logs", "-x"))
        );
        assert_eq!(
            cmd(&["--", "cat", "logs/-x"]),
            Command::Cat(loc("logs", "-x"))
        );
    }

    #[test]
    fn ls_forms() {
        let ls = |dir: Option<&str>, recursive| Command::Ls {
            fs: "logs".into(),
            dir: dir.map(Into::into),
            recursive,
        };
        assert_eq!(cmd(&["ls", "logs"]), ls(None, false));
        assert_eq!(cmd(&["ls", "logs/"]), ls(None, false));
        assert_eq!(cmd(&["ls", "logs/a/b/"]), ls(Some("a/b"), false));
        assert_eq!(cmd(&["ls", "logs", "--recursive"]), ls(None, true));
        assert_eq!(cmd(&["-r", "ls", "logs/a"]), ls(Some("a"), true));
    }

    #[test]
    fn global_options_anywhere() {
        let inv = p(&[
            "--dialect",
            "dfs",
            "cat",
            "fs1/x",
            "--connection-string=A=b;C=d",
        ])
        .expect("parses");
        assert_eq!(inv.dialect, Some(Dialect::Dfs));
        assert_eq!(
            inv.connection_string.as_ref().map(Secret::expose_secret),
            Some("A=b;C=d")
        );
        let inv = p(&["cat", "--dialect=blob", "fs1/x"]).expect("parses");
        assert_eq!(inv.dialect, Some(Dialect::Blob));
        assert_eq!(inv.connection_string, None);
    }

    #[test]
    fn usage_errors() {
        for args in [
            &[][..],
            &["frobnicate"],
            &["fs"],
            &["fs", "create"],
            &["fs", "create", "a/b"],
            &["fs", "create", "a", "b"],
            &["put"],
            &["put", "logs"],
            &["put", "logs/"],
            &["put", "/x"],
            &["cat", "logs/x", "logs/y"],
            &["ls"],
            &["ls", "/x"],
            &["cat", "logs/x", "--recursive"],
            &["cat", "logs/x", "--bogus"],
            &["cat", "logs/x", "--dialect"],
            &["cat", "logs/x", "--dialect", "adls"],
            &["cat", "logs/x", "--connection-string"],
            &["ls", "logs", "--recursive=yes"],
        ] {
            assert!(p(args).is_err(), "{args:?} should be a usage error");
        }
    }

    #[test]
    fn usage_errors_do_not_echo_values() {
        let secret = "AccountKey=c2VjcmV0c2VjcmV0";
        for args in [
            vec![
                "--conection-string=DefaultEndpointsProtocol=https;AccountKey=c2VjcmV0c2VjcmV0",
                "ls",
                "x",
            ],
            vec!["ls", "x", secret],
            vec![secret, "ls", "x"],
            vec!["cat", secret],
            vec!["fs", "create", secret, "x"],
        ] {
            let msg = p(&args).expect_err("usage error");
            assert!(!msg.contains("c2VjcmV0"), "{msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
    }

    #[test]
    fn debug_hides_the_connection_string() {
        let inv = p(&["--connection-string", "AccountKey=c2VjcmV0", "ls", "x"]).expect("parses");
        let dbg = format!("{inv:?}");
        assert!(!dbg.contains("c2VjcmV0"), "{dbg}");
    }
}
