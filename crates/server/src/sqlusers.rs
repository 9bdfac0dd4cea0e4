//! Users of the PostgreSQL wire protocol, one file per user in the project's
//! `sql-users/` folder (mode 0600), holding a SCRAM-SHA-256 verifier:
//!
//! ```text
//! SCRAM-SHA-256$4096:<salt, base64>$<salted password, base64>
//! ```
//!
//! The password itself is never stored. (The salted password is what pgwire's SCRAM
//! exchange needs; like PostgreSQL's own verifier it is useless without a SCRAM run.)
//! With `[sql] password_auth = "md5"`, a user added or changed also gets PostgreSQL's
//! MD5 verifier on a second line, `md5<md5(password || user), hex>`: what the MD5
//! challenge needs, and weaker (MD5 is fast to guess against, and the verifier alone
//! answers the challenge), which is why it is kept only when asked for.

use std::fmt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::{
    PgCatalogContextProvider, Role,
};
use pgwire::api::auth::sasl::scram::gen_salted_password;
use pgwire::api::auth::{AuthSource, LoginInfo, Password};
use pgwire::error::{PgWireError, PgWireResult};

/// SCRAM iterations (PostgreSQL's default).
pub const ITERATIONS: usize = 4096;
/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;
const PREFIX: &str = "SCRAM-SHA-256$";

/// A user or password that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SqlUserError {
    #[error("{0:?} is not a valid user name: use 1-63 letters, digits, '_', '-' or '.', starting with a letter or '_'")]
    BadName(String),
    #[error("the password is too short: use at least {MIN_PASSWORD_CHARS} characters")]
    ShortPassword,
    #[error("no SQL user {0:?} (citybooks sql-user list shows them)")]
    NoSuchUser(String),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

/// A stored verifier: (salt, salted password).
pub type Verifier = (Vec<u8>, Vec<u8>);

/// The SQL users of a project.
#[derive(Clone)]
pub struct SqlUsers {
    dir: PathBuf,
    /// Also store MD5 verifiers (`[sql] password_auth = "md5"`).
    keep_md5: bool,
}

impl fmt::Debug for SqlUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlUsers").field("dir", &self.dir).finish()
    }
}

fn check_name(name: &str) -> Result<(), SqlUserError> {
    let mut chars = name.chars();
    let ok = name.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(SqlUserError::BadName(name.to_string()))
    }
}

/// The SQL users as PostgreSQL roles, for `pg_roles` (psql's `\du`, a BI tool's list
/// of roles): each can log in and read, and nothing more.
#[async_trait]
impl PgCatalogContextProvider for SqlUsers {
    async fn roles(&self) -> Vec<String> {
        self.list().unwrap_or_default()
    }

    async fn role(&self, name: &str) -> Option<Role> {
        Some(Role {
            name: name.to_string(),
            is_superuser: false,
            can_login: true,
            can_create_db: false,
            can_create_role: false,
            can_create_user: false,
            can_replication: false,
            grants: Vec::new(),
            inherited_roles: Vec::new(),
        })
    }
}

/// Folder of a project holding the SQL users' SCRAM verifiers.
pub const SQL_USERS_DIR: &str = "sql-users";

impl SqlUsers {
    /// The SQL users of `project` (`sql-users/`), keeping MD5 verifiers when `[sql]
    /// password_auth = "md5"`.
    pub fn of_project(project: &citybooks_store::Project) -> SqlUsers {
        SqlUsers::new(project.dir.join(SQL_USERS_DIR)).keeping_md5(
            project.config.sql.password_auth == citybooks_store::config::PasswordAuth::Md5,
        )
    }

    /// The users kept in `dir` (made on first `add`).
    pub fn new(dir: impl Into<PathBuf>) -> SqlUsers {
        SqlUsers {
            dir: dir.into(),
            keep_md5: false,
        }
    }

    /// The same users; `add` also stores an MD5 verifier when `keep` is set.
    pub fn keeping_md5(self, keep: bool) -> SqlUsers {
        SqlUsers {
            keep_md5: keep,
            ..self
        }
    }

    fn io(path: &Path, e: std::io::Error) -> SqlUserError {
        SqlUserError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }

    fn file(&self, name: &str) -> Result<PathBuf, SqlUserError> {
        check_name(name)?;
        Ok(self.dir.join(name))
    }

    /// Adds `name` with `password`, or changes its password. Returns true if the user
    /// existed.
    pub fn add(&self, name: &str, password: &str) -> Result<bool, SqlUserError> {
        let path = self.file(name)?;
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(SqlUserError::ShortPassword);
        }
        let salt: [u8; 16] = rand::random();
        let salted = gen_salted_password(password, &salt, ITERATIONS);
        let mut text = format!(
            "{PREFIX}{ITERATIONS}:{}${}\n",
            STANDARD.encode(salt),
            STANDARD.encode(salted)
        );
        if self.keep_md5 {
            text.push_str(&format!(
                "md5{:x}\n",
                md5::compute(format!("{password}{name}"))
            ));
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| Self::io(&self.dir, e))?;
        let existed = path.exists();
        let tmp = self.dir.join(format!(".{name}.tmp"));
        write_private(&tmp, text.as_bytes()).map_err(|e| Self::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Self::io(&path, e))?;
        Ok(existed)
    }

    /// Removes `name`.
    pub fn remove(&self, name: &str) -> Result<(), SqlUserError> {
        let path = self.file(name)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(SqlUserError::NoSuchUser(name.to_string()))
            }
            Err(e) => Err(Self::io(&path, e)),
        }
    }

    /// The user names, sorted.
    pub fn list(&self) -> Result<Vec<String>, SqlUserError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::io(&self.dir, e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| check_name(n).is_ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// The stored (salt, salted password) of `name`, if it is a user.
    pub fn verifier(&self, name: &str) -> Result<Option<Verifier>, SqlUserError> {
        let Ok(path) = self.file(name) else {
            return Ok(None);
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Self::io(&path, e)),
        };
        let bad = || {
            SqlUserError::Io {
            path: path.display().to_string(),
            message: format!("not a {PREFIX}{ITERATIONS} verifier; set the password again with citybooks sql-user add"),
        }
        };
        let first = text.lines().next().unwrap_or_default();
        let rest = first.trim().strip_prefix(PREFIX).ok_or_else(bad)?;
        let (iterations, rest) = rest.split_once(':').ok_or_else(bad)?;
        if iterations != ITERATIONS.to_string() {
            return Err(bad());
        }
        let (salt, salted) = rest.split_once('$').ok_or_else(bad)?;
        let salt = STANDARD.decode(salt).map_err(|_| bad())?;
        let salted = STANDARD.decode(salted).map_err(|_| bad())?;
        Ok(Some((salt, salted)))
    }
}

