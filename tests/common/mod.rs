//! Helpers shared by the end-to-end tests: each test runs the real `citybooks` binary
//! on a fresh project in a temporary folder, with the real sample committed in `data/`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_citybooks");

/// The real sample (API export, fiscal year 2025).
pub fn sample_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/datasf-fy2025-sample.csv")
}

pub fn sample_text() -> String {
    std::fs::read_to_string(sample_path()).expect("the sample is committed in data/")
}

/// A project in a temporary folder.
pub struct Project {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

impl Project {
    pub fn new() -> Project {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("books");
        let out = Command::new(BIN).arg("init").arg(&dir).output().unwrap();
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Project { tmp, dir }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(&self.dir)
            .env_remove("CITYBOOKS_FAILPOINT")
            .env_remove("CITYBOOKS_PROJECT");
        c
    }

    /// Runs `citybooks ARGS`, returns the output whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Runs `citybooks ARGS` and insists it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "citybooks {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Writes `text` to a file in the temporary folder and returns its path.
    pub fn file(&self, name: &str, text: &[u8]) -> PathBuf {
        let p = self.tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Loads files; returns the JSON load reports.
    pub fn load(&self, paths: &[&Path]) -> Vec<serde_json::Value> {
        let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        self.load_args(&paths.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Loads sources given as text (local paths or s3:// URLs).
    pub fn load_args(&self, sources: &[&str]) -> Vec<serde_json::Value> {
        let mut args = vec!["load", "--json"];
        args.extend_from_slice(sources);
        self.ok(&args)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Runs a query; returns the rows as CSV records (header dropped).
    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        self.rows_as_of(sql, None)
    }

    pub fn rows_as_of(&self, sql: &str, load: Option<i64>) -> Vec<Vec<String>> {
        let mut args = vec!["query", "--format", "csv", sql];
        let n;
        if let Some(l) = load {
            n = l.to_string();
            args.extend(["--as-of-load", n.as_str()]);
        }
        let text = self.ok(&args);
        let mut r = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(text.as_bytes());
        r.records()
            .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
            .collect()
    }

    /// One value.
    pub fn value(&self, sql: &str) -> String {
        self.rows(sql)
            .first()
            .and_then(|r| r.first().cloned())
            .unwrap_or_default()
    }

    /// A fingerprint of the whole warehouse: what a reader sees.
    pub fn fingerprint(&self) -> BTreeMap<String, Vec<Vec<String>>> {
        let mut m = BTreeMap::new();
        m.insert(
            "per_year".into(),
            self.rows("select fiscal_year, count(*), sum(amount), count(distinct transaction_id) from report.transaction group by fiscal_year order by fiscal_year"),
        );
        m.insert(
            "per_member".into(),
            self.rows("select p.department, ty.character, fu.fund, f.revenue_or_spending, sum(t.amount), count(*) from report.transaction t join report.program p on t.program_id = p.program_id join report.type ty on t.type_id = ty.type_id join report.fund fu on t.fund_id = fu.fund_id join report.finance f on t.finance_id = f.finance_id group by 1,2,3,4 order by 1,2,3,4"),
        );
        m.insert("dangling".into(), self.rows("select count(*) from report.transaction t left join report.program p on t.program_id = p.program_id left join report.type ty on t.type_id = ty.type_id left join report.fund fu on t.fund_id = fu.fund_id where p.program_id is null or ty.type_id is null or fu.fund_id is null"));
        m.insert("dup_members".into(), self.rows("select (select count(*) - count(distinct program_id) from report.program) + (select count(*) - count(distinct type_id) from report.type) + (select count(*) - count(distinct fund_id) from report.fund)"));
        m
    }
}

/// A running `citybooks serve` of a test project: every part on loopback, on ports
/// the system picked. Killed when dropped.
pub struct Served {
    pub child: Child,
    pub sftp: u16,
    pub sql: u16,
    pub http: u16,
    /// What the server printed before it was ready.
    pub banner: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// The base URL of the HTTP server.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// Waits (up to `seconds`) until the `/metrics` line starting with `line_start`
    /// reaches `at_least`; panics naming `what` if it never does.
    pub fn wait_for_metric(&self, line_start: &str, at_least: u64, seconds: u64, what: &str) {
        wait_until(seconds, what, || self.metric(line_start) >= at_least);
    }

    /// The value of the `/metrics` line starting with `line_start` (0 if none yet).
    pub fn metric(&self, line_start: &str) -> u64 {
        let text = ureq::get(&self.url("/metrics"))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(line_start))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0)
    }
}

/// Every file under `dir`, at any depth (none if `dir` does not exist; a file or folder
/// that vanishes while it walks is left out).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(_) => files.push(entry.path()),
                Err(_) => {}
            }
        }
    }
    files
}

