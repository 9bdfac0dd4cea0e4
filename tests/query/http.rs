//! The HTTP API front door (port 8080): `POST /api/sql` in every format, with clear
//! errors, timeouts, cancel and the bearer token.

use super::*;

/// POST a JSON body to `path`: status, content type and body bytes.
fn http_post(
    s: &Served,
    path: &str,
    body: serde_json::Value,
    token: Option<&str>,
) -> (u16, String, Vec<u8>) {
    let mut req = ureq::post(&s.url(path));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let r = match req.send_json(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{path}: {e}"),
    };
    let (status, kind) = (r.status(), r.content_type().to_string());
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut r.into_reader(), &mut bytes).unwrap();
    (status, kind, bytes)
}

#[test]
fn the_http_api_answers_sql_in_every_format_with_clear_errors() {
    let (_p, s) = served(&[("CITYBOOKS_HTTP_ROW_LIMIT", "1000")]);
    let (status, health) = http_get(&s, "/health");
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["loads"], 1);

    let sql = "select revenue_or_spending, count(*) as n, sum(amount) as total from report.transaction t join report.finance f using (finance_id) group by 1 order by 1";
    let (status, _, body) = http_post(&s, "/api/sql", serde_json::json!({ "sql": sql }), None);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let result: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let by = sample_by_side();
    assert_eq!(result["row_count"], 2);
    for row in result["rows"].as_array().unwrap() {
        let (sum, n) = by[row[0].as_str().unwrap()];
        assert_eq!(row[1], n as i64);
        assert_eq!(
            cents(row[2].as_str().unwrap()),
            sum,
            "decimals are exact strings"
        );
    }
    assert!(result["columns"][2]["type"]
        .as_str()
        .unwrap()
        .starts_with("Decimal128"));

    // The row limit.
    let (_, _, body) = http_post(
        &s,
        "/api/sql",
        serde_json::json!({"sql": "select * from report.transaction"}),
        None,
    );
    let result: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(result["row_count"], 1000);
    assert_eq!(result["truncated"], true);

    // Downloads are whole.
    let (status, kind, csv) = http_post(
        &s,
        "/api/sql",
        serde_json::json!({"sql": "select * from report.transaction", "format": "csv"}),
        None,
    );
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/csv"), "{kind}");
    assert_eq!(String::from_utf8_lossy(&csv).lines().count(), 2187);
    let (_, kind, parquet) = http_post(
        &s,
        "/api/sql",
        serde_json::json!({"sql": sql, "format": "parquet"}),
        None,
    );
    assert!(kind.contains("parquet"));
    assert!(parquet.starts_with(b"PAR1") && parquet.ends_with(b"PAR1"));
    let (_, kind, arrow) = http_post(
        &s,
        "/api/sql",
        serde_json::json!({"sql": sql, "format": "arrow"}),
        None,
    );
    assert!(kind.contains("arrow"));
    assert!(arrow.starts_with(b"ARROW1"));

    // Errors a person can act on.
    for (body, status, says) in [
        (
            serde_json::json!({"sql": "delete from report.fund"}),
            403,
            "read-only",
        ),
        (
            serde_json::json!({"sql": "select nope from report.fund"}),
            400,
            "nope",
        ),
        (
            serde_json::json!({"query": "select 1"}),
            400,
            "{\\\"sql\\\"",
        ),
    ] {
        let (got, _, answer) = http_post(&s, "/api/sql", body.clone(), None);
        let answer = String::from_utf8_lossy(&answer);
        assert_eq!(got, status, "{body}: {answer}");
        assert!(answer.contains(says), "{body}: {answer}");
    }
    let (status, body) = http_get(&s, "/api/nothing");
    assert_eq!(status, 404);
    assert!(body["error"].as_str().is_some());

    // Prometheus metrics count what happened.
    let metrics = ureq::get(&s.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("citybooks_http_requests_total{route=\"/api/sql\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "citybooks_http_request_duration_seconds_bucket{route=\"/api/sql\",le=\"+Inf\"}"
    ));
    assert!(
        metrics.contains("citybooks_warehouse_loads{status=\"loaded\"} 1\n"),
        "{metrics}"
    );
}

#[test]
fn http_queries_time_out_and_cancel() {
    let (_p, s) = served(&[("CITYBOOKS_HTTP_TIMEOUT_SECS", "2")]);
    let endless = "select sum(value) from generate_series(1, 50000000000)";
    let (status, _, body) = http_post(&s, "/api/sql", serde_json::json!({"sql": endless}), None);
    assert_eq!(status, 504, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("timeout_secs"));

    let (s2_status, body) = {
        let url = s.url("/api/queries/q-1");
        let canceller = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                std::thread::sleep(Duration::from_millis(200));
                match ureq::delete(&url).call() {
                    Ok(r) => return r.status(),
                    Err(_) if Instant::now() < deadline => continue,
                    Err(e) => panic!("{e}"),
                }
            }
        });
        let (status, _, body) = http_post(
            &s,
            "/api/sql",
            serde_json::json!({"sql": endless, "query_id": "q-1"}),
            None,
        );
        assert_eq!(canceller.join().unwrap(), 200);
        (status, body)
    };
    assert_eq!(s2_status, 400);
    assert!(String::from_utf8_lossy(&body).contains("cancelled"));
}

#[test]
fn the_api_token_is_required_when_set() {
    // Only the HTTP part runs: the others are switched off in the configuration.
    let (_p, s) = served(&[
        ("CITYBOOKS_HTTP_TOKEN", "s3cret-token"),
        ("CITYBOOKS_SFTP_ENABLED", "false"),
        ("CITYBOOKS_SQL_ENABLED", "false"),
    ]);
    assert_eq!((s.sftp, s.sql), (0, 0), "{}", s.banner);
    assert!(
        !s.banner.contains("SFTP") && !s.banner.contains("SQL"),
        "{}",
        s.banner
    );
    let (status, body) = http_get(&s, "/api/years");
    assert_eq!(status, 401);
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("Authorization: Bearer"));
    let (status, _, _) = http_post(
        &s,
        "/api/sql",
        serde_json::json!({"sql": "select 1"}),
        Some("wrong"),
    );
    assert_eq!(status, 401);
    let (status, _, body) = http_post(
        &s,
        "/api/sql",
        serde_json::json!({"sql": "select 1 as one"}),
        Some("s3cret-token"),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // The dashboard's page and health stay reachable (the page asks for the token).
    assert_eq!(http_get(&s, "/health").0, 200);
    assert_eq!(ureq::get(&s.url("/")).call().unwrap().status(), 200);
}
