//! The functions client catalog queries call that datafusion-postgres lacks
//! (`version()`, `obj_description`, `pg_get_constraintdef`, `current_setting`, ...),
//! answered from the keys and descriptions ([`Keys`]) or constants, and the settings
//! ([`SETTINGS`]) that `current_setting` and `pg_settings` show.

use std::sync::{Arc, RwLock};

use arrow::array::{Array, ArrayRef, BooleanArray, StringBuilder};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::keys::Keys;
use super::{version, SERVER_VERSION, SERVER_VERSION_NUM};

/// A function of the catalog that answers from the keys and descriptions, or a
/// constant.
struct CatalogFunction {
    name: &'static str,
    signature: Signature,
    /// What it returns (the answers are text, cast to this).
    returns: DataType,
    state: Arc<RwLock<Keys>>,
    answer: fn(&Keys, &[Option<ScalarValue>]) -> Option<String>,
}

impl std::fmt::Debug for CatalogFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for CatalogFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for CatalogFunction {}

impl std::hash::Hash for CatalogFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl ScalarUDFImpl for CatalogFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let keys = self.state.read().unwrap_or_else(|e| e.into_inner());
        let mut out = StringBuilder::new();
        for row in 0..n.max(if arrays.is_empty() { 1 } else { 0 }) {
            let values: Vec<Option<ScalarValue>> = arrays
                .iter()
                .map(|a| {
                    let v = ScalarValue::try_from_array(a, row).ok()?;
                    (!v.is_null()).then_some(v)
                })
                .collect();
            out.append_option((self.answer)(&keys, &values));
        }
        let answers: ArrayRef = Arc::new(out.finish());
        Ok(ColumnarValue::Array(cast(&answers, &self.returns)?))
    }
}

/// An argument as an oid or number.
fn number(v: &Option<ScalarValue>) -> Option<i64> {
    let v = v.as_ref()?;
    let cast = v.cast_to(&DataType::Int64).ok()?;
    match cast {
        ScalarValue::Int64(n) => n,
        _ => None,
    }
}

fn text(v: &Option<ScalarValue>) -> Option<String> {
    let v = v.as_ref()?;
    match v.cast_to(&DataType::Utf8).ok()? {
        ScalarValue::Utf8(s) => s,
        _ => None,
    }
}

/// The settings `current_setting(name)` and `pg_settings` show: name, value, what it is.
pub(super) const SETTINGS: [(&str, &str, &str); 15] = [
    (
        "server_version",
        SERVER_VERSION,
        "The PostgreSQL release citybooks answers as.",
    ),
    (
        "server_version_num",
        SERVER_VERSION_NUM,
        "server_version as a number.",
    ),
    ("server_encoding", "UTF8", "The encoding of all text."),
    ("client_encoding", "UTF8", "The client's encoding."),
    (
        "search_path",
        "report, meta",
        "Schemas searched for unqualified names.",
    ),
    (
        "default_transaction_read_only",
        "on",
        "Every transaction is read-only.",
    ),
    (
        "transaction_read_only",
        "on",
        "This transaction is read-only.",
    ),
    (
        "standard_conforming_strings",
        "on",
        "Backslashes in '...' strings are literal.",
    ),
    (
        "integer_datetimes",
        "on",
        "Date and time values are integers.",
    ),
    ("datestyle", "ISO, MDY", "How dates are written."),
    ("timezone", "UTC", "The time zone of timestamps."),
    ("max_identifier_length", "63", "The longest identifier."),
    (
        "max_index_keys",
        "32",
        "The most columns an index may have.",
    ),
    ("block_size", "8192", "The size of a disk block."),
    ("is_superuser", "off", "No login is a superuser."),
];

/// The value of a setting `current_setting(name)` may read.
fn setting(name: &str) -> Option<String> {
    let name = name.to_ascii_lowercase();
    SETTINGS
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|(_, v, _)| v.to_string())
}

/// A byte count as PostgreSQL's `pg_size_pretty` writes it.
fn size_pretty(bytes: i64) -> String {
    let units = ["bytes", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes;
    let mut unit = 0;
    // PostgreSQL moves to the next unit from 10240 of the current one, rounding half up.
    while value.abs() >= 10 * 1024 && unit + 1 < units.len() {
        value = (value + value.signum() * 512) / 1024;
        unit += 1;
    }
    format!("{value} {}", units[unit])
}

/// `pg_*_is_visible(oid)`: every object citybooks shows is on the search path.
fn always_visible(name: &str) -> ScalarUDF {
    datafusion::logical_expr::create_udf(
        name,
        vec![DataType::Int32],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let n = match &args[0] {
                ColumnarValue::Array(a) => a.len(),
                ColumnarValue::Scalar(_) => 1,
            };
            Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(vec![
                true;
                n
            ]))))
        }),
    )
}

/// How a [`CatalogFunction`] answers: from the keys and its arguments.
type Answer = fn(&Keys, &[Option<ScalarValue>]) -> Option<String>;

/// A [`CatalogFunction`] of any arguments.
fn variadic(
    state: &Arc<RwLock<Keys>>,
    name: &'static str,
    returns: DataType,
    answer: Answer,
) -> ScalarUDF {
    ScalarUDF::from(CatalogFunction {
        name,
        signature: Signature::variadic_any(Volatility::Stable),
        returns,
        state: state.clone(),
        answer,
    })
}

