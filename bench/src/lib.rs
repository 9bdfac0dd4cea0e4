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
        match dialect {
            Dialect::Api => writeln!(
                out,
                "\"fiscal_year\",\"related_govt_units\",\"organization_group_code\",\"organization_group\",\"department_code\",\"department\",\"program_code\",\"program\",\"character_code\",\"character\",\"object_code\",\"object\",\"sub_object_code\",\"sub_object\",\"fund_type_code\",\"fund_type\",\"fund_code\",\"fund\",\"fund_category_code\",\"fund_category\",\"revenue_or_spending\",\"amount\",\"data_as_of\",\"data_loaded_at\""
            )?,
            Dialect::Portal => writeln!(
                out,
                "Fiscal Year,Revenue or Spending,Related Gov't Units,Organization Group Code,Organization Group,Department Code,Department,Program Code,Program,Character Code,Character,Object Code,Object,Sub-object Code,Sub-object,Fund Type Code,Fund Type,Fund Code,Fund,Fund Category Code,Fund Category,Amount"
            )?,
        }
        let mut line = String::with_capacity(1024);
        for i in 0..n {
            // Fiscal years 1999..=2027 in runs, as the real export is ordered by year.
            let year = 1999 + (i * 29 / n.max(1)) as i32;
            let p = &self.programs[rng.below(self.programs.len())];
            let t = &self.types[rng.below(self.types.len())];
            let f = &self.funds[rng.below(self.funds.len())];
            let (base, revenue) = self.amounts[rng.below(self.amounts.len())];
            // Scale the sampled amount by 0.50..1.50 so values are not all repeats.
            let factor = 50 + rng.below(101) as i64;
            let cents = base * factor / 100;
            let og_code: i32 = p[1].parse().unwrap_or(0);
            let rs = if revenue { "Revenue" } else { "Spending" };
            line.clear();
            match dialect {
                Dialect::Api => {
                    let fields: [&str; 20] = [
                        &year.to_string(),
                        if p[0] == "Yes" { "YES" } else { "NO" },
                        &format!("{og_code:02}"),
                        &p[2],
                        &p[3],
                        &p[4],
                        &p[5],
                        &p[6],
                        &t[0],
                        &t[1],
                        &t[2],
                        &t[3],
                        &t[4],
                        &t[5],
                        &f[0],
                        &f[1],
                        &f[2],
                        &f[3],
                        f[4].strip_suffix(".0").unwrap_or(&f[4]),
                        &f[5],
                    ];
                    for field in fields {
                        push_quoted(&mut line, field);
                        line.push(',');
                    }
                    push_quoted(&mut line, rs);
                    line.push(',');
                    push_quoted(&mut line, &plain_amount(cents));
                    line.push_str(",\"2026-09-20T23:05:20.000\",\"2026-09-21T03:03:01.000\"");
                }
                Dialect::Portal => {
                    let fields: [&str; 20] = [
                        &year.to_string(),
                        rs,
                        &p[0],
                        &og_code.to_string(),
                        &p[2],
                        &p[3],
                        &p[4],
                        &p[5],
                        &p[6],
                        &t[0],
                        &t[1],
                        &t[2],
                        &t[3],
                        &t[4],
                        &t[5],
                        &f[0],
                        &f[1],
                        &f[2],
                        &f[3],
                        &f[4],
                    ];
                    for field in fields {
                        push_needed(&mut line, field);
                        line.push(',');
                    }
                    push_needed(&mut line, &f[5]);
                    line.push(',');
                    push_needed(&mut line, &grouped_amount(cents));
                }
            }
            line.push('\n');
            out.write_all(line.as_bytes())?;
        }
        out.flush()
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
