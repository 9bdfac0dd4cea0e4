//! What changed between two loads: for each fiscal year either load touched, revenue
//! and spending before and after, the fact rows added, removed and changed at the grain
//! of the star schema, and the members of one hierarchy (at each of its levels) whose
//! totals moved, largest first. Both sides are read with Delta time travel to the
//! versions `meta.loads` recorded for each load, so the answer is exact to the cent and
//! the same whenever it is asked.
//!
//! The grain of a fact is its fiscal year and its keys (one per dimension, and
//! `finance_id`): a grain whose total differs is *changed*, one only after is *added*,
//! one only before is *removed*. The Controller restates past years by replacing their
//! rows; this counts what the restatement moved, not the rows it rewrote.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use arrow::array::AsArray;
use arrow::datatypes::{Decimal128Type, Int32Type, Int64Type};
use citybooks_model::{format_change, format_count, ledger, Layout};
use datafusion::prelude::SessionContext;
use serde::{Serialize, Serializer};

use crate::error::{Result, WarehouseError};
use crate::loads::{strings, LoadRecord};
use crate::tables::Warehouse;

/// Members listed per level and year, unless asked otherwise.
pub const TOP: usize = 20;

/// The changes between two loads.
#[derive(Debug, Clone, Serialize)]
pub struct Changes {
    /// The earlier side (None: before the first load, an empty warehouse).
    pub from_load: Option<i64>,
    pub to_load: i64,
    /// The hierarchy the members are of (`h=` of the dashboard).
    pub by: &'static str,
    /// Its levels' columns, broadest first.
    pub levels: Vec<&'static str>,
    pub years: Vec<YearChange>,
}

/// One fiscal year's change.
#[derive(Debug, Clone, Serialize)]
pub struct YearChange {
    pub fiscal_year: i32,
    #[serde(serialize_with = "as_decimal")]
    pub revenue_before: i128,
    #[serde(serialize_with = "as_decimal")]
    pub revenue_after: i128,
    #[serde(serialize_with = "as_decimal")]
    pub spending_before: i128,
    #[serde(serialize_with = "as_decimal")]
    pub spending_after: i128,
    pub rows_before: u64,
    pub rows_after: u64,
    /// Whether the rows were compared grain by grain (`citybooks changes`); a load's
    /// summary compares totals only, and the three counts below are then 0.
    pub grains_compared: bool,
    /// Grains (year and keys) only after, only before, and in both with another total.
    pub rows_added: u64,
    pub rows_removed: u64,
    pub rows_changed: u64,
    /// Members whose totals moved, largest move first, at most `top` per level.
    pub members: Vec<MemberChange>,
}

/// A member of the chosen hierarchy whose total moved, on one side of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberChange {
    /// The level's column (`department`), and its depth (0 = the broadest).
    pub level: &'static str,
    pub depth: usize,
    /// The member's names from the broadest level down to it.
    pub path: Vec<String>,
    /// Revenue or Spending.
    pub side: String,
    #[serde(serialize_with = "as_decimal")]
    pub before: i128,
    #[serde(serialize_with = "as_decimal")]
    pub after: i128,
    #[serde(serialize_with = "as_decimal")]
    pub difference: i128,
}

fn as_decimal<S: Serializer>(cents: &i128, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&citybooks_model::format_cents(*cents))
}

impl YearChange {
    /// A year with nothing counted yet.
    fn new(fiscal_year: i32, grains_compared: bool) -> YearChange {
        YearChange {
            fiscal_year,
            revenue_before: 0,
            revenue_after: 0,
            spending_before: 0,
            spending_after: 0,
            grains_compared,
            rows_before: 0,
            rows_after: 0,
            rows_added: 0,
            rows_removed: 0,
            rows_changed: 0,
            members: Vec::new(),
        }
    }

    /// Whether anything of the year moved.
    pub fn moved(&self) -> bool {
        self.rows_added + self.rows_removed + self.rows_changed > 0
            || self.rows_before != self.rows_after
            || self.revenue_before != self.revenue_after
            || self.spending_before != self.spending_after
    }

