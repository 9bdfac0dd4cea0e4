//! The requests of a fetch: which rows (fiscal years), the count request and the page
//! requests, and how the portal's answers are checked.

use citybooks_model::HeaderMap;
use citybooks_store::config::FetchConfig;
use url::Url;

use crate::FetchError;

/// Which fiscal years to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Years {
    All,
    One(i32),
    Since(i32),
}

impl Years {
    /// The SoQL filter (`fiscal_year` is a text column of `bpnb-jwfb`, so the year is
    /// quoted; four-digit years compare correctly as text).
    pub fn soql(self) -> Option<String> {
        match self {
            Years::All => None,
            Years::One(y) => Some(format!("fiscal_year = '{y}'")),
            Years::Since(y) => Some(format!("fiscal_year >= '{y}'")),
        }
    }

    /// For people: "all fiscal years", "fiscal year 2025", "fiscal years 2020 on".
    pub fn describe(self) -> String {
        match self {
            Years::All => "all fiscal years".into(),
            Years::One(y) => format!("fiscal year {y}"),
            Years::Since(y) => format!("fiscal years {y} on"),
        }
    }
}

/// One fetch's query against a portal.
#[derive(Debug, Clone)]
pub struct Query {
    pub portal: Url,
    pub dataset: String,
    pub years: Years,
    pub page_rows: u64,
}

/// Most rows the portal returns per page.
pub const MAX_PAGE_ROWS: u64 = 50_000;

impl Query {
    /// The query `[fetch]` describes for `years`, from `portal` (None: `[fetch] portal`);
    /// `page_rows` kept within 1 and [`MAX_PAGE_ROWS`] (as the configuration keeps it).
    pub fn from_config(
        cfg: &FetchConfig,
        years: Years,
        portal: Option<&str>,
    ) -> Result<Query, FetchError> {
        let portal = portal.unwrap_or(&cfg.portal);
        Ok(Query {
            portal: Url::parse(portal).map_err(|source| FetchError::BadPortal {
                portal: portal.to_string(),
                source,
            })?,
            dataset: cfg.dataset.clone(),
            years,
            page_rows: cfg.page_rows.clamp(1, MAX_PAGE_ROWS),
        })
    }

    fn resource(&self, ext: &str) -> Url {
        let mut url = self.portal.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}/resource/{}.{ext}", self.dataset));
        url
    }

    /// `GET .json?$select=count(*) AS n[&$where=...]`: how many rows the fetch will get.
    pub fn count_url(&self) -> Url {
        let mut url = self.resource("json");
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("$select", "count(*) AS n");
            if let Some(w) = self.years.soql() {
                q.append_pair("$where", &w);
            }
        }
        url
    }

    /// `GET .csv?$limit=..&$offset=..&$order=:id[&$where=...]`: page `page` (from 0).
    pub fn page_url(&self, page: u64) -> Url {
        let mut url = self.resource("csv");
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("$limit", &self.page_rows.to_string());
            q.append_pair("$offset", &(page * self.page_rows).to_string());
            q.append_pair("$order", ":id");
            if let Some(w) = self.years.soql() {
                q.append_pair("$where", &w);
            }
        }
        url
    }

    /// Identifies the query (not its answer): the staging folder of a resumable fetch.
    pub fn key(&self) -> String {
        use sha2::{Digest, Sha256};
        let text = format!(
            "{}|{}|{:?}|{}",
            self.portal, self.dataset, self.years, self.page_rows
        );
        hex::encode(&Sha256::digest(text.as_bytes())[..8])
    }

    /// Rows of page `page` when the query has `total` rows.
    pub fn rows_of_page(&self, page: u64, total: u64) -> u64 {
        total
            .saturating_sub(page * self.page_rows)
            .min(self.page_rows)
    }

    /// Pages of a query with `total` rows.
    pub fn pages(&self, total: u64) -> u64 {
        total.div_ceil(self.page_rows)
    }
}

/// What is wrong with a page the portal sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// Not the ledger: the header is not one of the export dialects.
    #[error("the response is not the ledger's CSV: {reason} (it begins {start:?})")]
    NotLedger { reason: String, start: String },
    /// A broken or short body: worth asking again.
    #[error("the page is incomplete: {0}")]
    Incomplete(String),
}

