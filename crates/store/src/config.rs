//! `citybooks.toml`: every key has a documented default, every key can be overridden by
//! an environment variable `CITYBOOKS_<SECTION>_<KEY>` (e.g. `CITYBOOKS_STORE_URL`), and
//! unknown keys — in the file or in such variables — are an error, so a typo never
//! passes silently.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One key of `citybooks.toml`, as its section declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The key's name in its section.
    pub name: &'static str,
    /// What it does: the field's documentation, one line per line of it.
    pub doc: &'static str,
}

/// Declares a section of `citybooks.toml` once: its struct (keys, types, docs), its
/// defaults, and [`Key`]s for the commented file `citybooks init` writes
/// ([`Config::commented_default`]) and the README's table ([`Config::markdown_table`]).
macro_rules! section {
    (
        $(#[doc = $section_doc:literal])*
        $name:ident in $section:literal {
            $(
                $(#[doc = $doc:literal])*
                $field:ident : $ty:ty = $default:expr,
            )*
        }
    ) => {
        $(#[doc = $section_doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            $(
                $(#[doc = $doc])*
                pub $field: $ty,
            )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    $($field: $default,)*
                }
            }
        }

        impl $name {
            /// The section's name in `citybooks.toml`.
            pub const SECTION: &'static str = $section;
            /// What the section is for.
            pub const DOC: &'static str = concat!($($section_doc, "\n"),*);
            /// The section's keys, in the order of the file.
            pub const KEYS: &'static [Key] = &[
                $(Key {
                    name: stringify!($field),
                    doc: concat!($($doc, "\n"),*),
                },)*
            ];
        }
    };
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub store: StoreConfig,
    pub load: LoadConfig,
    pub sftp: SftpConfig,
    pub sql: SqlConfig,
    pub http: HttpConfig,
    pub fetch: FetchConfig,
    pub query: QueryConfig,
    pub publish: PublishConfig,
}

section! {
    /// `[publish]`: feeding the star schema into a PostgreSQL or Amazon Redshift the city
    /// already runs (`citybooks publish`, and `citybooks serve` after every load).
    PublishConfig in "publish" {
        /// `postgres://user@host:port/db` or `redshift://user@cluster-host:5439/db`; empty:
        /// no publishing. No password in it: see `password`.
        target: String = String::new(),
        /// The schema the tables are published into.
        schema: String = "report".into(),
        /// Redshift: the IAM role its `COPY` reads the store's Parquet files with.
        iam_role: String = String::new(),
        /// The target's password when neither PGPASSWORD nor ~/.pgpass has it (better:
        /// CITYBOOKS_PUBLISH_PASSWORD, so it is not in the file).
        password: String = String::new(),
    }
}

section! {
    /// `[query]`: which engine answers queries (`citybooks query`, the SQL and HTTP
    /// servers).
    QueryConfig in "query" {
        /// "embedded" (DataFusion in this process) or "ballista" (a Ballista 55 cluster:
        /// `citybooks scheduler` + `citybooks executor`s, or the stock binaries).
        engine: String = "embedded".into(),
        /// The Ballista scheduler, `df://HOST:PORT`.
        scheduler: String = "df://localhost:50050".into(),
        /// "" (a query fails with a clear error while the scheduler cannot be reached) or
        /// "embedded" (it runs in this process instead, with a warning).
        fallback: String = String::new(),
    }
}

section! {
    /// `[fetch]`: downloading the ledger from the open-data portal (`citybooks fetch`) and
    /// the scheduled refresh of `citybooks serve`.
    FetchConfig in "fetch" {
        /// The Socrata portal's base URL (`citybooks fetch --portal` overrides it).
        portal: String = "https://data.sfgov.org".into(),
        /// The data set's identifier (Spending and Revenue: bpnb-jwfb).
        dataset: String = "bpnb-jwfb".into(),
        /// A Socrata app token, sent as X-App-Token (raises the portal's rate limits).
        app_token: String = String::new(),
        /// Rows per page (`$limit`; the portal's 2.0 API allows up to 50,000).
        page_rows: u64 = 50_000,
        /// Longest one request may take, in seconds.
        timeout_secs: u64 = 120,
        /// Attempts per page before the fetch stops (it resumes from that page next time).
        attempts: u32 = 5,
        /// First wait between attempts, in milliseconds; doubles each time.
        backoff_ms: u64 = 2_000,
        /// When `citybooks serve` refreshes the current fiscal year: a cron expression in
        /// the server's local time ("0 6 * * MON": Mondays at 06:00) or "" for never.
        schedule: String = String::new(),
        /// Longest wait between retries of a failed scheduled refresh, in seconds.
        retry_max_secs: u64 = 3_600,
    }
}

