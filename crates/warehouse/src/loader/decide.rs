//! The loader's decisions, as pure functions of what the scan found and what the
//! warehouse holds: whether a file repeats an earlier load, whether it has anything
//! to load, whether it would shrink a fiscal year too far, and which id each member
//! gets. The steps in `mod.rs` act on them; the tests below pin them down.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::loads::LoadRecord;
use crate::shrink::{shrinking_years, YearSize};

/// The earlier load whose content and effect this file repeats, if any: same content
/// hash, and no later load replaced any of its fiscal years.
pub(super) fn repeats<'a>(loads: &'a [LoadRecord], hash: &str) -> Option<&'a LoadRecord> {
    let last = loads
        .iter()
        .rev()
        .find(|l| l.is_loaded() && l.content_hash == hash)?;
    let years: BTreeSet<i32> = last.years().into_iter().collect();
    let overwritten = loads
        .iter()
        .filter(|l| l.is_loaded() && l.load_id > last.load_id)
        .any(|l| l.years().iter().any(|y| years.contains(y)));
    (!overwritten).then_some(last)
}

/// Why load `load_id` of `file` loads nothing: every one of its `read` rows was
/// quarantined.
pub(super) fn nothing_loadable(file: &str, load_id: i64, quarantined: usize, read: u64) -> String {
    format!(
        "{file}: nothing could be loaded: {quarantined} of {read} rows quarantined (see meta.quarantine, load {load_id})"
    )
}

/// Why load `load_id` is held, and how to settle it — when it would shrink a fiscal
/// year by more than `max_percent` (see [`shrinking_years`]); `None` when it may go
/// ahead.
pub(super) fn hold(
    before: &BTreeMap<i32, YearSize>,
    after: &BTreeMap<i32, YearSize>,
    max_percent: u32,
    load_id: i64,
) -> Option<String> {
    let shrunk = shrinking_years(before, after, max_percent);
    (!shrunk.is_empty()).then(|| {
        format!(
            "{}; nothing was replaced. Load it anyway with `citybooks release {load_id}` (or `citybooks load --confirm {load_id}`), or let it go with `citybooks release {load_id} --discard`",
            shrunk.join("; ")
        )
    })
}

/// Gives every conformed member an id: its existing one, or the next free one after
/// `max` (in the order the file first mentions them). Returns the id of each member
/// of `members`, and the new rows for the dimension table.
pub(super) fn assign<'a, M: Clone + std::hash::Hash + Eq + 'a>(
    members: impl ExactSizeIterator<Item = &'a M>,
    conform: impl Fn(&M) -> M,
    existing: &mut HashMap<M, i32>,
    mut max: i32,
) -> (Vec<i32>, Vec<(i32, M)>) {
    let mut keys = Vec::with_capacity(members.len());
    let mut new = Vec::new();
    for m in members {
        let c = conform(m);
        let id = match existing.get(&c) {
            Some(id) => *id,
            None => {
                max += 1;
                existing.insert(c.clone(), max);
                new.push((max, c));
                max
            }
        };
        keys.push(id);
    }
    (keys, new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loads::LoadStatus;

    fn load(load_id: i64, status: LoadStatus, hash: &str, years: &str) -> LoadRecord {
        LoadRecord {
            load_id,
            source_file: format!("raw/cli/{load_id}.csv"),
            content_hash: hash.into(),
            dialect: "api".into(),
            status,
            rows_read: 1,
            rows_loaded: 1,
            rows_quarantined: 0,
            years_replaced: years.into(),
            data_as_of: None,
            conformed: "[]".into(),
            table_versions: "{}".into(),
            started: 0,
            finished: 0,
            error: None,
            hold: None,
        }
    }

    #[test]
    fn a_file_repeats_the_last_load_of_its_content_until_a_later_load_replaces_its_years() {
        use LoadStatus::*;
        let loads = vec![
            load(1, Loaded, "a", "2024,2025"),
            load(2, Loaded, "b", "2023"),
            load(3, Failed, "c", ""),
        ];
        assert_eq!(repeats(&loads, "a").map(|l| l.load_id), Some(1));
        assert_eq!(repeats(&loads, "c"), None, "a failed load loaded nothing");
        assert_eq!(repeats(&loads, "z"), None);
        // A later load of 2025 means loading "a" again changes the warehouse back.
        let mut later = loads.clone();
        later.push(load(4, Loaded, "d", "2025"));
        assert_eq!(repeats(&later, "a"), None);
        // An unchanged or held load replaced nothing.
        let mut noop = loads.clone();
        noop.push(load(4, Unchanged, "d", "2025"));
        noop.push(load(5, Held, "e", ""));
        assert_eq!(repeats(&noop, "a").map(|l| l.load_id), Some(1));
        // The newest load of the same content is the one repeated.
        noop.push(load(6, Loaded, "a", "2024,2025"));
        assert_eq!(repeats(&noop, "a").map(|l| l.load_id), Some(6));
    }

    #[test]
    fn members_keep_their_ids_and_new_ones_follow_the_largest_in_file_order() {
        let mut existing: HashMap<String, i32> =
            [("Police".to_string(), 1), ("Fire".to_string(), 7)].into();
        let file = ["Parks", "police", "Fire", "Library", "Parks"].map(String::from);
        // The conformance is applied first: "police" is "Police".
        let conform = |m: &String| {
            let mut c = m.clone();
            c[..1].make_ascii_uppercase();
            c
        };
        let (ids, new) = assign(file.iter(), conform, &mut existing, 7);
        assert_eq!(ids, [8, 1, 7, 9, 8]);
        assert_eq!(new, [(8, "Parks".to_string()), (9, "Library".to_string())]);
        assert_eq!(existing.len(), 4);
    }

    #[test]
    fn a_load_is_held_only_past_the_limit_and_the_reason_says_how_to_settle_it() {
        let size = |rows, dollars: i128| YearSize {
            rows,
            gross_cents: dollars * 100,
        };
        let before = BTreeMap::from([(2024, size(1000, 1_000_000))]);
        let small = BTreeMap::from([(2024, size(100, 100_000)), (2026, size(5, 10))]);
        let hold_text = hold(&before, &small, 50, 12).expect("held");
        assert!(hold_text.starts_with("fiscal year 2024 would go from 1,000 rows to 100"));
        assert!(hold_text.contains("`citybooks release 12`"));
        assert!(hold_text.contains("`citybooks release 12 --discard`"));
        // Within the limit, and a year the warehouse does not have, go ahead.
        let close = BTreeMap::from([(2024, size(990, 999_000)), (2026, size(5, 10))]);
        assert_eq!(hold(&before, &close, 50, 12), None);
        assert_eq!(hold(&before, &small, 95, 12), None);
    }

    #[test]
    fn nothing_loadable_names_the_file_the_counts_and_where_the_rows_went() {
        assert_eq!(
            nothing_loadable("raw/cli/x.csv", 4, 3, 3),
            "raw/cli/x.csv: nothing could be loaded: 3 of 3 rows quarantined (see meta.quarantine, load 4)"
        );
    }
}
