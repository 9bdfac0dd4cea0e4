//! The same warehouse on S3: a real S3-compatible server (`s3s-fs`, installed by
//! `.ci/run` with `cargo install s3s-fs@0.14.1 --locked --features binary`) started on
//! loopback by the test. Only configuration changes; the code path is the same.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct S3Server {
    child: Child,
    port: u16,
    _root: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn s3s_fs() -> Option<std::path::PathBuf> {
    let candidates = [
        std::env::var_os("CARGO_HOME").map(|h| std::path::PathBuf::from(h).join("bin/s3s-fs")),
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cargo/bin/s3s-fs")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .or_else(|| {
            let out = Command::new("which").arg("s3s-fs").output().ok()?;
            out.status
                .success()
                .then(|| std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        })
}

fn start_s3() -> Option<S3Server> {
    let Some(bin) = s3s_fs() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install s3s-fs (see .ci/run)"
        );
        eprintln!("s3s-fs is not installed: skipping the S3 test (cargo install s3s-fs@0.14.1 --locked --features binary)");
        return None;
    };
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("books")).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            "citybooks",
            "--secret-key",
            "citybooks-secret",
        ])
        .arg(root.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "s3s-fs did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(S3Server {
        child,
        port,
        _root: root,
    })
}

#[test]
fn the_warehouse_works_the_same_on_s3() {
    let Some(server) = start_s3() else { return };
    let p = Project::new();
    std::fs::write(
        p.dir.join("citybooks.toml"),
        format!(
            "[store]\nurl = \"s3://books/city\"\nendpoint = \"http://127.0.0.1:{}\"\nregion = \"us-east-1\"\naccess_key_id = \"citybooks\"\nsecret_access_key = \"citybooks-secret\"\nallow_http = true\n",
            server.port
        ),
    )
    .unwrap();
    let local = Project::new();
    local.load(&[&sample_path()]);

    let r = &p.load(&[&sample_path()])[0];
    assert_eq!(r["status"], "loaded", "{r}");
    assert!(r["source_file"].as_str().unwrap().starts_with("raw/cli/"));
    assert_eq!(p.fingerprint(), local.fingerprint());
    assert!(server
        ._root
        .path()
        .join("books/city/warehouse/report/transaction/_delta_log")
        .exists());
    // The same content again, from an S3 object outside the store's prefix: a no-op.
    std::fs::create_dir_all(server._root.path().join("books/incoming")).unwrap();
    std::fs::copy(
        sample_path(),
        server._root.path().join("books/incoming/sample.csv"),
    )
    .unwrap();
    let r = &p.load_args(&["s3://books/incoming/sample.csv"])[0];
    assert_eq!(r["status"], "unchanged", "{r}");
    // A revised file, already inside the store: loaded in place, then time travel.
    let (header, rows) = sample_records();
    let f = p.file("weekly.csv", &api_csv(&header, &rows[..100]));
    std::fs::create_dir_all(server._root.path().join("books/city/raw/finance")).unwrap();
    std::fs::copy(
        &f,
        server
            ._root
            .path()
            .join("books/city/raw/finance/weekly.csv"),
    )
    .unwrap();
    let r = &p.load_args(&["s3://books/city/raw/finance/weekly.csv"])[0];
    assert_eq!(r["status"], "loaded", "{r}");
    assert_eq!(r["source_file"], "raw/finance/weekly.csv");
    assert_eq!(p.value("select count(*) from report.transaction"), "100");
    assert_eq!(
        p.rows_as_of("select count(*) from report.transaction", Some(1))[0][0],
        "2186"
    );
    p.ok(&["destroy", "--yes"]);
    assert!(p.ok(&["status"]).contains("no loads yet"));
}
