//! A deterministic generator of realistic ledgers: the real names and codes of the
//! original pipeline's dimensions (`data/seed-dimensions`), the amount distribution of
//! the real sample (`data/datasf-fy2025-sample.csv`), fiscal years 1999–2027, in either
//! export dialect. The same seed and row count always give the same bytes.

use std::io::Write;

const PROGRAMS: &str = include_str!("../../data/seed-dimensions/program.csv");
const TYPES: &str = include_str!("../../data/seed-dimensions/type.csv");
const FUNDS: &str = include_str!("../../data/seed-dimensions/fund.csv");
const SAMPLE: &str = include_str!("../../data/datasf-fy2025-sample.csv");

/// Which export to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `/resource/bpnb-jwfb.csv`: snake_case headers, every field quoted, timestamps.
    Api,
    /// The portal export: human headers, quotes only where needed, thousands separators.
    Portal,
}

/// SplitMix64: small, fast, and the same on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

fn rows(text: &str) -> Vec<Vec<String>> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    r.records()
        .filter_map(|rec| rec.ok())
        .map(|rec| rec.iter().map(str::to_string).collect())
        .collect()
}

/// The `N` attributes after the id column, in reverse order.
fn root_first<const N: usize>(row: &[String]) -> [String; N] {
    std::array::from_fn(|i| row.get(N - i).cloned().unwrap_or_default())
}

/// The generator's material, parsed once.
pub struct Generator {
    /// related, og code, og, dept code, dept, program code, program
    programs: Vec<[String; 7]>,
    /// char code, char, object code, object, sub code, sub
    types: Vec<[String; 6]>,
    /// fund type code, fund type, fund code, fund, category code, category
    funds: Vec<[String; 6]>,
    /// Amounts of the sample, in cents, with whether the row is revenue.
    amounts: Vec<(i64, bool)>,
}

impl Default for Generator {
    fn default() -> Self {
        Self::new()
    }
}

impl Generator {
    pub fn new() -> Self {
        // The seed tables list attributes leaf first after the id; the generator wants
        // them root first.
        let programs = rows(PROGRAMS).iter().map(|r| root_first(r)).collect();
        let types = rows(TYPES).iter().map(|r| root_first(r)).collect();
        let funds = rows(FUNDS).iter().map(|r| root_first(r)).collect();
        let mut r = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(SAMPLE.as_bytes());
        let header = r.headers().cloned().unwrap_or_default();
        let pos = |name: &str| header.iter().position(|h| h == name).unwrap_or(0);
        let (amount, rs) = (pos("amount"), pos("revenue_or_spending"));
        let amounts = r
            .records()
            .filter_map(|rec| rec.ok())
            .filter_map(|rec| {
                let a: f64 = rec.get(amount)?.parse().ok()?;
                Some(((a * 100.0).round() as i64, rec.get(rs)? == "Revenue"))
            })
            .collect();
        Generator {
            programs,
            types,
            funds,
            amounts,
        }
    }

    /// Writes a header and `n` rows to `out`.
    pub fn write<W: Write>(
        &self,
        n: u64,
        dialect: Dialect,
        seed: u64,
        out: W,
    ) -> std::io::Result<()> {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
        let mut rng = Rng::new(seed);
        writeln!(out, "{}", dialect.header())?;
        let mut line = String::with_capacity(1024);
        for i in 0..n {
            // The draws in this order: the files of a seed stay the same across versions.
            let p = &self.programs[rng.below(self.programs.len())];
            let t = &self.types[rng.below(self.types.len())];
            let f = &self.funds[rng.below(self.funds.len())];
            let (base, revenue) = self.amounts[rng.below(self.amounts.len())];
            let row = Row {
                // Fiscal years 1999..=2027 in runs, as the real export is ordered by year.
                year: 1999 + (i * 29 / n.max(1)) as i32,
                p,
                t,
                f,
                revenue,
                // Scale the sampled amount by 0.50..1.50 so values are not all repeats.
                cents: base * (50 + rng.below(101) as i64) / 100,
            };
            line.clear();
            match dialect {
                Dialect::Api => row.api_line(&mut line),
                Dialect::Portal => row.portal_line(&mut line),
            }
            line.push('\n');
            out.write_all(line.as_bytes())?;
        }
        out.flush()
    }
}

