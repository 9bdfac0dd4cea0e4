//! The same warehouse on S3: a real S3-compatible server (`s3s-fs`, installed by
//! `.ci/run` with `cargo install s3s-fs@0.14.1 --locked --features binary`) started on
//! loopback by the test. Only configuration changes; the code path is the same.

mod common;

use common::*;

#[test]
fn the_warehouse_works_the_same_on_s3() {
    let Some(server) = start_s3() else { return };
    let p = Project::new();
    server.configure(&p);
    let local = Project::new();
    local.load(&[&sample_path()]);

    let r = &p.load(&[&sample_path()])[0];
    assert_eq!(r["status"], "loaded", "{r}");
    assert!(r["source_file"].as_str().unwrap().starts_with("raw/cli/"));
    assert_eq!(p.fingerprint(), local.fingerprint());
    assert!(server
        .store_dir()
        .join("warehouse/report/transaction/_delta_log")
        .exists());
    // The same content again, from an S3 object outside the store's prefix: a no-op.
    std::fs::create_dir_all(server.root.path().join("books/incoming")).unwrap();
    std::fs::copy(
        sample_path(),
        server.root.path().join("books/incoming/sample.csv"),
    )
    .unwrap();
    let r = &p.load_args(&["s3://books/incoming/sample.csv"])[0];
    assert_eq!(r["status"], "unchanged", "{r}");
    // A revised file, already inside the store: loaded in place, then time travel.
    let (header, rows) = sample_records();
    let f = p.file("weekly.csv", &api_csv(&header, &rows[..100]));
    std::fs::create_dir_all(server.store_dir().join("raw/finance")).unwrap();
    std::fs::copy(&f, server.store_dir().join("raw/finance/weekly.csv")).unwrap();
    // 100 rows of a year of 2,186: past the shrink guard, so replaced on purpose.
    let out = p.ok(&[
        "load",
        "--json",
        "--replace-years",
        "s3://books/city/raw/finance/weekly.csv",
    ]);
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
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
