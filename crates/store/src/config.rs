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
    /// How an environment variable's text becomes its value.
    pub kind: ValueKind,
}

/// The type of a key's value, as an environment variable's text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Text,
    /// Text that may be left out: unset is `None`, never `""`.
    OptionalText,
    Integer,
    Boolean,
}

/// A type a configuration key can have.
pub trait ConfigValue {
    const KIND: ValueKind;
    /// The value as the program should see it: an optional text set to `""` (as files
    /// written by older versions of `citybooks init` have it) is unset.
    fn normalise(&mut self) {}
}

impl ConfigValue for String {
    const KIND: ValueKind = ValueKind::Text;
}

impl ConfigValue for Option<String> {
    const KIND: ValueKind = ValueKind::OptionalText;
    fn normalise(&mut self) {
        if self.as_deref().is_some_and(|s| s.trim().is_empty()) {
            *self = None;
        }
    }
}

impl ConfigValue for bool {
    const KIND: ValueKind = ValueKind::Boolean;
}

macro_rules! integer_values {
    ($($t:ty),*) => {
        $(impl ConfigValue for $t {
            const KIND: ValueKind = ValueKind::Integer;
        })*
    };
}
integer_values!(u16, u32, u64, usize);

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
            /// Each value as the program should see it ([`ConfigValue::normalise`]).
            fn normalise(&mut self) {
                $(ConfigValue::normalise(&mut self.$field);)*
            }

            /// The section's name in `citybooks.toml`.
            pub const SECTION: &'static str = $section;
            /// What the section is for.
            pub const DOC: &'static str = concat!($($section_doc, "\n"),*);
            /// The section's keys, in the order of the file.
            pub const KEYS: &'static [Key] = &[
                $(Key {
                    name: stringify!($field),
                    doc: concat!($($doc, "\n"),*),
                    kind: <$ty as ConfigValue>::KIND,
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
        /// `postgres://user@host:port/db` or `redshift://user@cluster-host:5439/db`; unset:
        /// no publishing. No password in it: see `password`.
        target: Option<String> = None,
        /// The schema the tables are published into.
        schema: String = "report".into(),
        /// Redshift: the IAM role its `COPY` reads the store's Parquet files with.
        iam_role: Option<String> = None,
        /// The target's password when neither PGPASSWORD nor ~/.pgpass has it (better:
        /// CITYBOOKS_PUBLISH_PASSWORD, so it is not in the file).
        password: Option<String> = None,
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
        /// Unset (a query fails with a clear error while the scheduler cannot be reached)
        /// or "embedded" (it runs in this process instead, with a warning).
        fallback: Option<String> = None,
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
        app_token: Option<String> = None,
        /// Rows per page (`$limit`; the portal's 2.0 API allows up to 50,000).
        page_rows: u64 = 50_000,
        /// Longest one request may take, in seconds.
        timeout_secs: u64 = 120,
        /// Attempts per page before the fetch stops (it resumes from that page next time).
        attempts: u32 = 5,
        /// First wait between attempts, in milliseconds; doubles each time.
        backoff_ms: u64 = 2_000,
        /// When `citybooks serve` refreshes the current fiscal year: a cron expression in
        /// the server's local time ("0 6 * * MON": Mondays at 06:00); unset: never.
        schedule: Option<String> = None,
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

impl ConfigValue for PasswordAuth {
    const KIND: ValueKind = ValueKind::Text;
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
        tls_cert: Option<String> = None,
        /// TLS private key (PEM, PKCS#8 or RSA).
        tls_key: Option<String> = None,
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
        /// Memory the server may use to hold the columns queries read most, decoded (the
        /// dimensions whole; of report.transaction the fiscal year, keys, finance id and
        /// amount: about 36 bytes a row), so that queries of them need not decode
        /// Parquet; in MiB. Read again after each load (old and new are held together
        /// meanwhile). A table that does not fit is read from Parquet (logged). 0: hold
        /// nothing. The embedded engine only: a Ballista cluster's executors read Parquet.
        table_memory_mib: usize = 1024,
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
        /// If set, every /api request needs `Authorization: Bearer <token>`.
        token: Option<String> = None,
        /// Most rows `POST /api/sql` returns as JSON (downloads are not limited).
        row_limit: usize = 10_000,
        /// Longest a request's query may run, in seconds.
        timeout_secs: u64 = 60,
        /// Serve the dashboard from this folder (web/src of a checkout) instead of the copy
        /// built into the binary: for working on the dashboard without rebuilding.
        assets_dir: Option<String> = None,
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
        /// S3 endpoint for S3-compatible servers; unset means AWS (with the keys below, the `AWS_*` variables, or the EC2/ECS/EKS role).
        endpoint: Option<String> = None,
        /// S3 region; unset means the `AWS_REGION` variable or `us-east-1`.
        region: Option<String> = None,
        /// S3 access key; unset means the `AWS_ACCESS_KEY_ID` variable.
        access_key_id: Option<String> = None,
        /// S3 secret key; unset means the `AWS_SECRET_ACCESS_KEY` variable.
        secret_access_key: Option<String> = None,
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
/// The environment variable that overrides `key` of `section`: `CITYBOOKS_SQL_PORT`.
fn env_var(section: &str, key: &Key) -> String {
    format!(
        "{ENV_PREFIX}{}_{}",
        section.to_uppercase(),
        key.name.to_uppercase()
    )
}

/// An environment variable's text as the key's value; `None` unsets an optional key.
fn env_value(kind: ValueKind, raw: &str) -> Result<Option<toml::Value>, String> {
    Ok(Some(match kind {
        ValueKind::Text => toml::Value::String(raw.to_string()),
        ValueKind::OptionalText if raw.trim().is_empty() => return Ok(None),
        ValueKind::OptionalText => toml::Value::String(raw.to_string()),
        ValueKind::Integer => toml::Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| format!("{raw:?} is not an integer"))?,
        ),
        ValueKind::Boolean => {
            toml::Value::Boolean(match raw.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => return Err(format!("{raw:?} is not a boolean (true/false)")),
            })
        }
    }))
}

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
        let mut overrides: BTreeMap<String, String> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !NOT_CONFIG.contains(&k.as_str()))
            .collect();
        for (section, _, keys) in Self::SECTIONS {
            for key in keys {
                let var = env_var(section, key);
                let Some(raw) = overrides.remove(&var) else {
                    continue;
                };
                let table = value
                    .entry(section)
                    .or_insert_with(|| toml::Value::Table(Default::default()))
                    .as_table_mut()
                    .ok_or_else(|| parse_err(format!("[{section}] must be a table")))?;
                match env_value(key.kind, &raw).map_err(|message| ConfigError::Env {
                    var: var.clone(),
                    message,
                })? {
                    Some(v) => table.insert(key.name.to_string(), v),
                    // An empty variable unsets an optional key, whatever the file says.
                    None => table.remove(key.name),
                };
            }
        }
        if let Some((var, _)) = overrides.into_iter().next() {
            let known: Vec<String> = Self::SECTIONS
                .iter()
                .flat_map(|(section, _, keys)| keys.iter().map(|k| env_var(section, k)))
                .collect();
            return Err(ConfigError::Env {
                var,
                message: format!("not a configuration key; known: {}", known.join(", ")),
            });
        }
        let mut config = Config::deserialize(value).map_err(|e| parse_err(e.to_string()))?;
        config.normalise();
        config.check().map_err(parse_err)?;
        Ok(config.clamped())
    }

    /// Every optional key set to `""` becomes unset.
    fn normalise(&mut self) {
        self.store.normalise();
        self.load.normalise();
        self.sftp.normalise();
        self.sql.normalise();
        self.http.normalise();
        self.fetch.normalise();
        self.query.normalise();
        self.publish.normalise();
    }

    /// Refuses keys that make no sense together, naming them.
    fn check(&self) -> Result<(), String> {
        if self.sql.tls_cert.is_some() != self.sql.tls_key.is_some() {
            return Err("[sql] TLS needs both tls_cert and tls_key (or neither)".into());
        }
        Ok(())
    }

    /// The configuration with every value raised to the least that works: a load
    /// batch of at least 1,024 rows; at least one MiB, one second, one row, one attempt
    /// wherever a size, a time or a limit of 0 would stop the work; a fetch page within
    /// what the portal serves.
    fn clamped(mut self) -> Config {
        let load = &mut self.load;
        load.batch_rows = load.batch_rows.max(1024);
        load.target_file_mib = load.target_file_mib.max(1);
        load.lease_secs = load.lease_secs.max(1);
        self.sql.statement_timeout_secs = self.sql.statement_timeout_secs.max(1);
        self.http.row_limit = self.http.row_limit.max(1);
        self.http.timeout_secs = self.http.timeout_secs.max(1);
        self.sftp.idle_timeout_secs = self.sftp.idle_timeout_secs.max(1);
        self.sftp.max_auth_failures = self.sftp.max_auth_failures.max(1);
        self.sql.max_connections = self.sql.max_connections.max(1);
        let fetch = &mut self.fetch;
        // The portal returns at most 50,000 rows a page.
        fetch.page_rows = fetch.page_rows.clamp(1, 50_000);
        fetch.attempts = fetch.attempts.max(1);
        fetch.timeout_secs = fetch.timeout_secs.max(1);
        fetch.backoff_ms = fetch.backoff_ms.max(1);
        fetch.retry_max_secs = fetch.retry_max_secs.max(1);
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
                match defaults[section].get(key.name) {
                    Some(value) => out.push_str(&format!("{} = {value}\n", key.name)),
                    None => out.push_str(&format!("# {} = (unset)\n", key.name)),
                }
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
                let default = match defaults[section].get(key.name) {
                    None => "unset".to_string(),
                    Some(toml::Value::String(s)) if s.is_empty() => "empty".to_string(),
                    Some(toml::Value::String(s)) => format!("`{s}`"),
                    Some(other) => format!("`{other}`"),
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
            let table = defaults[section].as_table().expect("a section is a table");
            let mut in_toml: Vec<&str> = table.keys().map(String::as_str).collect();
            in_toml.sort_unstable();
            // Optional keys are unset by default, so TOML leaves them out.
            let mut sorted: Vec<&str> = keys
                .iter()
                .filter(|k| k.kind != ValueKind::OptionalText)
                .map(|k| k.name)
                .collect();
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
    fn optional_keys_are_unset_not_empty() {
        let c = parse("", &[]).unwrap();
        assert_eq!(
            (c.sql.tls_cert, c.http.token, c.fetch.schedule),
            (None, None, None)
        );
        // Files written by older versions say `key = ""`: that is unset too.
        let c = parse(
            "[publish]\ntarget = \"\"\n[http]\ntoken = \"t\"\n",
            &[("CITYBOOKS_FETCH_SCHEDULE", "0 6 * * MON")],
        )
        .unwrap();
        assert_eq!(c.publish.target, None);
        assert_eq!(c.http.token.as_deref(), Some("t"));
        assert_eq!(c.fetch.schedule.as_deref(), Some("0 6 * * MON"));
        // An empty variable unsets what the file set.
        let c = parse("[http]\ntoken = \"t\"\n", &[("CITYBOOKS_HTTP_TOKEN", "")]).unwrap();
        assert_eq!(c.http.token, None);
        assert!(Config::commented_default().contains("# token = (unset)"));
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
