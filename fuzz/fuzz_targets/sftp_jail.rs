//! The SFTP path resolver (`citybooks_sftp::paths::jail`).
//!
//! Its contract: a client path becomes a path below the user's home (`""` is the home),
//! or is refused when it climbs out. Oracle, for any path:
//! * it never panics, and refuses exactly the paths whose `..` components climb above
//!   the home at some point (a depth count, written independently);
//! * what it returns is relative (no leading `/`), has no empty, `.` or `..`
//!   component, no NUL byte, and is the lexical resolution of the input (each `..`
//!   removes the component before it);
//! * it is idempotent: the result, with or without a leading `/`, resolves to itself;
//! * what it refuses is refused with PermissionDenied.

#![no_main]

use citybooks_sftp::paths::jail;
use libfuzzer_sys::fuzz_target;
use russh_sftp::protocol::StatusCode;

/// The independent model: `Some(components)` below the home, `None` if it escapes.
fn model(path: &str) -> Option<Vec<&str>> {
    let mut depth: i64 = 0;
    let mut kept: Vec<&str> = Vec::new();
    for part in path.split('/') {
        if part.is_empty() || part == "." {
            continue;
        }
        if part == ".." {
            depth -= 1;
            if depth < 0 {
                return None;
            }
            kept.truncate(depth as usize);
        } else {
            kept.truncate(depth as usize);
            kept.push(part);
            depth += 1;
        }
    }
    Some(kept)
}

fuzz_target!(|data: &[u8]| {
    // SFTP v3 names are bytes; russh-sftp hands them over as (lossy) UTF-8 text.
    let path = String::from_utf8_lossy(data);
    let path = path.as_ref();
    match (jail(path), model(path)) {
        (Ok(inner), Some(parts)) => {
            assert!(!inner.starts_with('/'), "{path:?} -> {inner:?}");
            assert!(!inner.contains('\0'), "{path:?} -> {inner:?}: a NUL byte");
            if !inner.is_empty() {
                for c in inner.split('/') {
                    assert!(
                        !c.is_empty() && c != "." && c != "..",
                        "{path:?} -> {inner:?}: component {c:?}"
                    );
                }
            }
            assert_eq!(inner, parts.join("/"), "{path:?}");
            assert_eq!(jail(&inner).ok().as_deref(), Some(inner.as_str()));
            assert_eq!(
                jail(&format!("/{inner}")).ok().as_deref(),
                Some(inner.as_str())
            );
            // Below the home, a further "x/.." changes nothing.
            assert_eq!(
                jail(&format!("{inner}/x/..")).ok().as_deref(),
                Some(inner.as_str())
            );
        }
        (Err(e), None) => assert_eq!(e.status_code, StatusCode::PermissionDenied),
        (Err(e), Some(parts)) => {
            // Refusing more than escapes is allowed only for a reason the contract
            // names (a NUL byte); anything else is a false refusal.
            assert!(
                path.contains('\0') && e.status_code != StatusCode::Ok,
                "{path:?} refused ({:?}) though it resolves to {parts:?}",
                e.error_message
            );
        }
        (Ok(inner), None) => panic!("{path:?} escapes the home but resolved to {inner:?}"),
    }
});