    /// The year in a sentence: new or restated, the net moves of spending and revenue,
    /// the rows, and the member that moved most.
    pub fn sentence(&self) -> String {
        let mut parts = Vec::new();
        for (side, before, after) in [
            ("spending", self.spending_before, self.spending_after),
            ("revenue", self.revenue_before, self.revenue_after),
        ] {
            if before != after {
                parts.push(format!("{} {side}", format_change(after - before)));
            }
        }
        if parts.is_empty() {
            parts.push("totals unchanged".into());
        }
        let rows = match (self.rows_before, self.grains_compared) {
            (0, _) => format!(" in {} rows", format_count(self.rows_after)),
            (_, false) => format!(
                " ({} rows, {} before)",
                format_count(self.rows_after),
                format_count(self.rows_before)
            ),
            (_, true) => format!(
                "; {} rows added, {} removed, {} changed",
                format_count(self.rows_added),
                format_count(self.rows_removed),
                format_count(self.rows_changed)
            ),
        };
        let most = self
            .members
            .iter()
            .filter(|m| m.depth == 0)
            .max_by_key(|m| m.difference.unsigned_abs())
            .map(|m| {
                format!(
                    "; most: {} ({}) {}",
                    m.path.join(" / "),
                    m.side.to_lowercase(),
                    format_change(m.difference)
                )
            })
            .unwrap_or_default();
        let what = if self.rows_before == 0 {
            "new"
        } else {
            "restated"
        };
        format!(
            "fiscal year {} {what}: {}{rows}{most}",
            self.fiscal_year,
            parts.join(", ")
        )
    }
}

impl Changes {
    /// What the later load changed, in one paragraph (every year it touched).
    pub fn summary(&self) -> String {
        let years: Vec<String> = self
            .years
            .iter()
            .filter(|y| y.moved())
            .map(YearChange::sentence)
            .collect();
        match years.is_empty() {
            true => "nothing changed".into(),
            false => years.join("; "),
        }
    }
}

/// Totals of one grain: the sum of its rows' amounts and how many rows.
type Grains = HashMap<Vec<i32>, (i128, u64)>;

impl Warehouse {
    /// What changed from load `from` to load `to` (None: the latest load that loaded
    /// data, and the one before it), by the members of hierarchy `by`, at most `top`
    /// members per level and year.
    pub async fn changes(
        &self,
        from: Option<i64>,
        to: Option<i64>,
        by: &'static Layout,
        top: usize,
    ) -> Result<Changes> {
        let loads = self.loads().await?;
        let (from, to) = pick_loads(&loads, from, to)?;
        let (low, high) = (from.unwrap_or(0).min(to), from.unwrap_or(0).max(to));
        // The years a load between the two replaced.
        let years: BTreeSet<i32> = loads
            .iter()
            .filter(|l| l.is_loaded() && l.load_id > low && l.load_id <= high)
            .flat_map(LoadRecord::years)
            .collect();
        let after = self.session(Some(to)).await?;
        let before = match from {
            Some(id) => Some(self.session(Some(id)).await?),
            None => None,
        };
        // Members are never renumbered or removed, so the later side names both.
        let later = match (&before, from.is_some_and(|f| f > to)) {
            (Some(ctx), true) => ctx,
            _ => &after,
        };
        let names = member_names(later, by).await?;
        let sides = sides(&after).await?;
        let mut out = Vec::new();
        for year in years {
            let old = match &before {
                Some(ctx) => grains(ctx, year).await?,
                None => Grains::new(),
            };
            let new = grains(&after, year).await?;
            out.push(year_change(year, &old, &new, &names, &sides, by, top));
        }
        Ok(Changes {
            from_load: from,
            to_load: to,
            by: by.hierarchy.id,
            levels: by.hierarchy.levels.iter().map(|l| l.name.name).collect(),
            years: out,
        })
    }
}

impl Warehouse {
    /// What load `load_id` changed, in one paragraph: for each fiscal year it replaced,
    /// spending and revenue before and after, its rows, and the broadest member of the
    /// ledger's first hierarchy that moved most. Compares totals, not grains (one
    /// aggregate on each side), so it is cheap enough for every load's report.
    /// Kept in the store (`index/changes/load-<id>.json`, with the load's content hash)
    /// once made: the versions it compares never change.
    pub async fn change_summary(&self, load_id: i64) -> Result<String> {
        self.change_summary_of(&self.loads().await?, load_id).await
    }

