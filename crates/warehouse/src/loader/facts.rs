//! The facts step: the second pass over the raw file, streamed as fact batches into one
//! Delta commit that replaces exactly the fiscal years the file holds — the publish
//! point of the data.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::array::{ArrayRef, Decimal128Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::SchemaRef;
use citybooks_model::conform::{conform_row, Row};
use citybooks_model::{ledger, Member, Table};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{col, lit, LogicalPlanBuilder};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::SendableRecordBatchStream;

use super::lookup::{max_of, Now};
use super::scan::{member_key, progress_bar, tick, Interner, Scan};
use super::{Committed, Job};
use crate::csvsource::{Hashing, Next, Records};
use crate::error::{Result, WarehouseError};
use crate::failpoint;
use crate::tables::{Input, Warehouse, WriteMode};

impl Warehouse {
    /// Streams the file's facts into one commit replacing its fiscal years; returns
    /// the rows written, which must be the rows the scan accepted.
    pub(super) async fn facts(
        &self,
        job: &Job<'_>,
        now: &Now,
        scan: &mut Scan,
        keys: Keys,
        committed: &mut Committed,
    ) -> Result<u64> {
        let first_transaction_id = max_of(
            &now.ctx,
            "select max(transaction_id) as m from report.transaction",
            "m",
        )
        .await?
            + 1;
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let schema = Table::Transaction.schema();
        let stream = ChannelStream {
            schema: schema.clone(),
            rx: Mutex::new(Some(rx)),
        };
        let provider = StreamingTable::try_new(schema, vec![Arc::new(stream)])?;
        let plan = LogicalPlanBuilder::scan(
            "incoming_facts",
            datafusion::datasource::provider_as_source(Arc::new(provider)),
            None,
        )?
        .build()?;
        let pass = WritePass {
            file: job.rel.to_string(),
            keys,
            members: std::mem::take(&mut scan.members),
            load_id: now.load_id,
            first_transaction_id,
            batch_rows: self.config.batch_rows,
            total: job.total,
            show: job.show_progress,
        };
        let store = self.store().clone();
        let file = job.rel.to_string();
        let producer = tokio::task::spawn_blocking(move || {
            let err_tx = tx.clone();
            let result = store
                .blocking_reader(&file)
                .map_err(WarehouseError::from)
                .and_then(|r| pass.run(r, tx));
            if let Err(e) = &result {
                let _ = err_tx.blocking_send(Err(DataFusionError::External(e.to_string().into())));
            }
            result
        });
        let predicate =
            col("fiscal_year").in_list(scan.years.iter().map(|y| lit(*y)).collect(), false);
        let committed_version = self
            .commit(
                job.lease,
                Table::Transaction,
                Input::Plan(plan),
                WriteMode::Replace(predicate),
                now.load_id,
            )
            .await;
        let produced = producer.await.map_err(|e| {
            WarehouseError::Internal(format!("the write pass of {} stopped: {e}", job.rel))
        })?;
        let written = produced?;
        committed.insert(Table::Transaction.qualified_name(), committed_version?);
        if written != scan.rows_ok {
            return Err(WarehouseError::SourceChanged {
                file: job.rel.to_string(),
                detail: format!(
                    "the scan accepted {} rows but the write pass wrote {written}",
                    scan.rows_ok
                ),
            });
        }
        Ok(written)
    }
}

/// Dimension ids for the members of one file: per hierarchy, by the member's index in
/// the scan's interner.
pub(super) type Keys = Vec<Vec<i32>>;

/// The facts stream: batches built by the write pass, read by the Delta writer.
#[derive(Debug)]
struct ChannelStream {
    schema: SchemaRef,
    rx: Mutex<
        Option<tokio::sync::mpsc::Receiver<std::result::Result<RecordBatch, DataFusionError>>>,
    >,
}