impl SqlUsers {
    /// The stored MD5 verifier of `name` (`md5(password || name)`, hex), if it has one.
    pub fn md5_verifier(&self, name: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.file(name).ok()?).ok()?;
        text.lines()
            .find_map(|l| l.trim().strip_prefix("md5"))
            .map(String::from)
    }

    /// Whether `password` is `name`'s (checked against the SCRAM verifier).
    pub fn check_password(&self, name: &str, password: &str) -> bool {
        match self.verifier(name) {
            Ok(Some((salt, salted))) => {
                let given = gen_salted_password(password, &salt, ITERATIONS);
                // Compared in constant time: no early exit on the first difference.
                given.len() == salted.len()
                    && given
                        .iter()
                        .zip(&salted)
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0
            }
            _ => false,
        }
    }
}

/// The MD5 challenge of pgwire's handler: for each login, a fresh salt and the answer
/// the client must give, `md5(md5(password || user) || salt)`, from the stored verifier.
#[derive(Debug)]
pub struct Md5Challenge(pub SqlUsers);

#[async_trait]
impl AuthSource for Md5Challenge {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default().to_string();
        let Some(verifier) = self.0.md5_verifier(&user) else {
            tracing::warn!(%user, host = login.host(), "SQL login refused: no MD5 verifier (password_auth is md5: set the password again with citybooks sql-user add)");
            return Err(PgWireError::InvalidPassword(user));
        };
        let salt: [u8; 4] = rand::random();
        let mut bytes = verifier.into_bytes();
        bytes.extend_from_slice(&salt);
        let answer = format!("md5{:x}", md5::compute(bytes));
        Ok(Password::new(Some(salt.to_vec()), answer.into_bytes()))
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[async_trait]
impl AuthSource for SqlUsers {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default().to_string();
        match self.verifier(&user) {
            Ok(Some((salt, salted))) => Ok(Password::new(Some(salt), salted)),
            Ok(None) => {
                tracing::warn!(%user, host = login.host(), "SQL login refused: no such user");
                Err(PgWireError::InvalidPassword(user))
            }
            Err(e) => {
                tracing::error!("SQL login of {user:?}: {e}");
                Err(PgWireError::InvalidPassword(user))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_verifiers_are_kept_only_when_asked_for_and_passwords_check() {
        let dir = tempfile::tempdir().unwrap();
        let plain = SqlUsers::new(dir.path().join("u"));
        plain.add("analyst", "a long passphrase").unwrap();
        assert_eq!(plain.md5_verifier("analyst"), None);
        assert!(plain.check_password("analyst", "a long passphrase"));
        assert!(!plain.check_password("analyst", "a long passphrasE"));
        assert!(!plain.check_password("nobody", "a long passphrase"));
        let md5 = plain.keeping_md5(true);
        md5.add("analyst", "a long passphrase").unwrap();
        // PostgreSQL's own verifier for this user and password.
        assert_eq!(
            md5.md5_verifier("analyst").unwrap(),
            format!("{:x}", md5::compute("a long passphraseanalyst"))
        );
        // The SCRAM verifier is still the first line and still checks.
        assert!(md5.verifier("analyst").unwrap().is_some());
        assert!(md5.check_password("analyst", "a long passphrase"));
    }

    #[test]
    fn users_are_added_listed_checked_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let users = SqlUsers::new(dir.path().join("sql-users"));
        assert!(users.list().unwrap().is_empty());
        assert!(!users.add("analyst", "correct horse").unwrap());
        assert!(users.add("analyst", "battery staple").unwrap());
        let (salt, salted) = users.verifier("analyst").unwrap().unwrap();
        assert_eq!(
            salted,
            gen_salted_password("battery staple", &salt, ITERATIONS)
        );
        assert_ne!(
            salted,
            gen_salted_password("correct horse", &salt, ITERATIONS)
        );
        assert_eq!(users.list().unwrap(), vec!["analyst".to_string()]);
        assert!(matches!(
            users.add("x", "short"),
            Err(SqlUserError::ShortPassword)
        ));
        assert!(matches!(
            users.add("../etc", "long enough"),
            Err(SqlUserError::BadName(_))
        ));
        assert!(users.verifier("nobody").unwrap().is_none());
        users.remove("analyst").unwrap();
        assert!(matches!(
            users.remove("analyst"),
            Err(SqlUserError::NoSuchUser(_))
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            users.add("bi", "long enough").unwrap();
            let mode = std::fs::metadata(dir.path().join("sql-users/bi"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