    /// [`Warehouse::change_summary`] with `meta.loads` already read (the feed asks for
    /// many loads at once).
    pub async fn change_summary_of(&self, loads: &[LoadRecord], load_id: i64) -> Result<String> {
        let load = loads
            .iter()
            .find(|l| l.load_id == load_id)
            .ok_or(WarehouseError::NoSuchLoad(load_id))?;
        let kept = format!("index/changes/load-{load_id}.json");
        if let Ok(bytes) = self.store().get(&kept).await {
            if let Ok(k) = serde_json::from_slice::<KeptSummary>(&bytes) {
                if k.content_hash == load.content_hash {
                    return Ok(k.summary);
                }
            }
        }
        let summary = self.summarize(loads, load).await?;
        let k = KeptSummary {
            content_hash: load.content_hash.clone(),
            summary: summary.clone(),
        };
        if let Ok(json) = serde_json::to_vec(&k) {
            if let Err(e) = self
                .store()
                .put_stream(&kept, json.as_slice(), |_| {})
                .await
            {
                tracing::warn!("keeping {kept}: {e}");
            }
        }
        Ok(summary)
    }

    async fn summarize(&self, loads: &[LoadRecord], load: &LoadRecord) -> Result<String> {
        let load_id = load.load_id;
        let years: Vec<i32> = load.years();
        let before = loads
            .iter()
            .rev()
            .find(|l| l.is_loaded() && l.load_id < load_id)
            .map(|l| l.load_id);
        let by = &ledger().layouts[0];
        let old = match before {
            Some(id) => year_totals(&self.session(Some(id)).await?, by, &years).await?,
            None => BTreeMap::new(),
        };
        let new = year_totals(&self.session(Some(load_id)).await?, by, &years).await?;
        let changes = Changes {
            from_load: before,
            to_load: load_id,
            by: by.hierarchy.id,
            levels: by.hierarchy.levels.iter().map(|l| l.name.name).collect(),
            years: years
                .iter()
                .map(|&year| totals_change(year, &old, &new, by))
                .collect(),
        };
        Ok(changes.summary())
    }
}

/// A load's summary as kept in the store.
#[derive(serde::Serialize, serde::Deserialize)]
struct KeptSummary {
    content_hash: String,
    summary: String,
}

/// (year, side, broadest member) → (total, rows).
type Totals = BTreeMap<(i32, String, String), (i128, u64)>;

/// The totals of `years` by side and broadest member of `by`.
async fn year_totals(ctx: &SessionContext, by: &Layout, years: &[i32]) -> Result<Totals> {
    let mut out = Totals::new();
    if years.is_empty() {
        return Ok(out);
    }
    let h = by.hierarchy;
    let list: Vec<String> = years.iter().map(|y| y.to_string()).collect();
    let sql = format!(
        "select t.fiscal_year, f.revenue_or_spending, {alias}.{name} as member, sum(t.amount), count(*)
from report.transaction t
join report.{table} {alias} on t.{key} = {alias}.{key}
join report.finance f on t.finance_id = f.finance_id
where t.fiscal_year in ({years})
group by 1, 2, 3",
        alias = h.alias,
        name = h.levels[0].name.name,
        table = h.table,
        key = by.key,
        years = list.join(", ")
    );
    for batch in ctx.sql(&sql).await?.collect().await? {
        let year = batch.column(0).as_primitive::<Int32Type>();
        let amount = batch.column(3).as_primitive::<Decimal128Type>();
        let n = batch.column(4).as_primitive::<Int64Type>();
        let sides = strings(&batch, "revenue_or_spending")?;
        let members = strings(&batch, "member")?;
        for (row, (side, member)) in sides.into_iter().zip(members).enumerate() {
            let key = (
                year.value(row),
                side.unwrap_or_default(),
                member.unwrap_or_default(),
            );
            out.insert(key, (amount.value(row), n.value(row) as u64));
        }
    }
    Ok(out)
}

/// One year's change from its totals (no grain counts).
fn totals_change(year: i32, old: &Totals, new: &Totals, by: &Layout) -> YearChange {
    let mut change = YearChange::new(year, false);
    let mut members: BTreeMap<(String, String), (i128, i128)> = BTreeMap::new();
    for (totals, after) in [(old, false), (new, true)] {
        for ((y, side, name), (amount, n)) in totals {
            if *y != year {
                continue;
            }
            let (total, rows) = match (side.as_str(), after) {
                ("Revenue", false) => (&mut change.revenue_before, &mut change.rows_before),
                ("Revenue", true) => (&mut change.revenue_after, &mut change.rows_after),
                (_, false) => (&mut change.spending_before, &mut change.rows_before),
                (_, true) => (&mut change.spending_after, &mut change.rows_after),
            };
            *total += amount;
            *rows += n;
            let entry = members.entry((side.clone(), name.clone())).or_default();
            match after {
                false => entry.0 += amount,
                true => entry.1 += amount,
            }
        }
    }
    let level = by.hierarchy.levels[0].name.name;
    change.members = members
        .into_iter()
        .filter(|(_, (before, after))| before != after)
        .map(|((side, name), (before, after))| MemberChange {
            level,
            depth: 0,
            path: vec![name],
            side,
            before,
            after,
            difference: after - before,
        })
        .collect();
    change
        .members
        .sort_by_key(|m| std::cmp::Reverse(m.difference.unsigned_abs()));
    change.members.truncate(TOP);
    change
}