impl PartitionStream for ChannelStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let rx = self.rx.lock().ok().and_then(|mut g| g.take());
        let stream = futures::stream::unfold(rx, |rx| async move {
            match rx {
                Some(mut rx) => rx.recv().await.map(|b| (b, Some(rx))),
                None => Some((
                    Err(DataFusionError::Execution(
                        "the facts stream was already consumed".into(),
                    )),
                    None,
                )),
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

/// Everything the write pass needs, moved to its blocking thread.
struct WritePass {
    file: String,
    keys: Keys,
    members: Vec<Interner<Member>>,
    load_id: i64,
    first_transaction_id: i64,
    batch_rows: usize,
    total: u64,
    show: bool,
}

impl WritePass {
    /// The second pass: re-read, build fact batches, send them to the writer.
    fn run(
        self,
        reader: Box<dyn Read + Send>,
        tx: tokio::sync::mpsc::Sender<std::result::Result<RecordBatch, DataFusionError>>,
    ) -> Result<u64> {
        let hashing = Hashing::new(reader, false);
        let counter = hashing.counter();
        let mut recs = Records::open(hashing, &self.file)?;
        let bar = progress_bar(self.total, "write", self.show);
        let started = Instant::now();
        let mut key = Vec::with_capacity(256);
        let mut next_id = self.first_transaction_id;
        let mut batch = FactBatch::with_capacity(self.batch_rows);
        let mut written = 0u64;
        let mut batches_sent = 0u64;
        loop {
            let line = match recs.next_record()? {
                Next::End => break,
                Next::Bad { .. } => continue,
                Next::Row { line } => line,
            };
            let Ok(raw) = recs.row() else { continue };
            let Ok(row) = conform_row(&raw) else { continue };
            let missing = || WarehouseError::SourceChanged {
                file: self.file.clone(),
                detail: format!("line {line} has a member the first pass did not see"),
            };
            for (h, layout) in ledger().layouts.iter().enumerate() {
                member_key(&mut key, row.member_values(layout));
                let m = self.members[h].get(&key).ok_or_else(missing)?;
                batch.dimension_ids[h].push(self.keys[h][m as usize]);
            }
            batch.push(next_id, &row, line);
            next_id += 1;
            written += 1;
            if batch.len() >= self.batch_rows {
                send(
                    &tx,
                    batch.finish(self.load_id, &self.file)?,
                    &mut batches_sent,
                )?;
                tick(&bar, &counter, written, started);
            }
        }
        if batch.len() > 0 {
            send(
                &tx,
                batch.finish(self.load_id, &self.file)?,
                &mut batches_sent,
            )?;
        }
        bar.finish_and_clear();
        Ok(written)
    }
}

/// Hands a batch to the Delta writer (blocking while it is busy: back-pressure).
fn send(
    tx: &tokio::sync::mpsc::Sender<std::result::Result<RecordBatch, DataFusionError>>,
    batch: RecordBatch,
    sent: &mut u64,
) -> Result<()> {
    tx.blocking_send(Ok(batch))
        .map_err(|_| WarehouseError::Internal("the Delta writer stopped early".into()))?;
    *sent += 1;
    if *sent == 1 {
        failpoint::hit("mid-facts");
    }
    Ok(())
}

/// Columns of `report.transaction` under construction.
struct FactBatch {
    transaction_id: Vec<i64>,
    fiscal_year: Vec<i32>,
    /// One column of keys per hierarchy.
    dimension_ids: Vec<Vec<i32>>,
    finance_id: Vec<i32>,
    amount: Vec<i128>,
    source_line: Vec<i64>,
    /// Index into `as_of_values` per row: files carry one or a few timestamps, so each
    /// distinct one is kept once per batch.
    data_as_of: Vec<Option<u32>>,
    as_of_values: Vec<String>,
}

impl FactBatch {
    fn with_capacity(n: usize) -> Self {
        FactBatch {
            transaction_id: Vec::with_capacity(n),
            fiscal_year: Vec::with_capacity(n),
            dimension_ids: ledger()
                .layouts
                .iter()
                .map(|_| Vec::with_capacity(n))
                .collect(),
            finance_id: Vec::with_capacity(n),
            amount: Vec::with_capacity(n),
            source_line: Vec::with_capacity(n),
            data_as_of: Vec::with_capacity(n),
            as_of_values: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.transaction_id.len()
    }

    /// Adds a row whose dimension ids were pushed to `dimension_ids`.
    fn push(&mut self, id: i64, row: &Row, line: u64) {
        self.transaction_id.push(id);
        self.fiscal_year.push(row.fiscal_year);
        self.finance_id.push(row.finance_id);
        self.amount.push(row.amount);
        self.source_line.push(line as i64);
        let index = row
            .data_as_of
            .map(|v| match self.as_of_values.iter().rposition(|s| s == v) {
                Some(i) => i as u32,
                None => {
                    self.as_of_values.push(v.to_string());
                    (self.as_of_values.len() - 1) as u32
                }
            });
        self.data_as_of.push(index);
    }

    fn finish(&mut self, load_id: i64, file: &str) -> Result<RecordBatch> {
        let n = self.len();
        let amount = Decimal128Array::from(std::mem::take(&mut self.amount))
            .with_precision_and_scale(
                citybooks_model::money::PRECISION,
                citybooks_model::money::SCALE,
            )?;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(std::mem::take(&mut self.transaction_id))),
            Arc::new(Int32Array::from(std::mem::take(&mut self.fiscal_year))),
        ];
        for ids in &mut self.dimension_ids {
            columns.push(Arc::new(Int32Array::from(std::mem::take(ids))));
        }
        let rest: [ArrayRef; 6] = [
            Arc::new(Int32Array::from(std::mem::take(&mut self.finance_id))),
            Arc::new(amount),
            Arc::new(Int64Array::from(vec![load_id; n])),
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(file, n))),
            Arc::new(Int64Array::from(std::mem::take(&mut self.source_line))),
            Arc::new(
                self.data_as_of
                    .iter()
                    .map(|i| i.map(|i| self.as_of_values[i as usize].as_str()))
                    .collect::<StringArray>(),
            ),
        ];
        columns.extend(rest);
        let cap = self.transaction_id.capacity().max(n);
        *self = FactBatch::with_capacity(cap);
        Ok(RecordBatch::try_new(Table::Transaction.schema(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::loader::scan::scan;

    const HEADER: &str = "fiscal_year,related_govt_units,organization_group_code,organization_group,department_code,department,program_code,program,character_code,character,object_code,object,sub_object_code,sub_object,fund_type_code,fund_type,fund_code,fund,fund_category_code,fund_category,revenue_or_spending,amount";

    fn file(second_department: &str) -> Vec<u8> {
        format!(
            "{HEADER}\n\
             2025,No,1,G,D,Dept,P,Prog,C,Char,O,Obj,S,Sub,FT,FType,F,Fund,1,Cat,Spending,1.00\n\
             2025,No,1,G,D,{second_department},P,Prog,C,Char,O,Obj,S,Sub,FT,FType,F,Fund,1,Cat,Spending,2.00\n"
        )
        .into_bytes()
    }

    /// The write pass re-reads the stored file; if it is not what the scan read, the
    /// load stops with `SourceChanged`, naming the line, and writes nothing of it.
    #[test]
    fn a_file_that_changed_between_the_two_passes_is_refused_as_source_changed() {
        let first = file("Dept");
        let scanned = scan(Box::new(Cursor::new(first.clone())), "raw/x.csv", 0, false).unwrap();
        assert_eq!(scanned.rows_ok, 2);
        let pass = |members: Vec<Interner<Member>>| WritePass {
            file: "raw/x.csv".into(),
            keys: members
                .iter()
                .map(|m| (1..=m.members.len() as i32).collect())
                .collect(),
            members,
            load_id: 1,
            first_transaction_id: 1,
            batch_rows: 1024,
            total: 0,
            show: false,
        };
        // The same bytes: both rows written.
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let again = scan(Box::new(Cursor::new(first)), "raw/x.csv", 0, false).unwrap();
        assert_eq!(
            pass(again.members)
                .run(Box::new(Cursor::new(file("Dept"))), tx)
                .unwrap(),
            2
        );
        assert_eq!(rx.try_recv().unwrap().unwrap().num_rows(), 2);
        // Line 3 now names a department the scan never saw.
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let err = pass(scanned.members)
            .run(Box::new(Cursor::new(file("Another Dept"))), tx)
            .unwrap_err();
        match err {
            WarehouseError::SourceChanged { file, detail } => {
                assert_eq!(file, "raw/x.csv");
                assert!(detail.contains("line 3"), "{detail}");
            }
            other => panic!("expected SourceChanged, got {other:?}"),
        }
        assert!(
            rx.try_recv().is_err(),
            "no batch of the changed file was sent"
        );
    }
}