/// How SQL clients prove their password (`[sql] password_auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PasswordAuth {
    /// SCRAM-SHA-256: the password never crosses the wire (PostgreSQL's default).
    #[default]
    Scram,
    /// PostgreSQL's MD5 challenge, for older and Redshift-era drivers.
    Md5,
    /// The password itself, over TLS only.
    Cleartext,
}

impl std::fmt::Display for PasswordAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PasswordAuth::Scram => "scram",
            PasswordAuth::Md5 => "md5",
            PasswordAuth::Cleartext => "cleartext",
        })
    }
}

section! {
    /// `[sql]`: the PostgreSQL wire-protocol server of `citybooks serve`.
    SqlConfig in "sql" {
        /// Run the PostgreSQL wire protocol in `citybooks serve`.
        enabled: bool = true,
        /// Address to listen on (`citybooks demo`: 127.0.0.1 whatever this says).
        listen: String = "0.0.0.0".into(),
        /// TCP port, 5439 as Redshift's (`--sql-port` overrides it).
        port: u16 = 5439,
        /// TLS certificate chain (PEM); with `tls_key`, TLS is offered and a bad file stops
        /// the server. Relative to the project folder.
        tls_cert: String = String::new(),
        /// TLS private key (PEM, PKCS#8 or RSA).
        tls_key: String = String::new(),
        /// With TLS configured: refuse clients that do not use it.
        tls_required: bool = false,
        /// How clients prove their password: `scram` (SCRAM-SHA-256), `md5` (for drivers
        /// that know no SCRAM; an MD5 verifier is stored too) or `cleartext` (only with
        /// `tls_required`).
        password_auth: PasswordAuth = PasswordAuth::Scram,
        /// Longest a statement may run, in seconds (a client may lower it with
        /// `SET statement_timeout`).
        statement_timeout_secs: u64 = 300,
        /// Most connections at once.
        max_connections: usize = 64,
        /// Memory one query's operators may hold (hash tables, sorts, aggregate states),
        /// in MiB; past it, sorts and grouped aggregates spill, other queries fail with
        /// SQLSTATE 53200 / HTTP 507.
        query_memory_mib: usize = 1024,
        /// Memory all running queries may hold together, in MiB.
        server_memory_mib: usize = 4096,
        /// Disk one query may spill to, in MiB.
        query_spill_mib: usize = 8192,
        /// When the server's heap passes this (MiB), every running ad-hoc query is
        /// stopped (53200): the backstop for memory the pools do not see. 0: never.
        memory_stop_mib: usize = 6144,
        /// Ad-hoc queries (PostgreSQL clients, `POST /api/sql`) running at once; more wait
        /// for a slot. The dashboard's own requests do not wait behind them.
        max_concurrent_queries: usize = 8,
        /// Longest a query waits for a slot, in seconds.
        queue_timeout_secs: u64 = 60,
    }
}

section! {
    /// `[http]`: the HTTP API and web dashboard of `citybooks serve`.
    HttpConfig in "http" {
        /// Run the HTTP API and dashboard in `citybooks serve`.
        enabled: bool = true,
        /// Address to listen on (`citybooks demo`: 127.0.0.1 whatever this says).
        listen: String = "0.0.0.0".into(),
        /// TCP port (`--http-port` overrides it).
        port: u16 = 8080,
        /// If not empty, every /api request needs `Authorization: Bearer <token>`.
        token: String = String::new(),
        /// Most rows `POST /api/sql` returns as JSON (downloads are not limited).
        row_limit: usize = 10_000,
        /// Longest a request's query may run, in seconds.
        timeout_secs: u64 = 60,
        /// Serve the dashboard from this folder (web/src of a checkout) instead of the copy
        /// built into the binary: for working on the dashboard without rebuilding.
        assets_dir: String = String::new(),
        /// Keep the answers of the dashboard's routes (charts, explorer, years) until the
        /// next load.
        cache: bool = true,
    }
}