/// The two loads compared: those asked for (each must exist), or the latest load that
/// loaded data and the one before it.
fn pick_loads(
    loads: &[LoadRecord],
    from: Option<i64>,
    to: Option<i64>,
) -> Result<(Option<i64>, i64)> {
    let exists = |id: i64| {
        loads
            .iter()
            .any(|l| l.load_id == id)
            .then_some(id)
            .ok_or(WarehouseError::NoSuchLoad(id))
    };
    let loaded: Vec<i64> = loads
        .iter()
        .filter(|l| l.is_loaded())
        .map(|l| l.load_id)
        .collect();
    let to = match to {
        Some(id) => exists(id)?,
        None => *loaded.last().ok_or(WarehouseError::NothingLoaded)?,
    };
    let from = match from {
        Some(id) => Some(exists(id)?),
        None => loaded.iter().rev().find(|&&id| id < to).copied(),
    };
    Ok((from, to))
}

/// One year's grains: the keys of every dimension and `finance_id` → total and rows.
async fn grains(ctx: &SessionContext, year: i32) -> Result<Grains> {
    let keys: Vec<&str> = ledger()
        .layouts
        .iter()
        .map(|l| l.key)
        .chain(["finance_id"])
        .collect();
    let list = keys.join(", ");
    let sql = format!(
        "select {list}, sum(amount) as amount, count(*) as n from report.transaction where fiscal_year = {year} group by {list}"
    );
    let mut out = Grains::new();
    for batch in ctx.sql(&sql).await?.collect().await? {
        let amount = batch.column(keys.len()).as_primitive::<Decimal128Type>();
        let n = batch.column(keys.len() + 1).as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            let key = (0..keys.len())
                .map(|k| batch.column(k).as_primitive::<Int32Type>().value(row))
                .collect();
            out.insert(key, (amount.value(row), n.value(row) as u64));
        }
    }
    Ok(out)
}

/// Each member of `by`: its id → its names from the broadest level down.
async fn member_names(ctx: &SessionContext, by: &Layout) -> Result<HashMap<i32, Vec<String>>> {
    let h = by.hierarchy;
    let names: Vec<&str> = h.levels.iter().map(|l| l.name.name).collect();
    let sql = format!(
        "select {}, {} from report.{}",
        by.key,
        names.join(", "),
        h.table
    );
    let mut out = HashMap::new();
    for batch in ctx.sql(&sql).await?.collect().await? {
        let ids = batch.column(0).as_primitive::<Int32Type>();
        let levels = names
            .iter()
            .map(|n| strings(&batch, n))
            .collect::<Result<Vec<_>>>()?;
        for row in 0..batch.num_rows() {
            let path = levels
                .iter()
                .map(|l| l[row].clone().unwrap_or_default())
                .collect();
            out.insert(ids.value(row), path);
        }
    }
    Ok(out)
}

/// `finance_id` → Revenue or Spending.
async fn sides(ctx: &SessionContext) -> Result<HashMap<i32, String>> {
    let batches = ctx
        .sql("select finance_id, revenue_or_spending from report.finance")
        .await?
        .collect()
        .await?;
    let mut out = HashMap::new();
    for batch in batches {
        let ids = batch.column(0).as_primitive::<Int32Type>();
        let sides = strings(&batch, "revenue_or_spending")?;
        for (row, side) in sides.into_iter().enumerate() {
            out.insert(ids.value(row), side.unwrap_or_default());
        }
    }
    Ok(out)
}

