//! `citybooks.toml`: every key has a documented default, every key can be overridden by
//! an environment variable `CITYBOOKS_<SECTION>_<KEY>` (e.g. `CITYBOOKS_STORE_URL`), and
//! unknown keys — in the file or in such variables — are an error, so a typo never
//! passes silently.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

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

/// `[publish]`: feeding the star schema into a PostgreSQL or Amazon Redshift the city
/// already runs (`citybooks publish`, and `citybooks serve` after every load).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// `postgres://user@host:port/db` or `redshift://user@cluster-host:5439/db`; empty:
    /// no publishing. No password in it: see `password`.
    pub target: String,
    /// The schema the tables are published into.
    pub schema: String,
    /// Redshift: the IAM role its `COPY` reads the store's Parquet files with.
    pub iam_role: String,
    /// The target's password when neither PGPASSWORD nor ~/.pgpass has it (better:
    /// CITYBOOKS_PUBLISH_PASSWORD, so it is not in the file).
    pub password: String,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            target: String::new(),
            schema: "report".into(),
            iam_role: String::new(),
            password: String::new(),
        }
    }
}

/// `[query]`: which engine answers queries (`citybooks query`, the SQL and HTTP
/// servers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// "embedded" (DataFusion in this process) or "ballista" (a Ballista 55 cluster:
    /// `citybooks scheduler` + `citybooks executor`s, or the stock binaries).
    pub engine: String,
    /// The Ballista scheduler, `df://HOST:PORT`.
    pub scheduler: String,
    /// "" (a query fails with a clear error while the scheduler cannot be reached) or
    /// "embedded" (it runs in this process instead, with a warning).
    pub fallback: String,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            engine: "embedded".into(),
            scheduler: "df://localhost:50050".into(),
            fallback: String::new(),
        }
    }
}

/// `[fetch]`: downloading the ledger from the open-data portal (`citybooks fetch`) and
/// the scheduled refresh of `citybooks serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchConfig {
    /// The Socrata portal's base URL.
    pub portal: String,
    /// The data set's identifier (Spending and Revenue: bpnb-jwfb).
    pub dataset: String,
    /// A Socrata app token, sent as X-App-Token (raises the portal's rate limits).
    pub app_token: String,
    /// Rows per page (`$limit`; the portal's 2.0 API allows up to 50,000).
    pub page_rows: u64,
    /// Longest one request may take, in seconds.
    pub timeout_secs: u64,
    /// Attempts per page before the fetch stops (it resumes from that page next time).
    pub attempts: u32,
    /// First wait between attempts, in milliseconds; doubles each time.
    pub backoff_ms: u64,
    /// When `citybooks serve` refreshes the current fiscal year: a cron expression in
    /// the server's local time ("0 6 * * MON": Mondays at 06:00) or "" for never.
    pub schedule: String,
    /// Longest wait between retries of a failed scheduled refresh, in seconds.
    pub retry_max_secs: u64,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            portal: "https://data.sfgov.org".into(),
            dataset: "bpnb-jwfb".into(),
            app_token: String::new(),
            page_rows: 50_000,
            timeout_secs: 120,
            attempts: 5,
            backoff_ms: 2_000,
            schedule: String::new(),
            retry_max_secs: 3_600,
        }
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

/// `[sql]`: the PostgreSQL wire-protocol server of `citybooks serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqlConfig {
    /// Run it at all.
    pub enabled: bool,
    /// Address to listen on.
    pub listen: String,
    /// TCP port (5439 is Redshift's).
    pub port: u16,
    /// TLS certificate chain (PEM); with `tls_key`, TLS is offered and a bad file stops
    /// the server. Relative to the project folder.
    pub tls_cert: String,
    /// TLS private key (PEM, PKCS#8 or RSA).
    pub tls_key: String,
    /// With TLS configured: refuse clients that do not use it.
    pub tls_required: bool,
    /// How clients prove their password: `scram` (SCRAM-SHA-256), `md5` (for drivers
    /// that know no SCRAM; an MD5 verifier is stored too) or `cleartext` (only with
    /// `tls_required`).
    pub password_auth: PasswordAuth,
    /// Longest a statement may run, in seconds (a client may lower it with
    /// `SET statement_timeout`).
    pub statement_timeout_secs: u64,
    /// Most connections at once.
    pub max_connections: usize,
    /// Memory one query's operators may hold (hash tables, sorts, aggregate states),
    /// in MiB; past it, sorts and grouped aggregates spill, other queries fail with
    /// SQLSTATE 53200 / HTTP 507.
    pub query_memory_mib: usize,
    /// Memory all running queries may hold together, in MiB.
    pub server_memory_mib: usize,
    /// Disk one query may spill to, in MiB.
    pub query_spill_mib: usize,
    /// When the server's heap passes this (MiB), every running ad-hoc query is
    /// stopped (53200): the backstop for memory the pools do not see. 0: never.
    pub memory_stop_mib: usize,
    /// Ad-hoc queries (PostgreSQL clients, `POST /api/sql`) running at once; more wait
    /// for a slot. The dashboard's own requests do not wait behind them.
    pub max_concurrent_queries: usize,
    /// Longest a query waits for a slot, in seconds.
    pub queue_timeout_secs: u64,
}

