//! The SFTP drop-box against real clients: OpenSSH's `sftp` in batch mode, with keys
//! made by `ssh-keygen` (RSA 4096 in PEM as the original system used, and Ed25519).
//! The original routine — `put` a CSV, `ls -la`, `get`, `rename`, `rm` — and the
//! upload loading itself, with its `.load.json` beside it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn start(p: &Project) -> Served {
    p.serve(&[])
}

fn start_with(p: &Project, env: &[(&str, &str)]) -> Served {
    p.serve(env)
}

/// Starts `sftp -b` putting `file` from `work` and returns once the server has opened
/// the upload (the audit log says so), with the client still running.
fn upload_in_background(
    p: &Project,
    port: u16,
    key: &Path,
    user: &str,
    work: &Path,
    file: &str,
    stderr: Stdio,
) -> Child {
    let batch = work.join("batch");
    std::fs::write(&batch, format!("put {file}\n")).unwrap();
    let child = sftp_command(port, key)
        .current_dir(work)
        .arg("-b")
        .arg(&batch)
        .arg(format!("{user}@127.0.0.1"))
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let audit = p.dir.join("audit.jsonl");
    wait_for_text(
        &audit,
        r#""operation":"open""#,
        30,
        "the upload did not start",
    );
    child
}

/// A project on the local store, or on S3 (s3s-fs) when `s3` is set; with the folder
/// where its `raw/` lies on disk. None when S3 was asked for but s3s-fs is missing
/// outside CI.
fn project_on(s3: bool) -> Option<(Project, PathBuf, Option<S3Server>)> {
    let p = Project::new();
    if !s3 {
        let raw = p.dir.join("store/raw");
        return Some((p, raw, None));
    }
    let server = start_s3()?;
    server.configure(&p);
    let raw = server.store_dir().join("raw");
    Some((p, raw, Some(server)))
}

/// Waits until `path` holds a load report whose status is one of `statuses`.
fn wait_for(path: &Path, statuses: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                if v["status"].as_str().is_some_and(|s| statuses.contains(&s)) {
                    return text;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} did not appear",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_original_routine_on_the_local_store() {
    let p = Project::new();
    let raw = p.dir.join("store/raw");
    original_routine(&p, &raw);
}

#[test]
fn the_original_routine_on_s3() {
    let Some(server) = start_s3() else { return };
    let p = Project::new();
    server.configure(&p);
    original_routine(&p, &server.store_dir().join("raw"));
}

