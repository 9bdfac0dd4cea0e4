// Overview: the original sample dashboard (DOMAIN.md) — four charts and the original
// users' query, each a card built from /api/charts and /api/charts/{id}.

import { api } from './api.js';
import { renderChart, valueAxis, categoryAxis, POSITIVE, NEGATIVE, PALETTE } from './charts.js';
import { compactMoney, formatAmount, formatInt, escapeHtml } from './format.js';
import { h, renderResultTable } from './table.js';

/** Index of a column by name (the chart SQL names its columns). */
function col(result, name) {
  const i = result.columns.findIndex((c) => c.name === name);
  if (i < 0) throw new Error(`the result has no column "${name}"`);
  return i;
}

// Horizontal bar charts keep a fixed column for their category labels.
const HBAR_GRID = { left: 196, right: 28, top: 8, bottom: 28 };
const HBAR_LABEL = { width: 180, overflow: 'truncate', color: '#2b3440' };

/**
 * A horizontal bar chart of money per category: `name` and `value` are the result's
 * columns, `label` names the value in the tooltip, `color(value)` colours each bar.
 */
function horizontalBars(r, name, value, label, { color, inverse = false }) {
  const g = col(r, name), v = col(r, value);
  return [{
    grid: HBAR_GRID,
    tooltip: {
      trigger: 'axis',
      axisPointer: { type: 'shadow' },
      formatter: (ps) => {
        const row = r.rows[ps[0].dataIndex];
        return `${escapeHtml(row[g])}<br>${label} <b>$${formatAmount(row[v])}</b>`;
      },
    },
    xAxis: valueAxis({ axisLabel: { formatter: compactMoney, color: '#6b7785' } }),
    yAxis: categoryAxis(r.rows.map((row) => row[g]), { inverse, axisLabel: HBAR_LABEL }),
    series: [{
      type: 'bar',
      data: r.rows.map((row) => ({ value: Number(row[v]), itemStyle: { color: color(Number(row[v])) } })),
      barCategoryGap: '30%',
    }],
  }, r.rows.length];
}

// One builder per chart id: result object → [ECharts option, number of data points].
const BUILDERS = {
  transactions_by_organization_group(r) {
    const g = col(r, 'organization_group'), n = col(r, 'transactions');
    const data = r.rows.map((row) => ({ name: row[g], value: Number(row[n]) }));
    return [{
      tooltip: {
        trigger: 'item',
        formatter: (p) => `${escapeHtml(p.name)}<br><b>${formatInt(p.value)}</b> transactions · ${p.percent}%`,
      },
      legend: { type: 'scroll', orient: 'vertical', right: 8, top: 'middle', textStyle: { fontSize: 12 } },
      series: [{
        type: 'pie',
        radius: ['0%', '72%'],
        center: ['32%', '52%'],
        data,
        label: { formatter: '{d}%', fontSize: 11 },
        labelLine: { length: 6, length2: 6 },
        itemStyle: { borderColor: '#fff', borderWidth: 1 },
      }],
    }, data.length];
  },

  tax_revenue_distribution(r) {
    const from = col(r, 'bin_from'), to = col(r, 'bin_to'), n = col(r, 'transactions');
    const labels = r.rows.map((row) => `${compactMoney(row[from])}–${compactMoney(row[to])}`);
    return [{
      // left: room for the first rotated label, which containLabel does not account for.
      grid: { left: 36, right: 16, top: 32, bottom: 8, containLabel: true },
      tooltip: {
        trigger: 'axis',
        axisPointer: { type: 'shadow' },
        formatter: (ps) => {
          const row = r.rows[ps[0].dataIndex];
          return `${formatAmount(row[from])} – ${formatAmount(row[to])}<br><b>${formatInt(row[n])}</b> transactions`;
        },
      },
      xAxis: categoryAxis(labels, { axisLabel: { rotate: 35, fontSize: 11, interval: 0, color: '#2b3440' } }),
      yAxis: valueAxis({ name: 'Transactions', minInterval: 1, nameTextStyle: { align: 'left', color: '#6b7785' } }),
      series: [{ type: 'bar', data: r.rows.map((row) => Number(row[n])), barCategoryGap: '4%', itemStyle: { color: '#b5483b' } }],
    }, r.rows.length];
  },

  // Negative (net spending) bars to the left, in their own colour.
  net_by_organization_group: (r) => horizontalBars(r, 'organization_group', 'net', 'Net', {
    color: (value) => (value < 0 ? NEGATIVE : POSITIVE),
  }),

  // inverse: the largest (first row) at the top.
  top_fund_types_by_max_spending: (r) => horizontalBars(r, 'fund_type', 'max_spending', 'Largest spending', {
    color: () => PALETTE[0],
    inverse: true,
  }),
};

/**
 * The category of a chart's row, as GET /api/rows?chart=ID&key=... names it: the rows
 * behind a slice or bar.
 */
