//! Where a client's paths may go: every path is normalised inside the user's home
//! before any store access, and a few names are kept for citybooks itself.

use russh_sftp::protocol::StatusCode;
use russh_sftp::server::StatusReply;

use crate::session::fail;

/// The marker that keeps an empty folder visible in an object store.
pub(crate) const DIR_MARKER: &str = ".folder";

/// The ending of the load reports citybooks writes beside each upload: a user may read
/// them, never write one (a forged report would tell the uploader a load went well).
pub(crate) const REPORT_SUFFIX: &str = ".load.json";

/// Refuses to write `path` if it is a name citybooks keeps for itself.
pub(crate) fn writable(path: &str) -> Result<(), StatusReply> {
    if path.to_ascii_lowercase().ends_with(REPORT_SUFFIX) {
        return Err(fail(
            StatusCode::PermissionDenied,
            format!("{path}: names ending in {REPORT_SUFFIX} are citybooks' load reports"),
        ));
    }
    Ok(())
}

/// Normalises a client path to a path below the home ("" is the home itself), or
/// refuses one that climbs out of it.
pub fn jail(path: &str) -> Result<String, StatusReply> {
    // No file name holds a NUL byte (POSIX; OpenSSH refuses one): refuse the probe
    // instead of carrying it into store paths, listings and the audit log.
    if path.contains('\0') {
        return Err(fail(
            StatusCode::PermissionDenied,
            format!(
                "{}: a file name cannot hold a NUL byte",
                path.escape_debug()
            ),
        ));
    }
    // The SFTP library decodes a name that is not UTF-8 lossily, every bad byte
    // becoming U+FFFD: stored as is, two different names would land on one object.
    // Refuse it (and with it the rare UTF-8 name that holds U+FFFD itself).
    if path.contains(char::REPLACEMENT_CHARACTER) {
        return Err(fail(
            StatusCode::PermissionDenied,
            format!(
                "{}: a file name must be UTF-8 (this one has bytes that are not)",
                path.escape_debug()
            ),
        ));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(fail(
                        StatusCode::PermissionDenied,
                        format!("{path}: outside your home folder"),
                    ));
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_in_the_home_folder() {
        assert_eq!(jail("/a/./b//c.csv").unwrap(), "a/b/c.csv");
        assert_eq!(jail("a/../b").unwrap(), "b");
        assert_eq!(jail("/").unwrap(), "");
        for escape in ["..", "/../other/x.csv", "a/../../b", "/../../etc/passwd"] {
            let e = jail(escape).unwrap_err();
            assert_eq!(e.status_code, StatusCode::PermissionDenied, "{escape}");
        }
    }

    /// Found by fuzz/fuzz_targets/sftp_jail.rs: a path with a NUL byte was accepted
    /// and passed on as it was (`"a\0b.csv"` -> `Ok("a\0b.csv")`).
    #[test]
    fn a_nul_byte_in_a_path_is_refused() {
        for path in ["a\0b.csv", "/\0", "dir/\0/../x.csv", "\0"] {
            let e = jail(path).unwrap_err();
            assert_eq!(e.status_code, StatusCode::PermissionDenied, "{path:?}");
        }
        assert_eq!(jail("dir/x.csv").unwrap(), "dir/x.csv");
    }

    /// What the SFTP library makes of a name that is not UTF-8 (`\xff\xfe.csv`, a
    /// Latin-1 `caf\xe9.csv`): lossy text, refused rather than stored under a name the
    /// client never sent.
    #[test]
    fn a_name_that_is_not_utf8_is_refused() {
        for bytes in [&b"\xff\xfe.csv"[..], b"caf\xe9.csv", b"dir/\x80/x.csv"] {
            let lossy = String::from_utf8_lossy(bytes);
            let e = jail(&lossy).unwrap_err();
            assert_eq!(e.status_code, StatusCode::PermissionDenied, "{lossy}");
            let message = e.error_message.unwrap_or_default();
            assert!(message.contains("must be UTF-8"), "{message}");
        }
        assert_eq!(jail("café.csv").unwrap(), "café.csv");
    }
}