impl Default for SqlConfig {
    fn default() -> Self {
        SqlConfig {
            enabled: true,
            listen: "0.0.0.0".into(),
            port: 5439,
            tls_cert: String::new(),
            tls_key: String::new(),
            tls_required: false,
            password_auth: PasswordAuth::Scram,
            statement_timeout_secs: 300,
            max_connections: 64,
            query_memory_mib: 1024,
            server_memory_mib: 4096,
            query_spill_mib: 8192,
            memory_stop_mib: 6144,
            max_concurrent_queries: 8,
            queue_timeout_secs: 60,
        }
    }
}

/// `[http]`: the HTTP API and web dashboard of `citybooks serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Run it at all.
    pub enabled: bool,
    /// Address to listen on.
    pub listen: String,
    /// TCP port.
    pub port: u16,
    /// If not empty, every /api request needs `Authorization: Bearer <token>`.
    pub token: String,
    /// Most rows `POST /api/sql` returns as JSON (downloads are not limited).
    pub row_limit: usize,
    /// Longest a request's query may run, in seconds.
    pub timeout_secs: u64,
    /// Serve the dashboard from this folder (web/src of a checkout) instead of the copy
    /// built into the binary: for working on the dashboard without rebuilding.
    pub assets_dir: String,
    /// Keep the answers of the dashboard's routes (charts, explorer, years) until the
    /// next load.
    pub cache: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: "0.0.0.0".into(),
            port: 8080,
            token: String::new(),
            row_limit: 10_000,
            timeout_secs: 60,
            assets_dir: String::new(),
            cache: true,
        }
    }
}

/// `[sftp]`: the SFTP drop-box of `citybooks serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SftpConfig {
    /// Run it at all.
    pub enabled: bool,
    /// Address to listen on.
    pub listen: String,
    /// TCP port.
    pub port: u16,
    /// Seconds without traffic after which a session is closed; parts of unfinished
    /// uploads (a killed server's) older than this are removed from a local store.
    pub idle_timeout_secs: u64,
    /// Failed authentications from one client address before it is banned.
    pub max_auth_failures: u32,
    /// How long a ban lasts, in seconds.
    pub ban_secs: u64,
    /// The audit log (JSON lines), relative to the project folder.
    pub audit_log: String,
    /// Largest file one upload may write, in MiB.
    pub max_file_mib: u64,
    /// Most a user's home may hold, in MiB.
    pub quota_mib: u64,
    /// Most SFTP sessions one user may have open at once.
    pub max_sessions_per_user: u32,
    /// On SIGINT/SIGTERM, seconds to let open sessions finish their uploads.
    pub shutdown_grace_secs: u64,
}

impl Default for SftpConfig {
    fn default() -> Self {
        SftpConfig {
            enabled: true,
            listen: "0.0.0.0".into(),
            port: 2222,
            idle_timeout_secs: 600,
            max_auth_failures: 5,
            ban_secs: 300,
            audit_log: "audit.jsonl".into(),
            max_file_mib: 4096,
            quota_mib: 51200,
            max_sessions_per_user: 8,
            shutdown_grace_secs: 30,
        }
    }
}

/// `[store]`: where raw files and the warehouse live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// A folder (relative to the project folder, or absolute) or `s3://bucket/prefix`.
    pub url: String,
    /// S3 endpoint for S3-compatible servers; empty means AWS.
    pub endpoint: String,
    /// S3 region; empty means the `AWS_REGION` variable or `us-east-1`.
    pub region: String,
    /// S3 access key; empty means the `AWS_ACCESS_KEY_ID` variable.
    pub access_key_id: String,
    /// S3 secret key; empty means the `AWS_SECRET_ACCESS_KEY` variable.
    pub secret_access_key: String,
    /// Allow plain HTTP to the endpoint (local S3-compatible servers).
    pub allow_http: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "store".into(),
            endpoint: String::new(),
            region: String::new(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            allow_http: false,
        }
    }
}

