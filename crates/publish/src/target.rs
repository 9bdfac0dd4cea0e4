//! Where a publish goes: `postgres://user@host:port/db` or
//! `redshift://user@cluster-host:5439/db`, and the password to log in with.
//!
//! The password is never part of the target: a URL is printed in logs, `meta.publishes`
//! and `ps` output. It comes from `PGPASSWORD`, then the password file libpq reads
//! (`PGPASSFILE` or `~/.pgpass`), then `[publish] password`.

use std::fmt;
use std::path::PathBuf;

use crate::PublishError;

/// Which warehouse the target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// PostgreSQL: rows go over binary `COPY ... FROM STDIN`.
    Postgres,
    /// Amazon Redshift: rows go as Parquet files in the store's S3 bucket, which the
    /// cluster's `COPY ... FROM 's3://...' IAM_ROLE ... FORMAT AS PARQUET` reads.
    Redshift,
}

/// A parsed target.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub flavor: Flavor,
    pub user: String,
    pub host: String,
    pub port: u16,
    pub database: String,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// The target as it is shown and recorded: no password, ever.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.flavor {
            Flavor::Postgres => "postgres",
            Flavor::Redshift => "redshift",
        };
        write!(
            f,
            "{scheme}://{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

impl Target {
    /// Parses `postgres://user@host[:port]/db` (also `postgresql://`) or
    /// `redshift://user@host[:port]/db`. The port defaults to 5432 and 5439.
    pub fn parse(text: &str) -> Result<Target, PublishError> {
        let bad = |why: &str| PublishError::BadTarget {
            target: shown(text),
            why: why.to_string(),
        };
        let url = url::Url::parse(text.trim()).map_err(|e| bad(&e.to_string()))?;
        let (flavor, default_port) = match url.scheme() {
            "postgres" | "postgresql" => (Flavor::Postgres, 5432),
            "redshift" => (Flavor::Redshift, 5439),
            other => {
                return Err(bad(&format!(
                    "the scheme is {other}://; citybooks publishes to postgres:// or redshift://"
                )))
            }
        };
        if url.password().is_some() {
            return Err(bad(
                "a password in the target would be printed and recorded: use PGPASSWORD, ~/.pgpass or [publish] password",
            ));
        }
        let user = percent_decode(url.username());
        if user.is_empty() {
            return Err(bad("it names no user (user@host)"));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("it names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let database = percent_decode(url.path().trim_start_matches('/'));
        if database.is_empty() || database.contains('/') {
            return Err(bad("it names no database (host:port/database)"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("options after ? or # are not understood"));
        }
        Ok(Target {
            flavor,
            user,
            host,
            port: url.port().unwrap_or(default_port),
            database,
        })
    }

    /// The password: `PGPASSWORD`, else the password file's matching line, else
    /// `configured` (`[publish] password`) if not empty.
    pub fn password(&self, configured: Option<&str>) -> Option<String> {
        if let Some(p) = std::env::var_os("PGPASSWORD").filter(|p| !p.is_empty()) {
            return Some(p.to_string_lossy().into_owned());
        }
        if let Some(p) = password_file().and_then(|f| std::fs::read_to_string(f).ok()) {
            if let Some(found) = self.from_pgpass(&p) {
                return Some(found);
            }
        }
        configured.map(str::to_string)
    }

    /// The password of the first line of a `.pgpass` text that matches this target
    /// (`host:port:database:user:password`, `*` matches anything, `\` escapes `:`).
    pub fn from_pgpass(&self, text: &str) -> Option<String> {
        let port = self.port.to_string();
        let wanted = [
            self.host.as_str(),
            port.as_str(),
            self.database.as_str(),
            self.user.as_str(),
        ];
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
            .find_map(|line| {
                let fields = pgpass_fields(line);
                if fields.len() != 5 {
                    return None;
                }
                let matches = fields[..4]
                    .iter()
                    .zip(wanted)
                    .all(|(f, w)| f == "*" || f == w || (w == "localhost" && f == "127.0.0.1"));
                matches.then(|| fields[4].clone())
            })
    }
}

/// `PGPASSFILE`, or `~/.pgpass`.
fn password_file() -> Option<PathBuf> {
    if let Some(f) = std::env::var_os("PGPASSFILE") {
        return Some(PathBuf::from(f));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass"))
}

/// The fields of a `.pgpass` line: split on `:`, with `\:` and `\\` escaped.
fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().unwrap().push(next);
                }
            }
            ':' => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

/// `%40` → `@` (a URL's user and path are percent-encoded; `+` stays `+`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A target text as it may be shown in an error: with any password replaced.
fn shown(text: &str) -> String {
    match url::Url::parse(text.trim()) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => text.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_flavors_with_their_default_ports() {
        let t = Target::parse("postgres://city@db.example.org/finance").unwrap();
        assert_eq!(
            (
                t.flavor,
                t.user.as_str(),
                t.host.as_str(),
                t.port,
                t.database.as_str()
            ),
            (Flavor::Postgres, "city", "db.example.org", 5432, "finance")
        );
        assert_eq!(t.to_string(), "postgres://city@db.example.org:5432/finance");
        let r = Target::parse("redshift://awsuser@c1.abc.us-west-2.redshift.amazonaws.com/dev")
            .unwrap();
        assert_eq!((r.flavor, r.port), (Flavor::Redshift, 5439));
        let p = Target::parse("postgresql://a%40b@127.0.0.1:6543/x").unwrap();
        assert_eq!((p.user.as_str(), p.port), ("a@b", 6543));
    }

    #[test]
    fn refuses_passwords_and_incomplete_targets_saying_why() {
        let e = Target::parse("postgres://city:secret@h/db")
            .unwrap_err()
            .to_string();
        assert!(e.contains("PGPASSWORD") && !e.contains("secret"), "{e}");
        for (text, why) in [
            ("mysql://u@h/db", "postgres:// or redshift://"),
            ("postgres://h/db", "no user"),
            ("postgres://u@h/", "no database"),
            ("postgres://u@h/db?sslmode=require", "not understood"),
        ] {
            let e = Target::parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn finds_the_password_in_a_pgpass_text_as_libpq_does() {
        let t = Target::parse("postgres://city@db:5432/finance").unwrap();
        let text =
            "# comment\nother:5432:finance:city:no\ndb:5432:finance:city:pa\\:ss\n*:*:*:*:any\n";
        assert_eq!(t.from_pgpass(text).as_deref(), Some("pa:ss"));
        assert_eq!(
            Target::parse("postgres://x@y/z")
                .unwrap()
                .from_pgpass(text)
                .as_deref(),
            Some("any")
        );
        assert_eq!(t.from_pgpass("db:5433:finance:city:no\n"), None);
    }
}