/// A [`CatalogFunction`] of any arguments that answers text.
fn text_function(state: &Arc<RwLock<Keys>>, name: &'static str, answer: Answer) -> ScalarUDF {
    variadic(state, name, DataType::Utf8, answer)
}

/// The functions client catalog queries call that the crate lacks, answered from
/// `state`.
pub(super) fn functions(state: Arc<RwLock<Keys>>) -> Vec<ScalarUDF> {
    let mut all = vec![
        always_visible("pg_collation_is_visible"),
        always_visible("pg_type_is_visible"),
        always_visible("pg_function_is_visible"),
    ];
    all.extend(descriptions(&state));
    all.extend(definitions(&state));
    all.extend(lookups(&state));
    all
}

/// `version()` and the descriptions of objects.
fn descriptions(state: &Arc<RwLock<Keys>>) -> Vec<ScalarUDF> {
    let f = |name: &'static str, answer: Answer| text_function(state, name, answer);
    vec![
        ScalarUDF::from(CatalogFunction {
            name: "version",
            signature: Signature::nullary(Volatility::Stable),
            returns: DataType::Utf8,
            state: state.clone(),
            answer: |_, _| Some(version()),
        }),
        f("obj_description", |k, a| {
            let oid = number(a.first()?)? as i32;
            k.descriptions.get(&(oid, 0)).map(|d| d.to_string())
        }),
        f("col_description", |k, a| {
            let oid = number(a.first()?)? as i32;
            let sub = number(a.get(1)?)? as i32;
            k.descriptions.get(&(oid, sub)).map(|d| d.to_string())
        }),
        f("shobj_description", |_, _| None),
    ]
}

/// The definitions of constraints, indexes and the objects citybooks has not.
fn definitions(state: &Arc<RwLock<Keys>>) -> Vec<ScalarUDF> {
    let f = |name: &'static str, answer: Answer| text_function(state, name, answer);
    vec![
        f("pg_get_constraintdef", |k, a| {
            k.constraint_def(number(a.first()?)? as i32)
        }),
        f("pg_get_indexdef", |k, a| {
            let def = k.index_def(number(a.first()?)? as i32)?;
            // pg_get_indexdef(oid, column, pretty): column > 0 asks for that key column.
            match a.get(1).and_then(number) {
                Some(c) if c > 0 => def
                    .rsplit_once('(')
                    .map(|(_, cols)| cols.trim_end_matches(')').to_string()),
                _ => Some(def),
            }
        }),
        f("pg_get_serial_sequence", |_, _| None),
        // citybooks has no triggers, rules or views, and defines no functions of its
        // own: nothing to describe.
        f("pg_get_triggerdef", |_, _| None),
        f("pg_get_ruledef", |_, _| None),
        f("pg_get_viewdef", |_, _| None),
        f("pg_get_function_result", |_, _| None),
        f("pg_get_function_arguments", |_, _| None),
        f("pg_get_function_identity_arguments", |_, _| None),
    ]
}

/// Sizes, settings, names and oids of relations and types, and `json_build_object`.
fn lookups(state: &Arc<RwLock<Keys>>) -> Vec<ScalarUDF> {
    let f = |name: &'static str, answer: Answer| text_function(state, name, answer);
    vec![
        // Sizes live in the lake, not in relation files: unknown here.
        variadic(state, "pg_table_size", DataType::Int64, |_, _| None),
        f("pg_size_pretty", |_, a| {
            Some(size_pretty(number(a.first()?)?))
        }),
        f("current_setting", |_, a| setting(&text(a.first()?)?)),
        variadic(state, "to_regclass", DataType::Int32, |k, a| {
            let name = text(a.first()?)?.to_ascii_lowercase().replace('"', "");
            k.relations.get(&name).map(|oid| oid.to_string())
        }),
        f("regclass_name", |k, a| {
            let oid = number(a.first()?)? as i32;
            Some(
                k.relation_names
                    .get(&oid)
                    .cloned()
                    .unwrap_or(oid.to_string()),
            )
        }),
        variadic(state, "to_regtype", DataType::Int32, |k, a| {
            let name = text(a.first()?)?.to_ascii_lowercase();
            let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
            k.types.get(name).map(|oid| oid.to_string())
        }),
        f("json_build_object", |_, a| json_build_object(a)),
    ]
}

/// `json_build_object(key, value, ...)`: the object, as text.
fn json_build_object(a: &[Option<ScalarValue>]) -> Option<String> {
    let mut object = serde_json::Map::new();
    for pair in a.chunks(2) {
        let key = text(&pair[0])?;
        let value = match pair.get(1).and_then(|v| v.as_ref()) {
            None => serde_json::Value::Null,
            Some(ScalarValue::Boolean(Some(b))) => serde_json::Value::Bool(*b),
            Some(v) if v.data_type().is_numeric() => v
                .to_string()
                .parse::<serde_json::Number>()
                .map(serde_json::Value::Number)
                .unwrap_or_else(|_| serde_json::Value::String(v.to_string())),
            Some(v) => serde_json::Value::String(text(&Some(v.clone()))?),
        };
        object.insert(key, value);
    }
    Some(serde_json::Value::Object(object).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_postgres_writes_them() {
        assert_eq!(size_pretty(0), "0 bytes");
        assert_eq!(size_pretty(10239), "10239 bytes");
        assert_eq!(size_pretty(10240), "10 kB");
        assert_eq!(size_pretty(1_500_000), "1465 kB");
        assert_eq!(size_pretty(20 * 1024 * 1024), "20 MB");
    }
}
