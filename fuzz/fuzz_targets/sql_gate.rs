//! The read-only gate (`citybooks_query::plan` / `verify_read_only`).
//!
//! A session like citybooks' own (`Warehouse::session_config()`: catalog `citybooks`,
//! schemas `report` and `meta`, information_schema on), over small in-memory tables
//! with the warehouse's schemas, two rows each. The input is one SQL text. Oracle:
//! * planning never panics;
//! * whatever `plan` accepts, DataFusion plans, and `verify_read_only` accepts both
//!   that plan and the accepted DataFrame's (refusing more is allowed);
//! * an accepted statement, executed (under `LIMIT 50`, with a timeout, skipped when it
//!   names a function that can multiply memory), leaves the catalogs, schemas, tables,
//!   table schemas, table contents, functions and session settings exactly as they
//!   were, and writes no file: the process runs in an empty temporary folder that must
//!   stay empty.
//!
//! A resource blow-up (a timeout or out-of-memory report from libFuzzer) is not a gate
//! bypass; it is reported as such (issue 12's memory budget is about those).

#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, RecordBatch};
use arrow::util::pretty::pretty_format_batches;
use citybooks_model::Table;
use citybooks_query::{plan, verify_read_only};
use citybooks_warehouse::{Warehouse, CATALOG};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use libfuzzer_sys::fuzz_target;

struct Fixture {
    rt: tokio::runtime::Runtime,
    ctx: SessionContext,
    dir: std::path::PathBuf,
    before: String,
}

/// Two rows of `table`, when every column type can be cast from integers.
fn rows(table: Table) -> Vec<Vec<RecordBatch>> {
    let schema = table.schema();
    let ints: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
    let columns: Option<Vec<ArrayRef>> = schema
        .fields()
        .iter()
        .map(|f| arrow::compute::cast(&ints, f.data_type()).ok())
        .collect();
    match columns.and_then(|c| RecordBatch::try_new(schema.clone(), c).ok()) {
        Some(batch) => vec![vec![batch]],
        None => vec![vec![]],
    }
}

/// Everything a statement could change, as text.
async fn snapshot(ctx: &SessionContext) -> String {
    let mut out = String::new();
    let mut catalogs = ctx.catalog_names();
    catalogs.sort();
    for c in catalogs {
        let catalog = ctx.catalog(&c).unwrap();
        let mut schemas = catalog.schema_names();
        schemas.sort();
        for s in schemas {
            let schema = catalog.schema(&s).unwrap();
            let mut tables = schema.table_names();
            tables.sort();
            for t in tables {
                let provider = schema.table(&t).await.ok().flatten();
                out.push_str(&format!("{c}.{s}.{t}: "));
                if let Some(p) = provider {
                    out.push_str(&format!("{:?} {:?}\n", p.table_type(), p.schema()));
                    if s != "information_schema" {
                        let rows = ctx
                            .sql(&format!("select * from \"{c}\".\"{s}\".\"{t}\""))
                            .await
                            .unwrap()
                            .collect()
                            .await
                            .unwrap();
                        out.push_str(&pretty_format_batches(&rows).unwrap().to_string());
                    }
                }
                out.push('\n');
            }
        }
    }
    let state = ctx.state();
    let mut entries: Vec<String> = state
        .config()
        .options()
        .entries()
        .into_iter()
        .map(|e| format!("{}={:?}", e.key, e.value))
        .collect();
    entries.sort();
    out.push_str(&entries.join("\n"));
    let mut udfs: Vec<&String> = state.scalar_functions().keys().collect();
    udfs.sort();
    let mut udafs: Vec<&String> = state.aggregate_functions().keys().collect();
    udafs.sort();
    let mut udwfs: Vec<&String> = state.window_functions().keys().collect();
    udwfs.sort();
    out.push_str(&format!("\n{udfs:?}\n{udafs:?}\n{udwfs:?}\n"));
    out
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let config = Warehouse::session_config().with_target_partitions(1);
        let ctx = SessionContext::new_with_config(config);
        let catalog = ctx.catalog(CATALOG).unwrap();
        for name in ["report", "meta"] {
            let schema = Arc::new(MemorySchemaProvider::new());
            for table in Table::all().into_iter().filter(|t| t.schema_name() == name) {
                let mem = MemTable::try_new(table.schema(), rows(table)).unwrap();
                datafusion::catalog::SchemaProvider::register_table(
                    schema.as_ref(),
                    table.name().to_string(),
                    Arc::new(mem),
                )
                .unwrap();
            }
            catalog.register_schema(name, schema).unwrap();
        }
        // Run in an empty folder of our own: no accepted statement may write a file.
        let dir = std::env::temp_dir().join(format!("citybooks-fuzz-gate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::env::set_current_dir(&dir).unwrap();
        let before = rt.block_on(snapshot(&ctx));
        Fixture {
            rt,
            ctx,
            dir,
            before,
        }
    })
}

/// Functions whose result can be far larger than their input: such statements are
/// planned and checked, not executed.
const AMPLIFIERS: &[&str] = &[
    "repeat",
    "pad",
    "generate_series",
    "range",
    "unnest",
    "_agg",
    "recursive",
    "array_",
    "make_",
    "overlay",
];

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let f = fixture();
    let ctx = &f.ctx;
    let accepted = f.rt.block_on(async {
        let gate = plan(ctx, sql).await;
        let planned = ctx.state().create_logical_plan(sql).await;
        match (&gate, &planned) {
            (Ok(df), Ok(p)) => {
                verify_read_only(df.logical_plan()).expect("an accepted plan fails verify");
                verify_read_only(p).expect("plan() accepted what verify_read_only refuses");
            }
            (Ok(_), Err(e)) => panic!("accepted what does not plan ({e}): {sql:?}"),
            // Refusing more than verify_read_only would is allowed (plan() may check the
            // statement's kind before planning); what matters is what it lets through.
            (Err(e), _) => {
                let _ = e.to_string();
            }
        }
        gate.ok()
    });
    let Some(df) = accepted else {
        return;
    };
    let lower = sql.to_ascii_lowercase();
    let cheap = sql.len() < 2000 && !AMPLIFIERS.iter().any(|a| lower.contains(a));
    if cheap {
        f.rt.block_on(async {
            if let Ok(limited) = df.limit(0, Some(50)) {
                let _ = tokio::time::timeout(Duration::from_secs(2), limited.collect()).await;
            }
        });
    }
    // Nothing changed, nothing written.
    let after = f.rt.block_on(snapshot(ctx));
    assert!(after == f.before, "{sql:?} changed the session:\n{after}");
    let written: Vec<_> = std::fs::read_dir(&f.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(written.is_empty(), "{sql:?} wrote {written:?}");
});