section! {
    /// `[sftp]`: the SFTP drop-box of `citybooks serve`.
    SftpConfig in "sftp" {
        /// Run the SFTP drop-box in `citybooks serve`.
        enabled: bool = true,
        /// Address to listen on (`citybooks demo`: 127.0.0.1 whatever this says).
        listen: String = "0.0.0.0".into(),
        /// TCP port (`--sftp-port` overrides it).
        port: u16 = 2222,
        /// Seconds without traffic after which a session is closed; parts of unfinished
        /// uploads (a killed server's) older than this are removed from a local store.
        idle_timeout_secs: u64 = 600,
        /// Failed authentications from one client address before it is banned.
        max_auth_failures: u32 = 5,
        /// How long a ban lasts, in seconds.
        ban_secs: u64 = 300,
        /// The audit log (JSON lines), relative to the project folder.
        audit_log: String = "audit.jsonl".into(),
        /// Largest file one upload may write, in MiB.
        max_file_mib: u64 = 4096,
        /// Most a user's home may hold, in MiB.
        quota_mib: u64 = 51200,
        /// Most SFTP sessions one user may have open at once.
        max_sessions_per_user: u32 = 8,
        /// On SIGINT/SIGTERM, seconds to let open sessions finish their uploads.
        shutdown_grace_secs: u64 = 30,
    }
}

section! {
    /// `[store]`: where raw files and the warehouse live.
    StoreConfig in "store" {
        /// A folder (relative to the project folder, or absolute) or `s3://bucket/prefix`.
        url: String = "store".into(),
        /// S3 endpoint for S3-compatible servers; empty means AWS.
        endpoint: String = String::new(),
        /// S3 region; empty means the `AWS_REGION` variable or `us-east-1`.
        region: String = String::new(),
        /// S3 access key; empty means the `AWS_ACCESS_KEY_ID` variable.
        access_key_id: String = String::new(),
        /// S3 secret key; empty means the `AWS_SECRET_ACCESS_KEY` variable.
        secret_access_key: String = String::new(),
        /// Allow plain HTTP to the endpoint (local S3-compatible servers).
        allow_http: bool = false,
    }
}