/// One year's comparison of its grains before and after.
fn year_change(
    year: i32,
    old: &Grains,
    new: &Grains,
    names: &HashMap<i32, Vec<String>>,
    sides: &HashMap<i32, String>,
    by: &Layout,
    top: usize,
) -> YearChange {
    let mut change = YearChange {
        rows_before: old.values().map(|g| g.1).sum(),
        rows_after: new.values().map(|g| g.1).sum(),
        rows_added: new.keys().filter(|k| !old.contains_key(*k)).count() as u64,
        rows_removed: old.keys().filter(|k| !new.contains_key(*k)).count() as u64,
        rows_changed: new
            .iter()
            .filter(|(k, g)| old.get(*k).is_some_and(|o| o.0 != g.0))
            .count() as u64,
        ..YearChange::new(year, true)
    };
    // Member totals per level: (depth, side, path) → (before, after).
    let mut members: BTreeMap<(usize, String, Vec<String>), (i128, i128)> = BTreeMap::new();
    let finance_at = ledger().layouts.len();
    for (grains, after) in [(old, false), (new, true)] {
        for (key, (amount, _)) in grains {
            let side = sides.get(&key[finance_at]).cloned().unwrap_or_default();
            let total = match (side.as_str(), after) {
                ("Revenue", false) => &mut change.revenue_before,
                ("Revenue", true) => &mut change.revenue_after,
                (_, false) => &mut change.spending_before,
                (_, true) => &mut change.spending_after,
            };
            *total += amount;
            let Some(path) = names.get(&key[by.number]) else {
                continue;
            };
            for depth in 0..path.len() {
                let entry = members
                    .entry((depth, side.clone(), path[..=depth].to_vec()))
                    .or_default();
                match after {
                    false => entry.0 += amount,
                    true => entry.1 += amount,
                }
            }
        }
    }
    let levels: Vec<&'static str> = by.hierarchy.levels.iter().map(|l| l.name.name).collect();
    let mut moved: Vec<MemberChange> = members
        .into_iter()
        .filter(|(_, (before, after))| before != after)
        .map(|((depth, side, path), (before, after))| MemberChange {
            level: levels[depth],
            depth,
            path,
            side,
            before,
            after,
            difference: after - before,
        })
        .collect();
    moved.sort_by(|a, b| {
        (
            a.depth,
            std::cmp::Reverse(a.difference.unsigned_abs()),
            &a.path,
        )
            .cmp(&(
                b.depth,
                std::cmp::Reverse(b.difference.unsigned_abs()),
                &b.path,
            ))
    });
    let mut per_level = vec![0usize; levels.len()];
    change.members = moved
        .into_iter()
        .filter(|m| {
            per_level[m.depth] += 1;
            per_level[m.depth] <= top
        })
        .collect();
    change
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::path::Path;

    use citybooks_model::parse_amount;
    use citybooks_store::config::{LoadConfig, StoreConfig};
    use citybooks_store::Store;

    use super::*;

    type Record = Vec<String>;

    fn read(text: &str) -> (Vec<String>, Vec<Record>) {
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let header = r.headers().unwrap().iter().map(str::to_string).collect();
        let rows = r
            .records()
            .map(|x| x.unwrap().iter().map(str::to_string).collect())
            .collect();
        (header, rows)
    }

    fn write(header: &[String], rows: &[Record]) -> String {
        let mut w = csv::WriterBuilder::new()
            .quote_style(csv::QuoteStyle::Always)
            .from_writer(Vec::new());
        w.write_record(header).unwrap();
        for r in rows {
            w.write_record(r).unwrap();
        }
        String::from_utf8(w.into_inner().unwrap()).unwrap()
    }

    /// (side, organization group) → total in cents, from the raw rows.
    fn by_group(header: &[String], rows: &[Record]) -> BTreeMap<(String, String), i128> {
        let at = |c: &str| header.iter().position(|h| h == c).unwrap();
        let (side, group, amount) = (
            at("revenue_or_spending"),
            at("organization_group"),
            at("amount"),
        );
        let mut out = BTreeMap::new();
        for r in rows {
            *out.entry((r[side].clone(), r[group].clone())).or_default() +=
                parse_amount(&r[amount]).unwrap();
        }
        out
    }

    #[tokio::test]
    async fn a_restatement_is_counted_at_the_grain_and_summed_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::default(), Some(dir.path().join("store"))).unwrap();
        let wh = Warehouse::new(store, LoadConfig::default());
        let sample = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/datasf-fy2025-sample.csv"),
        )
        .unwrap();
        let (header, rows) = read(&sample);
        let one = dir.path().join("week-1.csv");
        std::fs::write(&one, &sample).unwrap();
        let week1 = wh.load_path(&one, false).await.unwrap();
        assert!(
            week1
                .changes
                .as_deref()
                .unwrap()
                .starts_with("fiscal year 2025 new: "),
            "{:?}",
            week1.changes
        );

        // Rows whose names (every level, both sides) no other row shares: each is its
        // own grain, whatever rule 6 makes of the codes.
        let at = |c: &str| header.iter().position(|h| h == c).unwrap();
        let names: Vec<usize> = header
            .iter()
            .enumerate()
            .filter(|(_, h)| {
                !h.ends_with("_code")
                    && !["amount", "data_as_of", "data_loaded_at"].contains(&h.as_str())
            })
            .map(|(i, _)| i)
            .collect();
        let key = |r: &Record| names.iter().map(|&i| r[i].clone()).collect::<Vec<_>>();
        let mut seen: HashMap<Vec<String>, usize> = HashMap::new();
        for r in &rows {
            *seen.entry(key(r)).or_default() += 1;
        }
        let unique: Vec<usize> = (0..rows.len())
            .filter(|&i| seen[&key(&rows[i])] == 1)
            .collect();
        let (changed, removed) = (unique[0], unique[unique.len() / 2]);
        let mut next = rows.clone();
        next[changed][at("amount")] = "123456.78".into();
        let mut added = rows[changed].clone();
        added[at("program")] = "A Program That Is New".into();
        added[at("program_code")] = "NEWPRG".into();
        added[at("amount")] = "1000.00".into();
        next.remove(removed);
        next.push(added);
        let two = dir.path().join("week-2.csv");
        std::fs::write(&two, write(&header, &next)).unwrap();
        let week2 = wh.load_path(&two, false).await.unwrap();

        let by = &ledger().layouts[0];
        let c = wh.changes(None, None, by, 1000).await.unwrap();
        assert_eq!(
            (c.from_load, c.to_load),
            (Some(week1.load_id), week2.load_id)
        );
        assert_eq!(c.years.len(), 1);
        let y = &c.years[0];
        assert_eq!(
            (y.fiscal_year, y.rows_before, y.rows_after),
            (2025, rows.len() as u64, next.len() as u64)
        );
        assert_eq!((y.rows_added, y.rows_removed, y.rows_changed), (1, 1, 1));
        let (old, new) = (by_group(&header, &rows), by_group(&header, &next));
        let total = |m: &BTreeMap<(String, String), i128>, side: &str| -> i128 {
            m.iter()
                .filter(|((s, _), _)| s == side)
                .map(|(_, v)| v)
                .sum()
        };
        assert_eq!(y.spending_before, total(&old, "Spending"));
        assert_eq!(y.spending_after, total(&new, "Spending"));
        assert_eq!(y.revenue_before, total(&old, "Revenue"));
        assert_eq!(y.revenue_after, total(&new, "Revenue"));
        // Every broadest member that moved, and only those, with its exact move.
        let expected: BTreeMap<(String, String), i128> = old
            .keys()
            .chain(new.keys())
            .map(|k| {
                (
                    k.clone(),
                    new.get(k).unwrap_or(&0) - old.get(k).unwrap_or(&0),
                )
            })
            .filter(|(_, d)| *d != 0)
            .collect();
        let got: BTreeMap<(String, String), i128> = y
            .members
            .iter()
            .filter(|m| m.depth == 0)
            .map(|m| ((m.side.clone(), m.path[0].clone()), m.difference))
            .collect();
        assert_eq!(got, expected);
        // The new program is a member of the level below, with all of its amount.
        assert!(y.members.iter().any(|m| m.depth == 2
            && m.path[2] == "A Program That Is New"
            && (m.before, m.after) == (0, 100_000)));
        // The load's own summary says the same, and is kept.
        let summary = week2.changes.clone().unwrap();
        assert!(
            summary.starts_with("fiscal year 2025 restated: "),
            "{summary}"
        );
        assert_eq!(wh.change_summary(week2.load_id).await.unwrap(), summary);
        let json = serde_json::to_value(&c).unwrap();
        assert!(json["years"][0]["spending_after"].is_string(), "{json}");
        // Backwards: the same moves with the other sign.
        let back = wh
            .changes(Some(week2.load_id), Some(week1.load_id), by, 1000)
            .await
            .unwrap();
        assert_eq!(back.years[0].spending_after, y.spending_before);
        assert_eq!(
            (back.years[0].rows_added, back.years[0].rows_removed),
            (1, 1)
        );
        assert!(matches!(
            wh.changes(Some(99), None, by, 10).await,
            Err(WarehouseError::NoSuchLoad(99))
        ));
    }
}