impl Dialect {
    /// The header line of a file in this dialect.
    fn header(self) -> &'static str {
        match self {
            Dialect::Api => "\"fiscal_year\",\"related_govt_units\",\"organization_group_code\",\"organization_group\",\"department_code\",\"department\",\"program_code\",\"program\",\"character_code\",\"character\",\"object_code\",\"object\",\"sub_object_code\",\"sub_object\",\"fund_type_code\",\"fund_type\",\"fund_code\",\"fund\",\"fund_category_code\",\"fund_category\",\"revenue_or_spending\",\"amount\",\"data_as_of\",\"data_loaded_at\"",
            Dialect::Portal => "Fiscal Year,Revenue or Spending,Related Gov't Units,Organization Group Code,Organization Group,Department Code,Department,Program Code,Program,Character Code,Character,Object Code,Object,Sub-object Code,Sub-object,Fund Type Code,Fund Type,Fund Code,Fund,Fund Category Code,Fund Category,Amount",
        }
    }
}

/// One generated row: a member of each hierarchy, the year and the amount.
struct Row<'a> {
    year: i32,
    p: &'a [String; 7],
    t: &'a [String; 6],
    f: &'a [String; 6],
    revenue: bool,
    cents: i64,
}

impl Row<'_> {
    fn og_code(&self) -> i32 {
        self.p[1].parse().unwrap_or(0)
    }

    fn revenue_or_spending(&self) -> &'static str {
        if self.revenue {
            "Revenue"
        } else {
            "Spending"
        }
    }

    /// The member columns both dialects write in the same order: department to
    /// program, the type hierarchy, fund type to fund.
    fn shared_columns(&self) -> impl Iterator<Item = &str> {
        self.p[2..]
            .iter()
            .chain(self.t.iter())
            .chain(self.f[..4].iter())
            .map(String::as_str)
    }

    /// The API export's line: every field quoted, codes as text, YES/NO.
    fn api_line(&self, line: &mut String) {
        let f = self.f;
        let year = self.year.to_string();
        let og_code = format!("{:02}", self.og_code());
        let related = if self.p[0] == "Yes" { "YES" } else { "NO" };
        let amount = plain_amount(self.cents);
        let fields = [year.as_str(), related, &og_code]
            .into_iter()
            .chain(self.shared_columns())
            .chain([
                f[4].strip_suffix(".0").unwrap_or(&f[4]),
                &f[5],
                self.revenue_or_spending(),
                &amount,
            ]);
        for field in fields {
            push_quoted(line, field);
            line.push(',');
        }
        line.push_str("\"2026-09-20T23:05:20.000\",\"2026-09-21T03:03:01.000\"");
    }

    /// The portal export's line: quoted only where needed, grouped amounts.
    fn portal_line(&self, line: &mut String) {
        let year = self.year.to_string();
        let og_code = self.og_code().to_string();
        let amount = grouped_amount(self.cents);
        let fields = [
            year.as_str(),
            self.revenue_or_spending(),
            &self.p[0],
            &og_code,
        ]
        .into_iter()
        .chain(self.shared_columns())
        .chain([self.f[4].as_str(), &self.f[5], &amount]);
        for (i, field) in fields.enumerate() {
            if i > 0 {
                line.push(',');
            }
            push_needed(line, field);
        }
    }
}

fn push_quoted(out: &mut String, field: &str) {
    out.push('"');
    for c in field.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}

fn push_needed(out: &mut String, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        push_quoted(out, field);
    } else {
        out.push_str(field);
    }
}

/// `-1234.5` style, as the API writes amounts (no trailing zeros).
pub fn plain_amount(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let a = cents.unsigned_abs();
    let (int, frac) = (a / 100, a % 100);
    match frac {
        0 => format!("{sign}{int}"),
        f if f % 10 == 0 => format!("{sign}{int}.{}", f / 10),
        f => format!("{sign}{int}.{f:02}"),
    }
}

/// `-1,234.50` style, as the portal export may write amounts.
pub fn grouped_amount(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let a = cents.unsigned_abs();
    let int = (a / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}{grouped}.{:02}", a % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        let g = Generator::new();
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        g.write(500, Dialect::Api, 7, &mut a).unwrap();
        g.write(500, Dialect::Api, 7, &mut b).unwrap();
        g.write(500, Dialect::Api, 8, &mut c).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(String::from_utf8(a).unwrap().lines().count(), 501);
    }

    #[test]
    fn both_dialects_are_valid_csv_of_the_right_width() {
        let g = Generator::new();
        for (dialect, width) in [(Dialect::Api, 24), (Dialect::Portal, 22)] {
            let mut out = Vec::new();
            g.write(300, dialect, 1, &mut out).unwrap();
            let mut r = csv::Reader::from_reader(&out[..]);
            assert_eq!(r.headers().unwrap().len(), width);
            assert_eq!(
                r.records()
                    .map(|x| x.unwrap().len())
                    .filter(|l| *l == width)
                    .count(),
                300
            );
        }
        assert_eq!(grouped_amount(-123456789), "-1,234,567.89");
        assert_eq!(plain_amount(216916650), "2169166.5");
    }
}