/// Polls `done` every 50 ms until it holds; after `seconds` panics with `failure()`
/// (called then, so it can show what things look like at the deadline).
pub fn poll_until(seconds: u64, mut done: impl FnMut() -> bool, failure: impl FnOnce() -> String) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        if Instant::now() >= deadline {
            panic!("{}", failure());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `done` every 50 ms until it holds; panics naming `what` after `seconds`.
pub fn wait_until(seconds: u64, what: &str, done: impl FnMut() -> bool) {
    poll_until(seconds, done, || format!("{what} (waited {seconds} s)"));
}

/// Waits (up to `seconds`) until the file at `path` contains `text`; panics with
/// `what` and the file's text if it never does.
pub fn wait_for_text(path: &Path, text: &str, seconds: u64, what: &str) {
    let read = || std::fs::read_to_string(path).unwrap_or_default();
    poll_until(
        seconds,
        || read().contains(text),
        || {
            format!(
                "{what}: no {text:?} in {} within {seconds} s:\n{}",
                path.display(),
                read()
            )
        },
    );
}

/// The lines `output` writes, as they come. The reading goes on to the end even when
/// the receiver is gone, so the writer never blocks on a full pipe.
pub fn lines_of(output: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::{BufRead, BufReader};
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Reads `rx` until a line for which `found` holds, within 120 s; returns every line
/// read, that one last. Panics naming `what`, with the lines read, when the lines end
/// or the deadline passes first.
pub fn read_until(
    rx: &std::sync::mpsc::Receiver<String>,
    what: &str,
    found: impl Fn(&str) -> bool,
) -> Vec<String> {
    use std::sync::mpsc::RecvTimeoutError;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = found(&line);
                lines.push(line);
                if done {
                    return lines;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "{what}: not within 120 s; it printed:\n{}",
                    lines.join("\n")
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!("{what}: it ended first; it printed:\n{}", lines.join("\n"))
            }
        }
    }
}

/// Waits (up to 120 s) for a line containing `text`; returns it.
pub fn wait_for_line(rx: &std::sync::mpsc::Receiver<String>, text: &str, what: &str) -> String {
    let mut lines = read_until(rx, &format!("{what}: a line with {text:?}"), |l| {
        l.contains(text)
    });
    lines.pop().unwrap()
}

/// Reads a server's banner up to its `ready` line (within 120 s); the port of each
/// part from its "listening on" line.
pub fn read_banner(child: &mut Child) -> (String, BTreeMap<&'static str, u16>) {
    let rx = lines_of(child.stdout.take().unwrap());
    let lines = read_until(&rx, "the server's ready line", |l| l.starts_with("ready"));
    let mut ports = BTreeMap::new();
    for line in lines.iter().filter(|l| l.contains("listening on")) {
        let port: u16 = line.rsplit(':').next().unwrap().trim().parse().unwrap();
        for part in ["SFTP", "SQL", "HTTP"] {
            if line.contains(part) {
                ports.insert(part, port);
            }
        }
    }
    let mut banner = lines.join("\n");
    banner.push('\n');
    (banner, ports)
}

impl Project {
    /// Starts `citybooks serve` with `env` added to the environment.
    pub fn serve(&self, env: &[(&str, &str)]) -> Served {
        Served::start(self.serve_command(env))
    }

    /// [`Project::serve`], with the server's log in `serve.log` of the test's folder;
    /// returns the log's path too.
    pub fn serve_logged(&self, env: &[(&str, &str)]) -> (Served, PathBuf) {
        let log = self.tmp.path().join("serve.log");
        let file = std::fs::File::create(&log).unwrap();
        (Served::start_logging(self.serve_command(env), file), log)
    }

    fn serve_command(&self, env: &[(&str, &str)]) -> Command {
        let mut cmd = self.cmd();
        cmd.env("CITYBOOKS_SFTP_LISTEN", "127.0.0.1")
            .env("CITYBOOKS_SQL_LISTEN", "127.0.0.1")
            .env("CITYBOOKS_HTTP_LISTEN", "127.0.0.1")
            .envs(env.iter().copied())
            .arg("serve");
        cmd
    }
}

