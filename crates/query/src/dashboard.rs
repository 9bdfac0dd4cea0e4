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
), bounds as (
  select min(amount) as lo, max(amount) as hi from taxes
), binned as (
  select least(cast(floor((amount - lo) / greatest((hi - lo) / 10, 0.01)) as bigint), 9) as bin
  from taxes, bounds
), counts as (
  select bin, count(*) as transactions from binned group by bin
)
select s.value as bin,
       round(b.lo + s.value * (b.hi - b.lo) / 10, 2) as bin_from,
       round(b.lo + (s.value + 1) * (b.hi - b.lo) / 10, 2) as bin_to,
       coalesce(c.transactions, 0) as transactions
from generate_series(0, 9) as s
cross join bounds as b
left join counts as c on c.bin = s.value
where b.lo is not null
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
