//! The server's host keys: generated once, then read back on every start, so clients'
//! `known_hosts` entries stay valid.

use std::path::{Path, PathBuf};

use russh::keys::ssh_key::private::{KeypairData, RsaKeypair};
use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, HashAlg, PrivateKey};

use crate::users::UserError;

/// RSA host key size; OpenSSH's default for host keys.
pub const RSA_BITS: usize = 3072;

/// The project's host keys.
#[derive(Debug, Clone)]
pub struct HostKeys {
    pub keys: Vec<PrivateKey>,
}

fn file_err(path: &Path) -> impl FnOnce(String) -> UserError + '_ {
    move |message| UserError::File {
        path: path.display().to_string(),
        line: None,
        message,
    }
}

impl HostKeys {
    /// The key files in `dir` (`keys/` of a project).
    pub fn paths(dir: &Path) -> [PathBuf; 2] {
        [
            dir.join("ssh_host_ed25519_key"),
            dir.join("ssh_host_rsa_key"),
        ]
    }

    /// Reads the host keys in `dir`, generating any that are missing (mode 0600).
    pub fn ensure(dir: &Path) -> Result<HostKeys, UserError> {
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir)(e.to_string()))?;
        let [ed, rsa] = Self::paths(dir);
        let mut keys = Vec::new();
        for (path, make) in [
            (&ed, generate_ed25519 as fn() -> Result<PrivateKey, String>),
            (&rsa, generate_rsa),
        ] {
            if path.exists() {
                keys.push(
                    PrivateKey::read_openssh_file(path)
                        .map_err(|e| file_err(path)(e.to_string()))?,
                );
                continue;
            }
            let key = make().map_err(file_err(path))?;
            let pem = key
                .to_openssh(LineEnding::LF)
                .map_err(|e| file_err(path)(e.to_string()))?;
            write_private(path, pem.as_bytes()).map_err(|e| file_err(path)(e.to_string()))?;
            keys.push(key);
        }
        Ok(HostKeys { keys })
    }

    /// `SHA256:...` fingerprints with their algorithms, as `ssh-keygen -l` shows them.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| format!("{} {}", k.fingerprint(HashAlg::Sha256), k.algorithm()))
            .collect()
    }
}

fn generate_ed25519() -> Result<PrivateKey, String> {
    PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(|e| e.to_string())
}

fn generate_rsa() -> Result<PrivateKey, String> {
    let pair = RsaKeypair::random(&mut rand::rng(), RSA_BITS).map_err(|e| e.to_string())?;
    PrivateKey::new(KeypairData::from(pair), "citybooks host key").map_err(|e| e.to_string())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_keys_are_generated_once_and_stay_stable() {
        let dir = tempfile::tempdir().unwrap();
        let first = HostKeys::ensure(dir.path()).unwrap();
        assert_eq!(first.keys.len(), 2);
        assert_eq!(first.keys[0].algorithm(), Algorithm::Ed25519);
        assert!(matches!(first.keys[1].algorithm(), Algorithm::Rsa { .. }));
        let again = HostKeys::ensure(dir.path()).unwrap();
        assert_eq!(first.fingerprints(), again.fingerprints());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&HostKeys::paths(dir.path())[0])
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