impl Served {
    /// Runs `cmd` (`serve` or `demo`) with every part on a port the system picks, and
    /// returns once it printed `ready`.
    pub fn start(cmd: Command) -> Served {
        Self::start_logging(cmd, Stdio::null())
    }

    /// [`Served::start`], with the server's log (its stderr) going to `log`.
    pub fn start_logging(mut cmd: Command, log: impl Into<Stdio>) -> Served {
        let mut child = cmd
            .args(["--sftp-port", "0", "--sql-port", "0", "--http-port", "0"])
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let (banner, ports) = read_banner(&mut child);
        let port = |part| ports.get(part).copied().unwrap_or(0);
        Served {
            sftp: port("SFTP"),
            sql: port("SQL"),
            http: port("HTTP"),
            banner,
            child,
        }
    }
}

/// Runs `command` to its end and returns its output; fails the test with `what` and
/// the command's stderr when it does not succeed.
pub fn run_ok(command: &mut Command, what: &str) -> Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Whether a real peer a test needs is installed (`probe` succeeds). Outside CI a
/// missing peer skips the test with a note; in CI (`CI` set) it fails it.
pub fn have_peer(what: &str, probe: &mut Command, install: &str) -> bool {
    let ok = probe
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install {what} (see .ci/run)"
        );
        eprintln!("{what} is not installed: skipping ({install})");
    }
    ok
}

