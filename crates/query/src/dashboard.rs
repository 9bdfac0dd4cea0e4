//! The original sample dashboard's four charts and the original users' query, as SQL
//! over the `report` schema (DOMAIN.md, "The original sample dashboard").

/// A named query of the dashboard.
#[derive(Debug, Clone, Copy)]
pub struct NamedQuery {
    pub id: &'static str,
    pub title: &'static str,
    pub sql: &'static str,
}

/// The original users' query, verbatim.
pub const ORIGINAL_QUERY: NamedQuery = NamedQuery {
    id: "average_amount",
    title: "Average amount by revenue or spending (the original users' query)",
    sql: "select f.revenue_or_spending, avg(t.amount) as average_amount
from report.transaction as t
join report.finance as f on t.finance_id = f.finance_id
group by f.revenue_or_spending
order by f.revenue_or_spending;",
};

/// The four charts of the original dashboard, in its order.
pub const CHARTS: [NamedQuery; 4] = [
    NamedQuery {
        id: "transactions_by_organization_group",
        title: "Percentage of transactions by organization group",
        sql: "select p.organization_group, count(*) as transactions,
       round(100.0 * count(*) / sum(count(*)) over (), 2) as percent
from report.transaction t
join report.program p on t.program_id = p.program_id
group by p.organization_group
order by transactions desc, p.organization_group",
    },
    NamedQuery {
        id: "tax_revenue_distribution",
        title: "Distribution of taxes as revenue (histogram of amounts, 10 bins)",
        sql: "with taxes as (
  select cast(t.amount as double) as amount
  from report.transaction t
  join report.type ty on t.type_id = ty.type_id
  join report.finance f on t.finance_id = f.finance_id
  where f.revenue_or_spending = 'Revenue' and ty.character like '%Taxes'
), w as (
  -- One scan: the bounds ride along as window values (DataFusion inlines a CTE at
  -- every use, so a separate bounds CTE would scan the fact table again).
  select amount, min(amount) over () as lo, max(amount) over () as hi from taxes
), counts as (
  select least(cast(floor((amount - lo) / greatest((hi - lo) / 10, 0.01)) as bigint), 9) as bin,
         min(lo) as lo, min(hi) as hi, count(*) as transactions
  from w group by 1
), g as (
  select s.value as bin, max(c.lo) over () as lo, max(c.hi) over () as hi,
         coalesce(c.transactions, 0) as transactions
  -- The ten bins as VALUES, not generate_series: a Ballista cluster can run VALUES.
  from (values (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)) as s(value)
  left join counts as c on c.bin = s.value
)
select bin,
       round(lo + bin * (hi - lo) / 10, 2) as bin_from,
       round(lo + (bin + 1) * (hi - lo) / 10, 2) as bin_to,
       transactions
from g
where lo is not null
order by bin",
    },
    NamedQuery {
        id: "net_by_organization_group",
        title: "Net profit by organization group (revenue minus spending)",
        sql: "select p.organization_group,
       sum(case when f.revenue_or_spending = 'Revenue' then t.amount else -t.amount end) as net
from report.transaction t
join report.program p on t.program_id = p.program_id
join report.finance f on t.finance_id = f.finance_id
group by p.organization_group
order by net",
    },
    NamedQuery {
        id: "top_fund_types_by_max_spending",
        title: "Top 10 fund types by maximum spending",
        sql: "select fu.fund_type, max(t.amount) as max_spending
from report.transaction t
join report.fund fu on t.fund_id = fu.fund_id
join report.finance f on t.finance_id = f.finance_id
where f.revenue_or_spending = 'Spending'
group by fu.fund_type
order by max_spending desc, fu.fund_type
limit 10",
    },
];