/// Checks a page: a ledger header (either dialect, DOMAIN.md) and exactly `expected`
/// complete records. Returns the header line.
pub fn check_page(body: &[u8], expected: u64) -> Result<String, PageError> {
    let start = || String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
    let header_end = body.iter().position(|b| *b == b'\n').unwrap_or(body.len());
    let header_line = String::from_utf8_lossy(&body[..header_end])
        .trim_end_matches('\r')
        .to_string();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body);
    let headers = reader.headers().map_err(|e| PageError::NotLedger {
        reason: e.to_string(),
        start: start(),
    })?;
    HeaderMap::from_headers(headers.iter()).map_err(|e| PageError::NotLedger {
        reason: e.to_string(),
        start: start(),
    })?;
    let width = headers.len();
    let mut rows = 0u64;
    for record in reader.records() {
        let record =
            record.map_err(|e| PageError::Incomplete(format!("record {}: {e}", rows + 1)))?;
        if record.len() != width {
            return Err(PageError::Incomplete(format!(
                "record {} has {} fields, the header {width}",
                rows + 1,
                record.len()
            )));
        }
        rows += 1;
    }
    if !body.is_empty() && !body.ends_with(b"\n") && rows > 0 {
        return Err(PageError::Incomplete("the body stops mid-line".into()));
    }
    if rows != expected {
        return Err(PageError::Incomplete(format!(
            "{rows} rows instead of {expected}"
        )));
    }
    Ok(header_line)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "\"fiscal_year\",\"related_govt_units\",\"organization_group_code\",\"organization_group\",\"department_code\",\"department\",\"program_code\",\"program\",\"character_code\",\"character\",\"object_code\",\"object\",\"sub_object_code\",\"sub_object\",\"fund_type_code\",\"fund_type\",\"fund_code\",\"fund\",\"fund_category_code\",\"fund_category\",\"revenue_or_spending\",\"amount\",\"data_as_of\",\"data_loaded_at\"";

    fn row() -> String {
        let mut cells = vec!["\"x\""; 24];
        cells[0] = "\"2025\"";
        cells[21] = "\"1.00\"";
        cells.join(",")
    }

    #[test]
    fn urls_carry_paging_order_filter() {
        let q = Query {
            portal: Url::parse("https://data.sfgov.org").unwrap(),
            dataset: "bpnb-jwfb".into(),
            years: Years::Since(2020),
            page_rows: 50_000,
        };
        let page = q.page_url(2).to_string();
        assert!(
            page.starts_with("https://data.sfgov.org/resource/bpnb-jwfb.csv?"),
            "{page}"
        );
        assert!(page.contains("%24limit=50000&%24offset=100000&%24order=%3Aid&%24where=fiscal_year+%3E%3D+%272020%27"), "{page}");
        assert!(q.count_url().to_string().contains("count%28*%29"));
        assert_eq!(q.pages(100_001), 3);
        assert_eq!(q.rows_of_page(2, 100_001), 1);
        assert_ne!(
            q.key(),
            Query {
                years: Years::All,
                ..q.clone()
            }
            .key()
        );
    }

    #[test]
    fn pages_are_checked() {
        let good = format!("{HEADER}\n{}\n{}\n", row(), row());
        assert_eq!(check_page(good.as_bytes(), 2).unwrap(), HEADER);
        assert!(matches!(
            check_page(good.as_bytes(), 3),
            Err(PageError::Incomplete(_))
        ));
        let cut = &good[..good.len() - 5];
        assert!(matches!(
            check_page(cut.as_bytes(), 2),
            Err(PageError::Incomplete(_))
        ));
        let other = good.replace("\"amount\"", "\"amount_usd\"");
        assert!(matches!(
            check_page(other.as_bytes(), 2),
            Err(PageError::NotLedger { .. })
        ));
        let html = b"<html><body>Service unavailable</body></html>";
        assert!(matches!(
            check_page(html, 2),
            Err(PageError::NotLedger { .. })
        ));
    }
}