/// Makes an SSH key pair with OpenSSH's `ssh-keygen` in the project's temporary folder;
/// returns the private key's path (the public key is beside it, `.pub`).
pub fn keygen(p: &Project, name: &str, args: &[&str]) -> PathBuf {
    let path = p.tmp.path().join(name);
    let out = Command::new("ssh-keygen")
        .args(args)
        .args(["-q", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .output()
        .expect("ssh-keygen (openssh-client) is installed by .ci/run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// Cents of a decimal text, computed without the project's parser ("-12.5" -> -1250).
pub fn cents(text: &str) -> i128 {
    let t = text.trim().replace([',', '$'], "");
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r.to_string()),
        None => (false, t),
    };
    let (int, frac) = t.split_once('.').unwrap_or((&t, ""));
    let mut frac = frac.to_string();
    while frac.len() < 2 {
        frac.push('0');
    }
    let v: i128 = int.parse::<i128>().unwrap_or(0) * 100 + frac[..2].parse::<i128>().unwrap();
    if neg {
        -v
    } else {
        v
    }
}

/// The sample parsed as header + records.
pub fn sample_records() -> (Vec<String>, Vec<Vec<String>>) {
    let text = sample_text();
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let header = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

/// Writes records as an API-dialect CSV (every field quoted).
pub fn api_csv(header: &[String], rows: &[Vec<String>]) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .from_writer(Vec::new());
    w.write_record(header).unwrap();
    for r in rows {
        w.write_record(r).unwrap();
    }
    w.into_inner().unwrap()
}

/// Index of a column in the sample's header.
pub fn col(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

/// `rows` (of the sample's `header`) as rows of fiscal year `year`.
pub fn in_year(header: &[String], rows: &[Vec<String>], year: i32) -> Vec<Vec<String>> {
    let fy = col(header, "fiscal_year");
    rows.iter()
        .map(|r| {
            let mut r = r.clone();
            r[fy] = year.to_string();
            r
        })
        .collect()
}

/// A real S3-compatible server (`s3s-fs`) on loopback, with a bucket `books`.
pub struct S3Server {
    child: Child,
    pub port: u16,
    pub root: tempfile::TempDir,
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

pub fn start_s3() -> Option<S3Server> {
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
    // s3s-fs binds port 0 and logs the address it got ("server is running at ...").
    let mut child = Command::new(bin)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--access-key",
            "citybooks",
            "--secret-key",
            "citybooks-secret",
        ])
        .arg(root.path())
        .env("RUST_LOG", "s3s_fs=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stdout.take().unwrap());
    let line = wait_for_line(&lines, "server is running at http://", "s3s-fs");
    let address = line.split("http://").nth(1).unwrap();
    let port: u16 = address.rsplit(':').next().unwrap().trim().parse().unwrap();
    Some(S3Server { child, port, root })
}

impl S3Server {
    /// Points project `p` at `s3://books/city` on this server.
    pub fn configure(&self, p: &Project) {
        std::fs::write(
            p.dir.join("citybooks.toml"),
            format!(
                "[store]\nurl = \"s3://books/city\"\nendpoint = \"http://127.0.0.1:{}\"\nregion = \"us-east-1\"\naccess_key_id = \"citybooks\"\nsecret_access_key = \"citybooks-secret\"\nallow_http = true\n",
                self.port
            ),
        )
        .unwrap();
    }

    /// The folder holding the project's store on the server's disk.
    pub fn store_dir(&self) -> PathBuf {
        self.root.path().join("books/city")
    }
}

/// Adds SQL user `name` with `password` (given on stdin).
pub fn add_sql_user(p: &Project, name: &str, password: &str) {
    let mut child = p
        .cmd()
        .args(["sql-user", "add", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A project with the sample loaded and one SQL user, served with `env` added to the
/// environment.
pub fn served_sample(user: &str, password: &str, env: &[(&str, &str)]) -> (Project, Served) {
    let p = Project::new();
    p.load(&[&sample_path()]);
    add_sql_user(&p, user, password);
    let s = p.serve(env);
    (p, s)
}

/// `psql` without a password prompt: `password` None sends none.
pub fn psql(port: u16, user: &str, password: Option<&str>, extra: &[&str]) -> Output {
    let mut c = Command::new("psql");
    c.env_remove("PGPASSWORD")
        .env("PGCONNECT_TIMEOUT", "10")
        .args(["-w", "-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
        .args(["-p", &port.to_string(), "-U", user, "-d", "citybooks"])
        .args(extra);
    if let Some(pw) = password {
        c.env("PGPASSWORD", pw);
    }
    c.output().unwrap()
}

/// GET `path`: status and JSON body.
pub fn http_get(s: &Served, path: &str) -> (u16, serde_json::Value) {
    match ureq::get(&s.url(path)).call() {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap()),
        Err(e) => panic!("{path}: {e}"),
    }
}

/// Percent-encodes `s` for a URL query.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Makes a key pair `key_name` with ssh-keygen and adds its public key to `user`;
/// returns the private key's path.
pub fn add_user(p: &Project, user: &str, key_name: &str, args: &[&str]) -> PathBuf {
    let key = keygen(p, key_name, args);
    p.ok(&[
        "user",
        "add",
        user,
        "--key",
        &format!("{}.pub", key.display()),
    ]);
    key
}

/// OpenSSH's sftp client with `key` on `port`, host keys not checked; the caller adds
/// its own options, then the destination (`user@127.0.0.1`) last.
pub fn sftp_command(port: u16, key: &Path) -> Command {
    let mut c = Command::new("sftp");
    c.args(["-P", &port.to_string(), "-i"]).arg(key).args([
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "ConnectTimeout=10",
    ]);
    c
}

/// Runs `sftp -b` with `commands` in `cwd`.
pub fn sftp(
    port: u16,
    key: &Path,
    user: &str,
    cwd: &Path,
    commands: &str,
    extra: &[&str],
) -> Output {
    let batch = cwd.join(format!("batch-{user}"));
    std::fs::write(&batch, commands).unwrap();
    sftp_command(port, key)
        .current_dir(cwd)
        .args(["-b"])
        .arg(&batch)
        .args(extra)
        .arg(format!("{user}@127.0.0.1"))
        .output()
        .expect("OpenSSH sftp (openssh-client) is installed by .ci/run")
}

/// A throw-away PostgreSQL server (Debian's `postgresql`: initdb and pg_ctl), on
/// loopback at a port of its own, its data in a temporary folder; stopped when
/// dropped. As root (CI) the server runs as the `postgres` user, as PostgreSQL
/// requires. The superuser `postgres` logs in over TCP with SCRAM and [`Postgres::PASSWORD`].
pub struct Postgres {
    pub port: u16,
    pub dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    _tmp: tempfile::TempDir,
}

impl Postgres {
    pub const PASSWORD: &'static str = "a throw-away password";

    /// The folder of Debian's PostgreSQL server programs (the newest installed), if any.
    pub fn bin_dir() -> Option<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
            .collect();
        dirs.sort();
        dirs.pop()
    }

    /// Whether the server is installed; outside CI a missing server skips the test.
    pub fn available() -> bool {
        let initdb = Self::bin_dir().unwrap_or_default().join("initdb");
        have_peer(
            "the PostgreSQL server",
            Command::new(initdb).arg("--version"),
            "apt-get install postgresql",
        )
    }

    /// Creates a cluster and starts it.
    pub fn start() -> Postgres {
        let bin = Self::bin_dir().expect("PostgreSQL server programs (apt-get install postgresql)");
        let tmp = tempfile::tempdir().unwrap();
        let as_postgres =
            String::from_utf8_lossy(&Command::new("id").arg("-u").output().unwrap().stdout).trim()
                == "0";
        let dir = tmp.path().join("pgdata");
        std::fs::create_dir(&dir).unwrap();
        let pwfile = tmp.path().join("pwfile");
        std::fs::write(&pwfile, Self::PASSWORD).unwrap();
        if as_postgres {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            let out = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .arg(&pwfile)
                .output()
                .unwrap();
            assert!(out.status.success(), "chown: {out:?}");
        }
        let mut pg = Postgres {
            port: 0,
            dir,
            bin,
            as_postgres,
            _tmp: tmp,
        };
        run_ok(
            pg.tool("initdb")
                .arg("-D")
                .arg(&pg.dir)
                .args([
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ])
                .arg(format!("--pwfile={}", pwfile.display())),
            "initdb",
        );
        pg.port = on_free_ports("the PostgreSQL server", |[port]| {
            pg.start_on(port).map(|()| port)
        });
        pg
    }

    /// A server program, run as the user that owns the cluster.
    fn tool(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    /// Starts the (stopped) server again, on its port.
    pub fn start_again(&self) {
        if let Err(log) = self.start_on(self.port) {
            panic!("pg_ctl start:\n{log}");
        }
    }

    /// Starts the server on `port`; the server's log if it did not start.
    fn start_on(&self, port: u16) -> Result<(), String> {
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c full_page_writes=off",
            self.dir.display()
        );
        let log = self.dir.join("server.log");
        let out = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(&self.dir)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .unwrap();
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        ))
    }

    /// Stops the server: "immediate" is a crash as far as the server's clients know.
    pub fn stop(&self, mode: &str) {
        let _ = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(&self.dir)
            .args(["-m", mode, "-w", "stop"])
            .output();
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs psql on the server as the superuser (`-X -v ON_ERROR_STOP=1 --csv -t`).
    pub fn psql(&self, sql: &str) -> Output {
        Command::new("psql")
            .env("PGPASSWORD", Self::PASSWORD)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--csv", "-t"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", "postgres", "-c", sql])
            .output()
            .expect("psql (postgresql-client) is installed by .ci/run")
    }

    /// The rows of a query, as CSV records; the query must succeed.
    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        let out = self.psql(sql);
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(out.stdout.as_slice())
            .records()
            .map(|r| r.unwrap().iter().map(str::to_string).collect())
            .collect()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop("immediate");
    }
}

/// Starts a program that must be told its ports because it cannot bind port 0 and
/// report the one it got (PostgreSQL, a Ballista executor): `start` gets `N` ports
/// free right now and returns the started program, or its log when it failed. Another
/// process may take a port between the pick and the program's bind; when the log says
/// so ("in use"), this picks new ports and tries again, up to five times. Any other
/// failure fails the test with `what` and the log.
pub fn on_free_ports<T, const N: usize>(
    what: &str,
    mut start: impl FnMut([u16; N]) -> Result<T, String>,
) -> T {
    let mut log = String::new();
    for _ in 0..5 {
        let listeners: Vec<TcpListener> = (0..N)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let ports: [u16; N] = std::array::from_fn(|i| listeners[i].local_addr().unwrap().port());
        drop(listeners);
        match start(ports) {
            Ok(started) => return started,
            Err(e) if e.to_lowercase().contains("in use") => log = e,
            Err(e) => panic!("{what} did not start:\n{e}"),
        }
    }
    panic!("{what}: five tries found a port taken each time:\n{log}")
}

/// A port of this host where nothing listens, kept so while the returned socket lives:
/// it is bound but not listening, so a connection to it is refused.
pub fn refusing_port() -> (socket2::Socket, u16) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let addr: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&addr.into()).unwrap();
    let port = socket.local_addr().unwrap().as_socket().unwrap().port();
    (socket, port)
}