/// `[load]`: how the loader works.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadConfig {
    /// Rows per Arrow batch handed to the Delta writer; bounds the loader's memory.
    pub batch_rows: usize,
    /// Target size of one Parquet file of the fact table, in MiB.
    pub target_file_mib: u64,
    /// The writer lease: loads on one store (from any process or host) take turns;
    /// a crashed writer's lease runs out after this many seconds.
    pub lease_secs: u64,
    /// A load that would remove more than this share (%) of a fiscal year's rows or
    /// of its gross amount is held, not committed (`citybooks release`). 100: never.
    pub max_shrink_percent: u32,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            batch_rows: 65_536,
            target_file_mib: 128,
            lease_secs: 30,
            max_shrink_percent: 20,
        }
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
        let defaults =
            toml::Table::try_from(Config::default()).map_err(|e| parse_err(e.to_string()))?;
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
        Config::deserialize(value).map_err(|e| parse_err(e.to_string()))
    }

    /// The commented file `citybooks init` writes.
    pub fn commented_default() -> String {
        let d = Config::default();
        format!(
            r#"# citybooks project configuration.
# Every key can be overridden by an environment variable CITYBOOKS_<SECTION>_<KEY>,
# e.g. CITYBOOKS_STORE_URL=s3://bucket/prefix. Unknown keys are an error.

[store]
# Where raw files and the warehouse (Delta Lake tables) live: a folder, relative to
# this file or absolute, or s3://bucket/prefix on AWS S3 or an S3-compatible server.
url = "{url}"
# For S3 only. Empty values fall back to the standard AWS variables
# (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
endpoint = ""
region = ""
access_key_id = ""
secret_access_key = ""
# Allow plain http:// endpoints (a local S3-compatible server).
allow_http = false

[load]
# Rows per batch handed to the Delta writer: bounds the loader's memory.
batch_rows = {batch_rows}
# Target size of one Parquet file of report.transaction, in MiB.
target_file_mib = {target}
# Loads on one store take turns, whichever process or host runs them (a writer lease in
# the store, renewed while a load runs); a crashed writer's lease runs out after this.
lease_secs = {lease}
# A load that would remove more than this share (%) of a fiscal year's rows or of its
# gross amount is held, nothing replaced, until `citybooks release LOAD_ID` (or
# `citybooks load --replace-years`). 100: never hold.
max_shrink_percent = {max_shrink}

[sftp]
# The SFTP drop-box of `citybooks serve`: users (citybooks user add) upload CSV files
# to their home raw/<user>/ in the store, and each .csv loads itself.
enabled = {sftp_enabled}
listen = "{listen}"
port = {port}
# Seconds without traffic after which a session is closed; parts of unfinished
# uploads (a killed server's) older than this are removed from a local store.
idle_timeout_secs = {idle}
# A client address with this many failed authentications is banned for ban_secs.
max_auth_failures = {fails}
ban_secs = {ban}
# Every login attempt and file operation, as JSON lines (relative to this folder).
audit_log = "{audit}"
# Limits: largest upload and most a user's home may hold (MiB), open sessions per user.
max_file_mib = {max_file}
quota_mib = {quota}
max_sessions_per_user = {sessions}
# On Ctrl-C / SIGTERM: seconds open sessions get to finish their uploads; uploads still
# open after that are discarded (never published half-written).
shutdown_grace_secs = {grace}

[sql]
# PostgreSQL wire protocol for psql and BI tools (read-only; users: citybooks sql-user).
enabled = {sql_enabled}
listen = "{sql_listen}"
port = {sql_port}
# TLS: both files (PEM) to offer it; a certificate that cannot be used stops the server.
tls_cert = ""
tls_key = ""
# With TLS: refuse clients that do not use it.
tls_required = {tls_required}
# Password method: "scram" (SCRAM-SHA-256), "md5" (for drivers without SCRAM; users
# added while it is set also get an MD5 verifier) or "cleartext" (needs tls_required).
password_auth = "{password_auth}"
# Longest a statement may run (a client may lower it with SET statement_timeout).
statement_timeout_secs = {sql_timeout}
max_connections = {sql_conns}
# Memory one query may hold (MiB; past it sorts and grouped aggregates spill to disk,
# other queries fail with SQLSTATE 53200), all queries together, and disk one query
# may spill to.
query_memory_mib = {query_memory}
server_memory_mib = {server_memory}
query_spill_mib = {query_spill}
# When the server's heap passes this (MiB), every running ad-hoc query is stopped:
# the backstop for memory the pools above do not see. 0: never.
memory_stop_mib = {memory_stop}
# Ad-hoc queries (SQL clients, POST /api/sql) running at once; more wait up to
# queue_timeout_secs for a slot. The dashboard's own requests never wait behind them.
max_concurrent_queries = {max_concurrent}
queue_timeout_secs = {queue_timeout}

[http]
# HTTP API (POST /api/sql, /health, /metrics) and the web dashboard.
enabled = {http_enabled}
listen = "{http_listen}"
port = {http_port}
# If set, every /api request needs the header `Authorization: Bearer <token>`.
token = ""
# Most rows POST /api/sql returns as JSON; longest a request's query may run (seconds).
row_limit = {row_limit}
timeout_secs = {http_timeout}
# Serve the dashboard from a folder (web/src of a checkout) instead of the built-in copy.
assets_dir = ""
# Keep the answers of the dashboard's charts and explorer until the next load.
cache = {http_cache}

[fetch]
# `citybooks fetch` downloads the ledger from this Socrata portal (DataSF by default).
portal = "{portal}"
dataset = "{dataset}"
# A Socrata app token (X-App-Token); also CITYBOOKS_FETCH_APP_TOKEN.
app_token = ""
# Rows per page, longest request (seconds), attempts per page and the first backoff (ms).
page_rows = {page_rows}
timeout_secs = {fetch_timeout}
attempts = {attempts}
backoff_ms = {backoff}
# citybooks serve refreshes the current fiscal year on this cron schedule (local time),
# e.g. "0 6 * * MON" for Mondays at 06:00; empty: never. A failed refresh is retried
# with backoff up to retry_max_secs apart while the previous warehouse stays live.
schedule = ""
retry_max_secs = {retry_max}

[query]
# Which engine answers queries: "embedded" (DataFusion in this process) or "ballista"
# (a Ballista cluster: citybooks scheduler + citybooks executor, see the README's
# "Scaling out"). With ballista, report.* queries run on the cluster; catalog
# (pg_catalog, information_schema) and meta.* queries stay in this process.
engine = "{engine}"
scheduler = "{scheduler}"
# "embedded": run here when the scheduler cannot be reached (with a warning) instead
# of failing the query.
fallback = ""

[publish]
# Publish the star schema into a PostgreSQL or Amazon Redshift after every load
# (citybooks serve) and on `citybooks publish`: postgres://user@host:5432/db or
# redshift://user@cluster-host:5439/db. Empty: never.
target = ""
# The schema of the target the tables go into.
schema = "{publish_schema}"
# Redshift only: the IAM role its COPY reads the Parquet files in the store with.
iam_role = ""
# The target's password, if neither PGPASSWORD nor ~/.pgpass has it; prefer the
# variable CITYBOOKS_PUBLISH_PASSWORD to writing it here.
password = ""
"#,
            publish_schema = d.publish.schema,
            engine = d.query.engine,
            scheduler = d.query.scheduler,
            portal = d.fetch.portal,
            dataset = d.fetch.dataset,
            page_rows = d.fetch.page_rows,
            fetch_timeout = d.fetch.timeout_secs,
            attempts = d.fetch.attempts,
            backoff = d.fetch.backoff_ms,
            retry_max = d.fetch.retry_max_secs,
            sftp_enabled = d.sftp.enabled,
            sql_enabled = d.sql.enabled,
            sql_listen = d.sql.listen,
            sql_port = d.sql.port,
            tls_required = d.sql.tls_required,
            password_auth = d.sql.password_auth,
            sql_timeout = d.sql.statement_timeout_secs,
            sql_conns = d.sql.max_connections,
            query_memory = d.sql.query_memory_mib,
            server_memory = d.sql.server_memory_mib,
            query_spill = d.sql.query_spill_mib,
            memory_stop = d.sql.memory_stop_mib,
            max_concurrent = d.sql.max_concurrent_queries,
            queue_timeout = d.sql.queue_timeout_secs,
            http_enabled = d.http.enabled,
            http_listen = d.http.listen,
            http_port = d.http.port,
            row_limit = d.http.row_limit,
            http_timeout = d.http.timeout_secs,
            http_cache = d.http.cache,
            url = d.store.url,
            batch_rows = d.load.batch_rows,
            target = d.load.target_file_mib,
            lease = d.load.lease_secs,
            max_shrink = d.load.max_shrink_percent,
            listen = d.sftp.listen,
            port = d.sftp.port,
            idle = d.sftp.idle_timeout_secs,
            fails = d.sftp.max_auth_failures,
            ban = d.sftp.ban_secs,
            audit = d.sftp.audit_log,
            max_file = d.sftp.max_file_mib,
            quota = d.sftp.quota_mib,
            sessions = d.sftp.max_sessions_per_user,
            grace = d.sftp.shutdown_grace_secs,
        )
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
    fn environment_overrides_keys_with_their_types() {
        let c = parse(
            "[store]\nurl = \"x\"\n",
            &[
                ("CITYBOOKS_STORE_URL", "s3://b/p"),
                ("CITYBOOKS_STORE_ALLOW_HTTP", "true"),
                ("CITYBOOKS_LOAD_BATCH_ROWS", "1000"),
                ("CITYBOOKS_PROJECT", "/elsewhere"),
                ("HOME", "/root"),
            ],
        )
        .unwrap();
        assert_eq!(c.store.url, "s3://b/p");
        assert!(c.store.allow_http);
        assert_eq!(c.load.batch_rows, 1000);
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