/// The original routine with OpenSSH's sftp; `raw` is where the store's `raw/` lies on
/// disk (the local store, or the S3 server's folder), to compare bytes.
fn original_routine(p: &Project, raw: &Path) {
    let rsa = keygen(p, "alice-rsa", &["-t", "rsa", "-b", "4096", "-m", "PEM"]);
    let ed = keygen(p, "bob-ed", &["-t", "ed25519"]);
    p.ok(&[
        "user",
        "add",
        "alice",
        "--key",
        &format!("{}.pub", rsa.display()),
    ]);
    p.ok(&[
        "user",
        "add",
        "bob",
        "--key",
        &format!("{}.pub", ed.display()),
    ]);
    let server = start(p);
    let work = p.tmp.path().join("work");
    std::fs::create_dir_all(work.join("data")).unwrap();
    std::fs::copy(sample_path(), work.join("data/ledger.csv")).unwrap();

    // The original routine.
    let out = sftp(
        server.sftp,
        &rsa,
        "alice",
        &work,
        "put data/*.csv\nls -la\nmkdir old\nrename ledger.csv old/ledger-copy.txt\nget old/ledger-copy.txt back.csv\nrm old/ledger-copy.txt\nrmdir old\nput data/ledger.csv\nls -la\n",
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ledger.csv"), "{stdout}");
    assert_eq!(
        std::fs::read(work.join("back.csv")).unwrap(),
        std::fs::read(sample_path()).unwrap()
    );
    let stored = raw.join("alice/ledger.csv");
    assert_eq!(
        std::fs::read(&stored).unwrap(),
        std::fs::read(sample_path()).unwrap()
    );
    // The upload loaded itself, and said so beside the file. (The first upload was
    // renamed away by the routine, possibly before its turn in the queue: its report
    // then says the file was gone, and the second upload's report replaces it; if it
    // was loaded in time, the second is a recorded no-op.)
    let report = wait_for(&raw.join("alice/ledger.csv.load.json"), &["loaded"]);
    assert!(report.contains("\"rows_loaded\": 2186"), "{report}");
    // The acknowledgement says what the load changed.
    assert!(
        report.contains("\"changes\": \"fiscal year 2025 new: "),
        "{report}"
    );
    let out = sftp(
        server.sftp,
        &rsa,
        "alice",
        &work,
        "get ledger.csv.load.json\n",
        &[],
    );
    assert!(out.status.success());
    assert!(std::fs::read_to_string(work.join("ledger.csv.load.json"))
        .unwrap()
        .contains("\"load_id\""));
    assert_eq!(p.value("select count(*) from report.transaction"), "2186");
    let status = p.ok(&["status"]);
    assert!(
        status.contains("raw/alice/ledger.csv"),
        "the upload's load shows in status: {status}"
    );
    assert!(p
        .value("select min(source_file) from report.transaction")
        .starts_with("raw/alice/"));

    // A one-row file of the same fiscal year (a test upload, a truncated export) would
    // shrink the year: the upload is held, the report beside it says why and how to
    // settle it, nothing is replaced, and /health lists the held load.
    let (header, rows) = sample_records();
    std::fs::write(work.join("one-row.csv"), api_csv(&header, &rows[..1])).unwrap();
    let out = sftp(server.sftp, &ed, "bob", &work, "put one-row.csv\n", &[]);
    assert!(out.status.success());
    let report = wait_for(&raw.join("bob/one-row.csv.load.json"), &["held"]);
    assert!(
        report.contains("would go from") && report.contains("citybooks release"),
        "{report}"
    );
    assert_eq!(p.value("select count(*) from report.transaction"), "2186");
    let (code, health) = http_get(&server, "/health");
    assert_eq!(code, 200, "{health}");
    assert_eq!(
        health["held"][0]["source_file"], "raw/bob/one-row.csv",
        "{health}"
    );
    assert!(health["held"][0]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("would go from")));

    // Bob sees only his own home; escapes are refused.
    let out = sftp(server.sftp, &ed, "bob", &work, "ls -la\n", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !stdout.contains("ledger.csv"),
        "{stdout}"
    );
    // Targets that exist outside bob's home (raw/bob in the store), on a local store
    // and on S3 alike, so only the jail can stop them.
    let first_load_commit = "warehouse/meta/loads/_delta_log/00000000000000000000.json";
    assert!(raw.join("alice/ledger.csv").is_file());
    assert!(raw.join("..").join(first_load_commit).is_file());
    for escape in [
        "get ../alice/ledger.csv".to_string(),
        format!("get /../../{first_load_commit}"),
        format!("get ../../{first_load_commit}"),
        "ls ../alice".to_string(),
        "put data/ledger.csv ../alice/x.csv".to_string(),
    ] {
        let out = sftp(server.sftp, &ed, "bob", &work, &format!("{escape}\n"), &[]);
        assert!(!out.status.success(), "{escape} must fail");
    }
    assert!(!raw.join("alice/x.csv").exists());
    let audit = std::fs::read_to_string(p.dir.join("audit.jsonl")).unwrap();
    for needle in [
        r#""operation":"upload","path":"raw/alice/ledger.csv""#,
        r#""bytes":842968"#,
        r#""operation":"rename""#,
        r#""operation":"remove""#,
        r#""operation":"download""#,
    ] {
        assert!(audit.contains(needle), "{needle} in {audit}");
    }
    assert!(audit
        .lines()
        .any(|l| l.contains(r#""user":"bob""#) && l.contains("PermissionDenied")));
}

#[test]
fn wrong_keys_unknown_users_and_passwords_are_refused() {
    let p = Project::new();
    let alice = keygen(&p, "alice", &["-t", "ed25519"]);
    let mallory = keygen(&p, "mallory", &["-t", "ed25519"]);
    p.ok(&[
        "user",
        "add",
        "alice",
        "--key",
        &format!("{}.pub", alice.display()),
    ]);
    let server = start_with(
        &p,
        &[
            ("CITYBOOKS_SFTP_MAX_AUTH_FAILURES", "2"),
            ("CITYBOOKS_SFTP_BAN_SECS", "2"),
        ],
    );
    let cwd = p.tmp.path();
    assert!(sftp(server.sftp, &alice, "alice", cwd, "ls\n", &[])
        .status
        .success());
    assert!(
        !sftp(server.sftp, &mallory, "alice", cwd, "ls\n", &[])
            .status
            .success(),
        "wrong key"
    );
    assert!(
        !sftp(server.sftp, &alice, "nobody", cwd, "ls\n", &[])
            .status
            .success(),
        "unknown user"
    );
    let pw = sftp(
        server.sftp,
        &alice,
        "alice",
        cwd,
        "ls\n",
        &[
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "BatchMode=yes",
        ],
    );
    assert!(
        !pw.status.success(),
        "password authentication is not offered"
    );
    let err = String::from_utf8_lossy(&pw.stderr);
    assert!(err.contains("Permission denied (publickey)"), "{err}");
    // Two failures (wrong key, unknown user) banned the address: even the right key
    // is refused until the ban (2 s) ends, and not for ever. (Refused attempts during a
    // ban neither count as failures nor extend it.)
    let banned_at = Instant::now();
    let login = || {
        sftp(server.sftp, &alice, "alice", cwd, "ls\n", &[])
            .status
            .success()
    };
    assert!(!login(), "banned address");
    let deadline = banned_at + Duration::from_secs(60);
    while !login() {
        assert!(Instant::now() < deadline, "the ban never ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        banned_at.elapsed() >= Duration::from_secs(1),
        "the ban ended after {:?}",
        banned_at.elapsed()
    );
    // Every attempt is in the audit log.
    let audit = std::fs::read_to_string(p.dir.join("audit.jsonl")).unwrap();
    let entries: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let has = |user: &str, op: &str, result: &str| {
        entries.iter().any(|e| {
            e["user"] == user
                && e["operation"] == op
                && e["result"].as_str().unwrap().starts_with(result)
        })
    };
    assert!(has("alice", "login", "ok"), "{audit}");
    assert!(has("alice", "login", "refused (publickey)"), "{audit}");
    assert!(has("nobody", "login", "refused"), "{audit}");
    assert!(entries.iter().any(|e| e["operation"] == "ban"), "{audit}");
    assert!(has("alice", "login", "refused: address banned"), "{audit}");
    assert!(entries.iter().all(|e| e["client"]
        .as_str()
        .is_some_and(|c| c.starts_with("127.0.0.1:"))));
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn twenty_concurrent_clients_store_byte_identical_files() {
    twenty_clients(false);
}

#[test]
fn twenty_concurrent_clients_on_s3() {
    twenty_clients(true);
}

fn twenty_clients(s3: bool) {
    let Some((p, raw, _s3)) = project_on(s3) else {
        return;
    };
    let key = add_user(&p, "many", "many", &["-t", "ed25519"]);
    // One user, twenty sessions at once: above the default of 8 per user.
    let server = start_with(&p, &[("CITYBOOKS_SFTP_MAX_SESSIONS_PER_USER", "20")]);
    let work = p.tmp.path().join("uploads");
    std::fs::create_dir_all(&work).unwrap();
    // Twenty different files of 1-3 MiB, made of deterministic pseudo-random bytes.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..20 {
        let len = (1 << 20) + i * 100_003;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(work.join(format!("part-{i}.bin")), bytes).unwrap();
    }
    let clients: Vec<_> = (0..20)
        .map(|i| {
            let (work, key) = (work.clone(), key.clone());
            let port = server.sftp;
            std::thread::spawn(move || {
                let dir = work.join(format!("c{i}"));
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::copy(
                    work.join(format!("part-{i}.bin")),
                    dir.join(format!("part-{i}.bin")),
                )
                .unwrap();
                sftp(
                    port,
                    &key,
                    "many",
                    &dir,
                    &format!("put part-{i}.bin\n"),
                    &[],
                )
            })
        })
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        let out = c.join().unwrap();
        assert!(
            out.status.success(),
            "client {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for i in 0..20 {
        let name = format!("part-{i}.bin");
        assert_eq!(
            sha256(&raw.join("many").join(&name)),
            sha256(&work.join(&name)),
            "{name}"
        );
    }
}

#[test]
fn an_upload_killed_midway_leaves_no_file_and_no_load() {
    killed_upload(false);
}

#[test]
fn an_upload_killed_midway_on_s3() {
    killed_upload(true);
}

fn killed_upload(s3: bool) {
    let Some((p, raw, s3_server)) = project_on(s3) else {
        return;
    };
    // Where the upload's bytes land on disk: the store's staged parts, or the S3
    // server's parts of the multipart upload.
    let disk = s3_server
        .as_ref()
        .map_or_else(|| p.dir.join("store"), |s| s.root.path().to_path_buf());
    let key = add_user(&p, "killer", "killer", &["-t", "ed25519"]);
    let server = start(&p);
    let work = p.tmp.path().join("kill");
    std::fs::create_dir_all(&work).unwrap();
    // A big CSV: the sample's rows repeated (about 400 MB), so the kill lands mid-upload.
    {
        use std::io::Write;
        let text = sample_text();
        let (header, body) = text.split_once('\n').unwrap();
        let mut f = std::io::BufWriter::new(std::fs::File::create(work.join("big.csv")).unwrap());
        writeln!(f, "{header}").unwrap();
        for _ in 0..480 {
            f.write_all(body.as_bytes()).unwrap();
        }
    }
    let mut child = upload_in_background(
        &p,
        server.sftp,
        &key,
        "killer",
        &work,
        "big.csv",
        Stdio::null(),
    );
    // Kill once 16 MiB of it reached the server's disk (two S3 parts): mid-upload.
    let before = bytes_under(&disk);
    let deadline = Instant::now() + Duration::from_secs(120);
    while bytes_under(&disk) < before + (16 << 20) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the upload ended before it was killed"
        );
        assert!(Instant::now() < deadline, "the upload never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The server noticed the session ended and aborted the upload.
    let audit = p.dir.join("audit.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&audit)
        .unwrap_or_default()
        .contains("aborted: session ended before close")
    {
        assert!(Instant::now() < deadline, "the upload was never aborted");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Nothing visible, nothing loaded.
    let out = sftp(server.sftp, &key, "killer", &work, "ls -la\n", &[]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(!listing.contains("big.csv"), "{listing}");
    assert!(!raw.join("killer/big.csv").exists());
    assert!(!raw.join("killer/big.csv.load.json").exists());
    assert_eq!(p.value("select count(*) from meta.loads"), "0");
}

/// The bytes of every file under `dir` (files vanishing while it is read count 0).
fn bytes_under(dir: &Path) -> u64 {
    files_under(dir)
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

/// Whether paramiko is installed (in CI it must be).
fn have_paramiko() -> bool {
    have_peer(
        "paramiko",
        Command::new("python3").args(["-c", "import paramiko"]),
        "pip install paramiko",
    )
}

/// Runs a paramiko script of `tests/peers` as `user` with `key` (and the sample as its
/// local file); returns the JSON it printed.
fn paramiko(script: &str, port: u16, user: &str, key: &Path) -> serde_json::Value {
    let out = run_ok(
        Command::new("python3")
            .arg(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/peers")
                    .join(script),
            )
            .args([&port.to_string(), user])
            .arg(key)
            .arg(sample_path()),
        script,
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn paramiko_is_a_second_client() {
    paramiko_client(false);
}

#[test]
fn paramiko_on_s3() {
    paramiko_client(true);
}

fn paramiko_client(s3: bool) {
    if !have_paramiko() {
        return;
    }
    let Some((p, raw, _s3)) = project_on(s3) else {
        return;
    };
    let key = add_user(
        &p,
        "carol",
        "carol",
        &["-t", "rsa", "-b", "4096", "-m", "PEM"],
    );
    let server = start(&p);
    let seen = paramiko("paramiko_client.py", server.sftp, "carol", &key);
    assert_eq!(seen["size"], 842968);
    assert_eq!(seen["same"], true);
    assert_eq!(seen["escaped"], false);
    assert!(seen["listing"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("upload.csv")));
    assert!(!seen["after"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("renamed.txt")));
    let report = wait_for(&raw.join("carol/upload.csv.load.json"), &["loaded"]);
    assert!(report.contains("\"rows_loaded\": 2186"), "{report}");
}

#[test]
fn hostile_sftp_requests_are_refused_and_nothing_outside_the_home_changes() {
    if !have_paramiko() {
        return;
    }
    let Some((p, raw, _s3)) = project_on(false) else {
        return;
    };
    let key = add_user(&p, "mallory", "mallory", &["-t", "ed25519"]);
    // Another user's file, and the project's own files: what an escape would reach.
    std::fs::create_dir_all(raw.join("other")).unwrap();
    std::fs::write(raw.join("other/x.csv"), "someone else's upload").unwrap();
    let server = start(&p);
    let outside = |dir: &Path| -> BTreeMap<String, Vec<u8>> {
        let mut files = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                // What the upload's load writes: the tables, the lease, and what it
                // derives from the file (its line index, the summary of its changes).
                if rel.starts_with("store/raw/mallory")
                    || rel.starts_with("store/warehouse")
                    || rel.starts_with("store/index")
                    || rel.starts_with("store/leases")
                    || rel.ends_with(".jsonl")
                {
                    continue;
                }
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files.insert(rel, std::fs::read(&path).unwrap());
                }
            }
        }
        files
    };
    let before = outside(&p.dir);
    // What the attempts reach for exists (mallory's home is store/raw/mallory, so
    // ../../../citybooks.toml is the project's configuration), so only the jail can
    // refuse them.
    assert_eq!(raw, p.dir.join("store/raw"));
    assert!(p.dir.join("citybooks.toml").is_file());
    let seen = paramiko("sftp_attacks.py", server.sftp, "mallory", &key);
    let done: Vec<&String> = seen["attempts"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| *v != "refused")
        .map(|(k, _)| k)
        .collect();
    assert!(done.is_empty(), "carried out: {done:?}");
    assert_eq!(seen["attempts"].as_object().unwrap().len(), 21);
    // The upload itself worked and was loaded; its report is the server's own.
    let report = wait_for(&raw.join("mallory/mine.csv.load.json"), &["loaded"]);
    assert!(report.contains("\"rows_loaded\": 2186"), "{report}");
    assert!(!raw.join("mallory/other.csv.load.json").exists());
    let after = outside(&p.dir);
    let changed: Vec<&String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert!(changed.is_empty(), "changed outside the home: {changed:?}");
}

#[test]
fn an_upload_left_without_its_report_is_loaded_when_serve_starts() {
    let p = Project::new();
    add_user(&p, "dora", "dora", &["-t", "ed25519"]);
    // What a server killed after publishing an upload and before its load reported
    // leaves behind; and an upload that was reported, which stays as it is.
    let home = p.dir.join("store/raw/dora");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::copy(sample_path(), home.join("ledger.csv")).unwrap();
    std::fs::write(home.join("old.csv"), "an old upload").unwrap();
    let old_report = r#"{"status": "failed", "error": "kept as it was"}"#;
    std::fs::write(home.join("old.csv.load.json"), old_report).unwrap();
    // The part a killed upload left (object_store stages `name#N`), an hour old.
    let part = std::fs::File::create(home.join("killed.csv#1")).unwrap();
    part.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    drop(part);
    let server = start(&p);
    assert!(
        server
            .banner
            .contains("1 upload(s) have no load report (the server stopped before loading them): queued again"),
        "{}",
        server.banner
    );
    let report = wait_for(&home.join("ledger.csv.load.json"), &["loaded"]);
    assert!(report.contains("\"rows_loaded\": 2186"), "{report}");
    assert_eq!(
        std::fs::read_to_string(home.join("old.csv.load.json")).unwrap(),
        old_report
    );
    assert_eq!(p.value("select count(*) from meta.loads"), "1");
    // serve swept the part at start (older than the idle timeout), and left the rest.
    let deadline = Instant::now() + Duration::from_secs(20);
    while home.join("killed.csv#1").exists() {
        assert!(Instant::now() < deadline, "the killed upload's part stayed");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(home.join("ledger.csv").exists() && home.join("old.csv").exists());
}

#[test]
fn file_size_quota_and_session_limits_hold() {
    limits(false);
}

#[test]
fn file_size_and_quota_limits_on_s3() {
    limits(true);
}

fn limits(s3: bool) {
    let Some((p, raw, _s3)) = project_on(s3) else {
        return;
    };
    let key = add_user(&p, "dave", "dave", &["-t", "ed25519"]);
    let server = start_with(
        &p,
        &[
            ("CITYBOOKS_SFTP_MAX_FILE_MIB", "1"),
            ("CITYBOOKS_SFTP_QUOTA_MIB", "3"),
            ("CITYBOOKS_SFTP_MAX_SESSIONS_PER_USER", "1"),
        ],
    );
    let work = p.tmp.path().join("limits");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("big.bin"), vec![7u8; 2 << 20]).unwrap();
    std::fs::write(work.join("part.bin"), vec![8u8; 900 << 10]).unwrap();
    // Over the file limit: refused, and nothing truncated is left behind.
    let out = sftp(server.sftp, &key, "dave", &work, "put big.bin\n", &[]);
    assert!(!out.status.success());
    assert!(!raw.join("dave/big.bin").exists());
    // Under the file limit but over the quota on the fourth file.
    for i in 0..3 {
        let out = sftp(
            server.sftp,
            &key,
            "dave",
            &work,
            &format!("put part.bin p{i}.bin\n"),
            &[],
        );
        assert!(
            out.status.success(),
            "file {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = sftp(
        server.sftp,
        &key,
        "dave",
        &work,
        "put part.bin p3.bin\n",
        &[],
    );
    assert!(!out.status.success(), "the quota is full");
    assert!(!raw.join("dave/p3.bin").exists());
    // Replacing a file counts the new size, not both.
    let out = sftp(
        server.sftp,
        &key,
        "dave",
        &work,
        "put part.bin p0.bin\n",
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One session at a time: a second client is refused while the first is open.
    let mut first = sftp_command(server.sftp, &key)
        .current_dir(&work)
        .arg("dave@127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first session's SFTP channel is open (and counted) once it answers a command.
    {
        use std::io::{BufRead, Write};
        let stdin = first.stdin.as_mut().unwrap();
        stdin.write_all(b"pwd\n").unwrap();
        stdin.flush().unwrap();
        let stdout = first.stdout.take().unwrap();
        let (answered, answer) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                if line.is_ok_and(|l| l.contains("Remote working directory")) {
                    let _ = answered.send(());
                }
            }
        });
        answer
            .recv_timeout(Duration::from_secs(30))
            .expect("the first session never answered");
    }
    let audit = p.dir.join("audit.jsonl");
    let session = || {
        sftp(server.sftp, &key, "dave", &work, "ls\n", &[])
            .status
            .success()
    };
    assert!(!session(), "a second session is refused");
    // Once the first ends, a session is allowed again.
    drop(first.stdin.take());
    first.wait().unwrap();
    wait_until(30, "the limit outlived the first session", session);
    let log = std::fs::read_to_string(&audit).unwrap();
    assert!(
        log.contains("refused: too many sessions")
            && log.contains("aborted: upload refused: over the limit"),
        "{log}"
    );
}

#[test]
fn sigterm_lets_an_upload_in_flight_finish_then_stops() {
    let p = Project::new();
    let key = add_user(&p, "erin", "erin", &["-t", "ed25519"]);
    let mut server = start(&p);
    let work = p.tmp.path().join("term");
    std::fs::create_dir_all(&work).unwrap();
    let payload = work.join("payload.bin");
    std::fs::write(&payload, vec![42u8; 300 << 20]).unwrap();
    let client = upload_in_background(
        &p,
        server.sftp,
        &key,
        "erin",
        &work,
        "payload.bin",
        Stdio::piped(),
    );
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = client.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the upload in flight finished: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = server.child.wait().unwrap();
    assert!(status.success(), "serve stops cleanly: {status}");
    assert_eq!(
        sha256(&p.dir.join("store/raw/erin/payload.bin")),
        sha256(&payload)
    );
}

#[test]
fn an_idle_session_is_closed() {
    let p = Project::new();
    let key = add_user(&p, "idle", "idle", &["-t", "ed25519"]);
    let (server, log) = p.serve_logged(&[
        ("CITYBOOKS_SFTP_IDLE_TIMEOUT_SECS", "1"),
        ("CITYBOOKS_LOG", "warn,citybooks_sftp=info"),
    ]);
    let mut client = sftp_command(server.sftp, &key)
        .arg("idle@127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The client logs in and sends nothing; the server closes the connection after 1 s
    // without traffic and says so, and the client's next command finds it gone.
    let audit = p.dir.join("audit.jsonl");
    wait_for_text(
        &audit,
        r#""operation":"login""#,
        30,
        "the client never logged in",
    );
    wait_for_text(
        &log,
        "closed a connection idle for 1 s",
        30,
        "the idle connection stayed open",
    );
    {
        use std::io::Write;
        let stdin = client.stdin.as_mut().unwrap();
        let _ = stdin.write_all(b"ls\n");
        let _ = stdin.flush();
    }
    drop(client.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = client.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the client did not notice the closed session"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        !status.success(),
        "the idle session was closed by the server"
    );
}