section! {
    /// `[load]`: how the loader works.
    LoadConfig in "load" {
        /// Rows per Arrow batch handed to the Delta writer; bounds the loader's memory.
        batch_rows: usize = 65_536,
        /// Target size of one Parquet file of the fact table, in MiB.
        target_file_mib: u64 = 128,
        /// The writer lease: loads on one store (from any process or host) take turns;
        /// a crashed writer's lease runs out after this many seconds.
        lease_secs: u64 = 30,
        /// A load that would remove more than this share (%) of a fiscal year's rows or
        /// of its gross amount is held, not committed (`citybooks release`). 100: never.
        max_shrink_percent: u32 = 20,
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

/// The prefix of every configuration variable.
pub const ENV_PREFIX: &str = "CITYBOOKS_";
/// `CITYBOOKS_*` variables that are not configuration keys.
const NOT_CONFIG: &[&str] = &["CITYBOOKS_PROJECT", "CITYBOOKS_FAILPOINT", "CITYBOOKS_LOG"];

impl Config {
    /// Parses a configuration file's text, then applies `vars` (normally the process
    /// environment) as overrides.
    pub fn parse(
        file: &Path,
        text: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let parse_err = |message: String| ConfigError::Parse {
            file: file.display().to_string(),
            message,
        };
        let mut value: toml::Table = toml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        // The defaults tell which keys exist and their types.
        let defaults = Self::default_values();
        let mut overrides: BTreeMap<String, String> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !NOT_CONFIG.contains(&k.as_str()))
            .collect();
        for (section, keys) in &defaults {
            let Some(keys) = keys.as_table() else {
                continue;
            };
            for (key, default) in keys {
                let var = format!(
                    "{ENV_PREFIX}{}_{}",
                    section.to_uppercase(),
                    key.to_uppercase()
                );
                let Some(raw) = overrides.remove(&var) else {
                    continue;
                };
                let typed = match default {
                    toml::Value::String(_) => toml::Value::String(raw),
                    toml::Value::Integer(_) => {
                        toml::Value::Integer(raw.trim().parse().map_err(|_| ConfigError::Env {
                            var: var.clone(),
                            message: format!("{raw:?} is not an integer"),
                        })?)
                    }
                    toml::Value::Boolean(_) => {
                        toml::Value::Boolean(match raw.trim().to_ascii_lowercase().as_str() {
                            "1" | "true" | "yes" | "on" => true,
                            "0" | "false" | "no" | "off" => false,
                            _ => {
                                return Err(ConfigError::Env {
                                    var,
                                    message: format!("{raw:?} is not a boolean (true/false)"),
                                })
                            }
                        })
                    }
                    other => other.clone(),
                };
                value
                    .entry(section.clone())
                    .or_insert_with(|| toml::Value::Table(Default::default()))
                    .as_table_mut()
                    .ok_or_else(|| parse_err(format!("[{section}] must be a table")))?
                    .insert(key.clone(), typed);
            }
        }
        if let Some((var, _)) = overrides.into_iter().next() {
            let known: Vec<String> = defaults
                .iter()
                .flat_map(|(s, keys)| {
                    keys.as_table().into_iter().flat_map(move |t| {
                        t.keys().map(move |k| {
                            format!("{ENV_PREFIX}{}_{}", s.to_uppercase(), k.to_uppercase())
                        })
                    })
                })
                .collect();
            return Err(ConfigError::Env {
                var,
                message: format!("not a configuration key; known: {}", known.join(", ")),
            });
        }
        let config = Config::deserialize(value).map_err(|e| parse_err(e.to_string()))?;
        config.check().map_err(parse_err)?;
        Ok(config.clamped())
    }

    /// Refuses keys that make no sense together, naming them.
    fn check(&self) -> Result<(), String> {
        if self.sql.tls_cert.is_empty() != self.sql.tls_key.is_empty() {
            return Err("[sql] TLS needs both tls_cert and tls_key (or neither)".into());
        }
        Ok(())
    }

    /// The configuration with every value raised to the least that works: a load
    /// batch of at least 1,024 rows; at least one MiB, one second, one row wherever a
    /// size, a time or a limit of 0 would stop the work.
    fn clamped(mut self) -> Config {
        let load = &mut self.load;
        load.batch_rows = load.batch_rows.max(1024);
        load.target_file_mib = load.target_file_mib.max(1);
        load.lease_secs = load.lease_secs.max(1);
        self.sql.statement_timeout_secs = self.sql.statement_timeout_secs.max(1);
        self.http.row_limit = self.http.row_limit.max(1);
        self.http.timeout_secs = self.http.timeout_secs.max(1);
        self.sftp.idle_timeout_secs = self.sftp.idle_timeout_secs.max(1);
        self
    }

    /// Every section in the order of the file: its name, what it is for, its keys.
    pub const SECTIONS: [(&'static str, &'static str, &'static [Key]); 8] = [
        (StoreConfig::SECTION, StoreConfig::DOC, StoreConfig::KEYS),
        (LoadConfig::SECTION, LoadConfig::DOC, LoadConfig::KEYS),
        (SftpConfig::SECTION, SftpConfig::DOC, SftpConfig::KEYS),
        (SqlConfig::SECTION, SqlConfig::DOC, SqlConfig::KEYS),
        (HttpConfig::SECTION, HttpConfig::DOC, HttpConfig::KEYS),
        (FetchConfig::SECTION, FetchConfig::DOC, FetchConfig::KEYS),
        (QueryConfig::SECTION, QueryConfig::DOC, QueryConfig::KEYS),
        (
            PublishConfig::SECTION,
            PublishConfig::DOC,
            PublishConfig::KEYS,
        ),
    ];

    /// Each key's default as TOML writes it (`"store"`, `2222`, `true`), by section and
    /// key.
    fn default_values() -> toml::Table {
        toml::Table::try_from(Config::default()).expect("the defaults are TOML")
    }

    /// The commented file `citybooks init` writes: every section and key with its
    /// documentation and default, from the one declaration of each section.
    pub fn commented_default() -> String {
        let defaults = Self::default_values();
        let mut out = String::from(
            "# citybooks project configuration: every key, with its default.\n\
             # Every key can be overridden by an environment variable CITYBOOKS_<SECTION>_<KEY>,\n\
             # e.g. CITYBOOKS_STORE_URL=s3://bucket/prefix. Unknown keys are an error.\n",
        );
        let comment = |out: &mut String, doc: &str| {
            for line in doc.lines() {
                out.push('#');
                out.push_str(line);
                out.push('\n');
            }
        };
        for (section, doc, keys) in Self::SECTIONS {
            out.push('\n');
            comment(&mut out, doc);
            out.push_str(&format!("[{section}]\n"));
            for key in keys {
                comment(&mut out, key.doc);
                out.push_str(&format!("{} = {}\n", key.name, defaults[section][key.name]));
            }
        }
        out
    }

    /// The README's table of every key: `section.key`, its default, what it does.
    pub fn markdown_table() -> String {
        let defaults = Self::default_values();
        let mut out = String::from("| key | default | meaning |\n| --- | --- | --- |\n");
        for (section, _, keys) in Self::SECTIONS {
            for key in keys {
                let default = match &defaults[section][key.name] {
                    toml::Value::String(s) if s.is_empty() => "empty".to_string(),
                    toml::Value::String(s) => format!("`{s}`"),
                    other => format!("`{other}`"),
                };
                let meaning = key
                    .doc
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .replace('|', "\\|");
                out.push_str(&format!(
                    "| `{section}.{}` | {default} | {meaning} |\n",
                    key.name
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::parse(Path::new("citybooks.toml"), text, vars)
    }

    #[test]
    fn the_commented_default_parses_to_the_defaults() {
        assert_eq!(
            parse(&Config::commented_default(), &[]).unwrap(),
            Config::default()
        );
        assert_eq!(parse("", &[]).unwrap(), Config::default());
    }

    #[test]
    fn every_section_and_key_is_declared_once_with_its_documentation() {
        let defaults = Config::default_values();
        let declared: Vec<&str> = Config::SECTIONS.iter().map(|(s, _, _)| *s).collect();
        let mut sections: Vec<&str> = defaults.keys().map(String::as_str).collect();
        sections.sort_unstable();
        let mut sorted = declared.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, sections, "Config::SECTIONS lists every section");
        for (section, doc, keys) in Config::SECTIONS {
            assert!(!doc.trim().is_empty(), "[{section}] has no documentation");
            let names: Vec<&str> = keys.iter().map(|k| k.name).collect();
            let table = defaults[section].as_table().expect("a section is a table");
            let mut in_toml: Vec<&str> = table.keys().map(String::as_str).collect();
            in_toml.sort_unstable();
            let mut sorted = names.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, in_toml, "[{section}]");
            for key in keys {
                assert!(
                    !key.doc.trim().is_empty(),
                    "{section}.{} has no documentation",
                    key.name
                );
            }
        }
    }

    /// The README's configuration table is [`Config::markdown_table`], between its two
    /// markers. `BLESS_README=1 cargo test -p citybooks-store readme` writes it there.
    #[test]
    fn the_readme_table_of_keys_is_the_declared_one() {
        const START: &str =
            "<!-- config-table: made by Config::markdown_table (crates/store/src/config.rs) -->\n";
        const END: &str = "<!-- /config-table -->";
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
        let readme = std::fs::read_to_string(&path).unwrap();
        let (before, rest) = readme
            .split_once(START)
            .expect("README has the start marker");
        let (table, after) = rest.split_once(END).expect("README has the end marker");
        let expected = Config::markdown_table();
        if table != expected && std::env::var_os("BLESS_README").is_some() {
            std::fs::write(&path, format!("{before}{START}{expected}{END}{after}")).unwrap();
            return;
        }
        assert_eq!(
            table, expected,
            "README.md's configuration table differs from the declared keys: BLESS_README=1 cargo test -p citybooks-store readme"
        );
    }

    #[test]
    fn environment_overrides_keys_with_their_types() {
        let c = parse(
            "[store]\nurl = \"x\"\n",
            &[
                ("CITYBOOKS_STORE_URL", "s3://b/p"),
                ("CITYBOOKS_STORE_ALLOW_HTTP", "true"),
                ("CITYBOOKS_LOAD_BATCH_ROWS", "2000"),
                ("CITYBOOKS_PROJECT", "/elsewhere"),
                ("HOME", "/root"),
            ],
        )
        .unwrap();
        assert_eq!(c.store.url, "s3://b/p");
        assert!(c.store.allow_http);
        assert_eq!(c.load.batch_rows, 2000);
    }

    #[test]
    fn values_that_would_stop_the_work_are_raised_and_a_half_tls_pair_is_refused() {
        let c = parse(
            "[load]\nbatch_rows = 10\ntarget_file_mib = 0\nlease_secs = 0\n[http]\nrow_limit = 0\n",
            &[("CITYBOOKS_SFTP_IDLE_TIMEOUT_SECS", "0")],
        )
        .unwrap();
        assert_eq!(
            (c.load.batch_rows, c.load.target_file_mib, c.load.lease_secs),
            (1024, 1, 1)
        );
        assert_eq!((c.http.row_limit, c.sftp.idle_timeout_secs), (1, 1));
        let err = parse("[sql]\ntls_cert = \"server.crt\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("citybooks.toml") && err.contains("tls_cert and tls_key"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = parse("[store]\nurll = \"x\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("citybooks.toml") && err.contains("urll"),
            "{err}"
        );
        let err = parse("[stor]\n", &[]).unwrap_err().to_string();
        assert!(err.contains("stor"), "{err}");
        let err = parse("", &[("CITYBOOKS_STORE_URLL", "x")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("CITYBOOKS_STORE_URLL") && err.contains("CITYBOOKS_STORE_URL"),
            "{err}"
        );
        let err = parse("", &[("CITYBOOKS_LOAD_BATCH_ROWS", "many")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an integer"), "{err}");
    }
}
