//! SSH-key users of the drop-box: `users/<name>.pub` in the project folder, one OpenSSH
//! public key per line (the `authorized_keys` format), several keys per user.

use std::path::{Path, PathBuf};

use russh::keys::{HashAlg, PublicKey};

/// A user or key operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{path}{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    File {
        path: String,
        line: Option<usize>,
        message: String,
    },
    #[error("user name {0:?} is not allowed: use 1 to 32 of a-z, 0-9, '-', '_' and '.', starting with a letter or digit")]
    BadName(String),
    #[error("no user {0}; `citybooks user list` shows the users")]
    NoSuchUser(String),
    #[error("{0} gives no public key")]
    NoKeys(String),
}

/// Names `raw/` uses for other sources; a user cannot take them.
pub const RESERVED: &[&str] = &["cli", "datasf"];

/// One key of a user, as `user list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub algorithm: String,
    pub fingerprint: String,
    pub comment: String,
}

/// The users of a project.
#[derive(Debug, Clone)]
pub struct Users {
    dir: PathBuf,
}

/// Checks a user name: it becomes a folder name in the store.
pub fn check_name(name: &str) -> Result<(), UserError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && !RESERVED.contains(&name);
    if ok {
        Ok(())
    } else {
        Err(UserError::BadName(name.to_string()))
    }
}

/// Parses public keys in `authorized_keys` format; errors name the file and line.
pub fn parse_keys(text: &str, path: &Path) -> Result<Vec<PublicKey>, UserError> {
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = PublicKey::from_openssh(line).map_err(|e| UserError::File {
            path: path.display().to_string(),
            line: Some(i + 1),
            message: format!(
                "not an OpenSSH public key ({e}); give the .pub file ssh-keygen wrote"
            ),
        })?;
        keys.push(key);
    }
    Ok(keys)
}

impl Users {
    /// The users in `dir` (`users/` of a project).
    pub fn new(dir: &Path) -> Self {
        Users {
            dir: dir.to_path_buf(),
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pub"))
    }

    /// The keys of `name`.
    pub fn keys(&self, name: &str) -> Result<Vec<PublicKey>, UserError> {
        check_name(name)?;
        let path = self.file(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => parse_keys(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(UserError::NoSuchUser(name.to_string()))
            }
            Err(e) => Err(UserError::File {
                path: path.display().to_string(),
                line: None,
                message: e.to_string(),
            }),
        }
    }

    /// Adds the keys of `key_files` to `name` (creating the user); a key the user has
    /// already is not added twice. Returns how many keys were new.
    pub fn add(&self, name: &str, key_files: &[PathBuf]) -> Result<usize, UserError> {
        check_name(name)?;
        let mut keys = match self.keys(name) {
            Ok(k) => k,
            Err(UserError::NoSuchUser(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut added = 0;
        for path in key_files {
            let text = std::fs::read_to_string(path).map_err(|e| UserError::File {
                path: path.display().to_string(),
                line: None,
                message: e.to_string(),
            })?;
            let new = parse_keys(&text, path)?;
            if new.is_empty() {
                return Err(UserError::NoKeys(path.display().to_string()));
            }
            for key in new {
                if !keys.iter().any(|k| k.key_data() == key.key_data()) {
                    keys.push(key);
                    added += 1;
                }
            }
        }
        let mut text = String::new();
        for k in &keys {
            let line = k.to_openssh().map_err(|e| UserError::File {
                path: self.file(name).display().to_string(),
                line: None,
                message: e.to_string(),
            })?;
            text.push_str(&line);
            text.push('\n');
        }
        let path = self.file(name);
        let io = |e: std::io::Error| UserError::File {
            path: path.display().to_string(),
            line: None,
            message: e.to_string(),
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        // Write then rename: a crash never leaves a half-written key list.
        let tmp = self.dir.join(format!(".{name}.pub.tmp"));
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(added)
    }

    /// Removes a user (their uploaded files stay in the store).
    pub fn remove(&self, name: &str) -> Result<(), UserError> {
        check_name(name)?;
        let path = self.file(name);
        std::fs::remove_file(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => UserError::NoSuchUser(name.to_string()),
            _ => UserError::File {
                path: path.display().to_string(),
                line: None,
                message: e.to_string(),
            },
        })
    }

    /// Every user with their keys, by name.
    pub fn list(&self) -> Result<Vec<(String, Vec<KeyInfo>)>, UserError> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => {
                return Err(UserError::File {
                    path: self.dir.display().to_string(),
                    line: None,
                    message: e.to_string(),
                })
            }
        };
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let Some(name) = file.strip_suffix(".pub") else {
                continue;
            };
            if check_name(name).is_err() {
                continue;
            }
            let keys = self
                .keys(name)?
                .iter()
                .map(|k| KeyInfo {
                    algorithm: k.algorithm().to_string(),
                    fingerprint: k.fingerprint(HashAlg::Sha256).to_string(),
                    comment: k.comment().to_string(),
                })
                .collect();
            out.push((name.to_string(), keys));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Whether `key` is one of `name`'s keys (unknown users have none).
    pub fn authorizes(&self, name: &str, key: &PublicKey) -> bool {
        self.keys(name)
            .is_ok_and(|keys| keys.iter().any(|k| k.key_data() == key.key_data()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_safe_folder_names() {
        for ok in ["finance", "a.b-c_1", "9lives"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "..",
            ".hidden",
            "a/b",
            "Finance",
            "cli",
            "datasf",
            &"x".repeat(33),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_key_files_name_file_and_line() {
        let err = parse_keys(
            "# comment\n\nssh-ed25519 not-base64 me\n",
            Path::new("k.pub"),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("k.pub, line 3: not an OpenSSH public key"),
            "{err}"
        );
    }
}
