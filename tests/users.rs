//! The drop-box's identity layer against OpenSSH's own tools: host keys made by
//! `citybooks init` read by `ssh-keygen`, and users' keys made by `ssh-keygen`
//! (RSA 4096 in PEM as the original system used, Ed25519, ECDSA) accepted by
//! `citybooks user`.

mod common;

use std::process::Command;

use common::*;

fn keygen_pub(p: &Project, name: &str, args: &[&str]) -> std::path::PathBuf {
    let mut path = keygen(p, name, args).into_os_string();
    path.push(".pub");
    path.into()
}

fn fingerprint(path: &std::path::Path) -> String {
    let out = run_ok(
        Command::new("ssh-keygen").arg("-lf").arg(path),
        "ssh-keygen -lf",
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

#[test]
fn host_keys_are_openssh_keys_and_stable() {
    let p = Project::new();
    let ed = p.dir.join("keys/ssh_host_ed25519_key");
    let rsa = p.dir.join("keys/ssh_host_rsa_key");
    let (fp_ed, fp_rsa) = (fingerprint(&ed), fingerprint(&rsa));
    let again = p.run(&["init", p.dir.to_str().unwrap()]);
    assert!(!again.status.success(), "init refuses an existing project");
    assert_eq!(
        (fingerprint(&ed), fingerprint(&rsa)),
        (fp_ed.clone(), fp_rsa)
    );
    let out = Command::new(BIN)
        .arg("init")
        .arg(p.tmp.path().join("other"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // init printed the fingerprints OpenSSH computes of the keys it wrote.
    let other = p.tmp.path().join("other/keys");
    for key in ["ssh_host_ed25519_key", "ssh_host_rsa_key"] {
        let fp = fingerprint(&other.join(key));
        assert!(fp.starts_with("SHA256:"), "{fp}");
        assert!(
            text.lines()
                .any(|l| l.contains("SFTP host key: ") && l.contains(&fp)),
            "{key}: {fp} not printed in\n{text}"
        );
    }
    assert!(text.contains("ssh-rsa"), "{text}");
    assert!(!text.contains(&fp_ed), "each project has its own host keys");
    let bits = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(p.dir.join("keys/ssh_host_rsa_key"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bits.stdout).starts_with("3072 "));
}

#[test]
fn users_are_added_listed_and_removed_with_openssh_keys() {
    let p = Project::new();
    let rsa = keygen_pub(&p, "alice-rsa", &["-t", "rsa", "-b", "4096", "-m", "PEM"]);
    let ed = keygen_pub(&p, "alice-ed", &["-t", "ed25519"]);
    let ec = keygen_pub(&p, "bob-ec", &["-t", "ecdsa"]);
    let out = p.ok(&[
        "user",
        "add",
        "alice",
        "--key",
        rsa.to_str().unwrap(),
        "--key",
        ed.to_str().unwrap(),
    ]);
    assert!(out.contains("2 key(s) added"), "{out}");
    let out = p.ok(&["user", "add", "alice", "--key", ed.to_str().unwrap()]);
    assert!(
        out.contains("0 key(s) added, 2 in all"),
        "a key is not added twice: {out}"
    );
    p.ok(&["user", "add", "bob", "--key", ec.to_str().unwrap()]);
    let list = p.ok(&["user", "list"]);
    for (key, algo) in [
        (&rsa, "ssh-rsa"),
        (&ed, "ssh-ed25519"),
        (&ec, "ecdsa-sha2-nistp256"),
    ] {
        let line = format!("{} {algo}", fingerprint(key));
        assert!(list.contains(&line), "{line} in {list}");
    }
    p.ok(&["user", "remove", "bob"]);
    let list = p.ok(&["user", "list"]);
    // User names stand on their own lines (a key's fingerprint may contain "bob").
    let users: Vec<&str> = list.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(users, ["alice"], "{list}");
    // Clear refusals.
    let bad = p.file("bad.pub", b"ssh-ed25519 AAAA-not-a-key laptop\n");
    let o = p.run(&["user", "add", "carol", "--key", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bad.pub, line 1: not an OpenSSH public key")
    );
    for name in ["../etc", "Alice", "cli", "datasf"] {
        let o = p.run(&["user", "add", name, "--key", ed.to_str().unwrap()]);
        assert!(!o.status.success(), "{name} must be refused");
    }
    let o = p.run(&["user", "remove", "nobody"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no user nobody"));
}