const ROW_KEYS = {
  transactions_by_organization_group: (r, row) => row[col(r, 'organization_group')],
  tax_revenue_distribution: (r, row) => row[col(r, 'bin')],
  net_by_organization_group: (r, row) => row[col(r, 'organization_group')],
  top_fund_types_by_max_spending: (r, row) => row[col(r, 'fund_type')],
};

/** Titles shown on the cards: the original dashboard's wording. */
const CARD_TITLES = {
  transactions_by_organization_group: 'Percentage of transactions by organization group',
  tax_revenue_distribution: 'Distribution of taxes as revenue',
  net_by_organization_group: 'Net profit by organization group',
  top_fund_types_by_max_spending: 'Top 10 fund types by maximum spending',
  average_amount: "The original users' query",
};

/** What each card shows, in a sentence (the API's title is the fallback). */
const CARD_NOTES = {
  transactions_by_organization_group: 'Share of all ledger rows, every fiscal year, per organization group.',
  tax_revenue_distribution: 'Revenue rows whose character is a tax: number of rows per amount range (10 equal bins).',
  net_by_organization_group: 'Revenue minus spending, every fiscal year. Negative (net spending) to the left.',
  top_fund_types_by_max_spending: 'The largest single spending amount per fund type, top 10.',
  average_amount: 'Average amount of revenue and of spending rows, as the original users ran it in Redshift.',
};

export function createOverview({ sqlLink, showRows }) {
  const grid = document.getElementById('overview-grid');
  const message = document.getElementById('overview-message');
  let loaded = false;

  /** Builds one card and fills it once its data arrives. */
  function card(chart) {
    const isChart = chart.id in BUILDERS;
    const table = h('table', { class: 'data compact', 'data-testid': `table-${chart.id}` });
    const tableWrap = h('div', { class: 'table-wrap' + (isChart ? ' collapsible' : '') }, table);
    const chartEl = isChart ? h('div', { class: 'chart', 'data-chart': true, 'data-testid': `chart-${chart.id}` }) : null;
    const error = h('div', { class: 'message error', hidden: true });
    if (isChart) tableWrap.hidden = true;
    const toggle = isChart
      ? h('button', {
        type: 'button', class: 'button small', 'aria-expanded': 'false', 'data-testid': `table-toggle-${chart.id}`,
        onclick: () => {
          tableWrap.hidden = !tableWrap.hidden;
          toggle.setAttribute('aria-expanded', String(!tableWrap.hidden));
          toggle.textContent = tableWrap.hidden ? 'Table' : 'Hide table';
        },
      }, 'Table')
      : null;
    const el = h('article', { class: 'card' + (isChart ? '' : ' card-wide'), 'data-chart-id': chart.id },
      h('div', { class: 'card-head' },
        h('div', {},
          h('h2', {}, CARD_TITLES[chart.id] || chart.title),
          h('p', { class: 'card-sub' }, CARD_NOTES[chart.id] || chart.title)),
        h('div', { class: 'card-actions' },
          toggle,
          h('a', { class: 'button small', href: sqlLink(chart.sql), 'data-nav': 'sql', title: 'Open this SQL in the console' }, 'SQL'))),
      error, chartEl, tableWrap);
    grid.append(el);

    api(`/api/charts/${encodeURIComponent(chart.id)}`)
      .then((result) => {
        renderResultTable(table, result);
        if (isChart) {
          const [option, points] = BUILDERS[chart.id](result);
          // A slice or bar (or a row of its table) shows the rows behind it.
          const open = (i) => {
            const key = ROW_KEYS[chart.id](result, result.rows[i]);
            showRows({ chart: chart.id, key }, `${CARD_TITLES[chart.id]}: ${key}`);
          };
          renderChart(chartEl, option, points, (e) => open(e.dataIndex));
          table.querySelectorAll('tbody tr').forEach((tr, i) => {
            if (i >= result.rows.length) return;
            tr.classList.add('drillable');
            tr.title = 'Show the rows behind this number';
            tr.addEventListener('click', () => open(i));
          });
        }
      })
      .catch((e) => {
        error.textContent = e.message;
        error.hidden = false;
      });
  }

  async function load() {
    grid.replaceChildren();
    message.hidden = true;
    try {
      const { charts } = await api('/api/charts');
      // The four charts in dashboard order, then the original users' query (and any
      // other query the server offers) as table cards.
      const ordered = [...charts.filter((c) => c.id in BUILDERS), ...charts.filter((c) => !(c.id in BUILDERS))];
      ordered.forEach(card);
    } catch (e) {
      message.textContent = e.message;
      message.className = 'message error';
      message.hidden = false;
      loaded = false;
    }
  }

  return {
    /** Called when the URL shows the overview. */
    apply() {
      if (!loaded) {
        loaded = true;
        load();
      }
    },
    /** The overview has no parameters of its own. */
    params: () => ({}),
  };
}
