// Explore: OpenBook-style drill-down of one hierarchy (organization, type or fund) for a
// fiscal year, revenue or spending, with or without related government units; or the
// trend of the current selection over all fiscal years.
//
// State lives in the URL (app.js): year=2025 | mode=trend, side, related=include, h,
// path (repeated, one per drilled level).

import { api, query } from './api.js';
import { renderChart, clearChart, valueAxis, categoryAxis, POSITIVE, NEGATIVE, PALETTE } from './charts.js';
import { formatAmount, formatInt, compareDecimal, compactMoney, toCsv, downloadText, slug, escapeHtml } from './format.js';
import { h } from './table.js';

const SIDES = ['Spending', 'Revenue'];

/** Exact sum of decimal strings (BigInt at the largest scale seen). */
function sumDecimals(values) {
  const scale = Math.max(0, ...values.map((v) => (String(v).split('.')[1] || '').length));
  let total = 0n;
  for (const v of values) {
    const [i, f = ''] = String(v).replace('-', '').split('.');
    const n = BigInt(i + f.padEnd(scale, '0'));
    total += String(v).startsWith('-') ? -n : n;
  }
  const neg = total < 0n;
  const digits = (neg ? -total : total).toString().padStart(scale + 1, '0');
  return (neg ? '-' : '') + (scale ? digits.slice(0, -scale) + '.' + digits.slice(-scale) : digits);
}

function fyLabel(year) {
  return year === 'all' ? 'all fiscal years' : `FY${year}`;
}

export function createExplore({ navigate, sqlLink, showRows }) {
  const $ = (id) => document.getElementById(id);
  const yearSelect = $('year-select');
  const trendButton = $('mode-trend');
  const sideSelect = $('side-select');
  const hierarchySelect = $('hierarchy-select');
  const relatedToggle = $('related-toggle');
  const csvButton = $('csv-download');
  const breadcrumb = $('breadcrumb');
  const caption = $('explore-caption');
  const totalEl = $('explore-total');
  const subEl = $('explore-sub');
  const message = $('explore-message');
  const chartEl = $('explore-chart');
  const chartTitle = $('explore-chart-title');
  const hint = $('explore-hint');
  const table = $('explore-table');
  const tableTitle = $('explore-table-title');
  const sqlPre = $('explore-sql');
  const sqlOpen = $('explore-sql-open');

  let years = null; // Promise<number[]>, loaded once
  // The hierarchies and their levels, as the ledger describes them (GET /api/hierarchies):
  // {id: [{column, label}, ...]}, in the ledger's order; loaded once.
  let hierarchies = null;
  let state = null; // the state currently shown
  let data = null; // what the API answered for `state`
  let sort = { key: 'amount', dir: 'desc' };
  let seq = 0; // drops answers to superseded requests

  function loadYears() {
    if (!years) {
      years = api('/api/years').then((r) => r.fiscal_years).catch((e) => {
        years = null;
        throw e;
      });
    }
    return years;
  }

  /** Loads the hierarchies once and lists them in the hierarchy picker. */
  async function loadHierarchies() {
    if (!hierarchies) {
      const r = await api('/api/hierarchies');
      hierarchies = Object.fromEntries(r.hierarchies.map((x) => [x.id, x.levels]));
      hierarchySelect.replaceChildren(
        ...r.hierarchies.map((x) => {
          const o = document.createElement('option');
          o.value = x.id;
          const [id, ...rest] = x.id;
          o.textContent = `${id.toUpperCase()}${rest.join('')} · ${x.levels.map((l) => l.label.toLowerCase()).join(' › ')}`;
          return o;
        }),
      );
    }
    return hierarchies;
  }

  /** The labels of hierarchy `h`'s levels (breadcrumbs before the data arrives). */
  const labels = (h) => hierarchies[h].map((l) => l.label);
  /** The deepest level a path can choose: the last level lists, it is not drilled. */
  const maxDepth = (h) => hierarchies[h].length - 1;

  /** URL parameters → a complete, valid state (defaults filled in). */
  function parse(params, fiscalYears) {
    const ids = Object.keys(hierarchies);
    const h = ids.includes(params.get('h')) ? params.get('h') : ids[0];
    const side = SIDES.includes(params.get('side')) ? params.get('side') : 'Spending';
    const trend = params.get('mode') === 'trend';
    let year = params.get('year');
    if (year !== 'all') {
      const n = Number(year);
      year = Number.isInteger(n) && year !== null && year !== '' ? n : fiscalYears[0] ?? 'all';
    }
    return {
      trend,
      year,
      side,
      related: params.get('related') === 'include',
      h,
      path: params.getAll('path').slice(0, maxDepth(h)),
    };
  }

  /** A state → its URL parameters (the inverse of parse). */
  function toParams(s) {
    return {
      ...(s.trend ? { mode: 'trend' } : { year: s.year }),
      side: s.side,
      ...(s.related ? { related: 'include' } : {}),
      h: s.h,
      path: s.path,
    };
  }

  const key = (s) => JSON.stringify(toParams(s));

  /**
   * The filter of a number shown for state `s` (GET /api/rows): the whole selection, or
   * with `name` one of its rows (a member one level down, or in the trend a year).
   */
  function rowsFilter(s, name) {
    const common = { side: s.side, related: s.related ? 'include' : 'exclude', h: s.h };
    if (s.trend) return { ...common, year: name ?? 'all', path: s.path };
    return { ...common, year: s.year, path: name === undefined ? s.path : [...s.path, name] };
  }

  function rowsLabel(s, name) {
    const where = name === undefined ? (s.path.at(-1) ?? `all ${s.side.toLowerCase()}`) : (s.trend ? `FY${name}` : name);
    return `${where} (${s.side}, ${s.trend && name === undefined ? 'every fiscal year' : fyLabel(s.trend ? name : s.year)})`;
  }

  /** Moves to a new state: a new history entry, unless `replace`. */
  function go(changes, replace = false) {
    navigate('explore', toParams({ ...state, ...changes }), { replace });
  }

  // ---- controls -------------------------------------------------------------------

  yearSelect.addEventListener('change', () => {
    const v = yearSelect.value;
    go({ trend: false, year: v === 'all' ? 'all' : Number(v) });
  });
  trendButton.addEventListener('click', () => go({ trend: !state.trend }));
  sideSelect.addEventListener('click', (e) => {
    const b = e.target.closest('button[data-value]');
    if (b && b.dataset.value !== state.side) go({ side: b.dataset.value });
  });
  hierarchySelect.addEventListener('change', () => go({ h: hierarchySelect.value, path: [] }));
  relatedToggle.addEventListener('change', () => go({ related: relatedToggle.checked }));
  csvButton.addEventListener('click', downloadCsv);
  $('explore-total-rows').addEventListener('click', () => {
    if (state) showRows(rowsFilter(state), rowsLabel(state));
  });

  function syncControls(s, fiscalYears) {
    const options = [...fiscalYears.map((y) => [String(y), `FY${y}  (Jul ${y - 1} – Jun ${y})`]), ['all', 'All years']];
    if (yearSelect.options.length !== options.length) {
      yearSelect.replaceChildren(...options.map(([v, t]) => h('option', { value: v }, t)));
    }
    yearSelect.value = String(s.year);
    yearSelect.classList.toggle('dimmed', s.trend);
    trendButton.setAttribute('aria-pressed', String(s.trend));
    for (const b of sideSelect.querySelectorAll('button')) {
      const on = b.dataset.value === s.side;
      b.setAttribute('aria-checked', String(on));
      b.classList.toggle('active', on);
    }
    hierarchySelect.value = s.h;
    relatedToggle.checked = s.related;
  }

  // ---- breadcrumb ------------------------------------------------------------------

  function renderBreadcrumb(s, levels) {
    const crumbs = [{ label: 'All', path: [] }, ...s.path.map((name, i) => ({ label: name, path: s.path.slice(0, i + 1), level: levels[i] }))];
    breadcrumb.replaceChildren();
    crumbs.forEach((c, i) => {
      if (i > 0) breadcrumb.append(h('span', { class: 'sep', 'aria-hidden': 'true' }, '›'));
      const last = i === crumbs.length - 1;
      const a = h('a', {
        href: '?' + new URLSearchParams(flatten({ view: 'explore', ...toParams({ ...s, path: c.path }) })),
        title: c.level ? `${c.level}: ${c.label}` : 'Top of the hierarchy',
        'aria-current': last ? 'page' : null,
      }, c.label);
      a.addEventListener('click', (e) => {
        if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return; // new tab etc.
        e.preventDefault();
        if (!last) go({ path: c.path });
      });
      breadcrumb.append(a);
    });
  }

  // ---- table -------------------------------------------------------------------------

  function sortedRows() {
    const rows = [...data.rows];
    const dir = sort.dir === 'asc' ? 1 : -1;
    const cmp = {
      name: (a, b) => String(a.name).localeCompare(String(b.name), 'en', { numeric: true }),
      amount: (a, b) => compareDecimal(a.amount, b.amount),
      transactions: (a, b) => a.transactions - b.transactions,
    }[sort.key];
    return rows.sort((a, b) => dir * cmp(a, b) || String(a.name).localeCompare(String(b.name)));
  }

  function renderTable() {
    const s = state;
    const drillable = !s.trend && data.depth < maxDepth(s.h);
    const nameLabel = s.trend ? 'Fiscal year' : data.levels[data.depth].label;
    const total = Number(data.total);
    const header = [
      ['name', nameLabel, ''],
      ['amount', 'Amount ($)', 'num'],
      [null, 'Share', 'num share'],
      ['transactions', 'Transactions', 'num'],
      [null, 'Rows', 'rows-col'],
    ];
    const thead = h('thead', {}, h('tr', {}, header.map(([k, label, cls]) => {
      if (!k) return h('th', { class: cls, scope: 'col' }, label);
      const active = sort.key === k;
      const th = h('th', {
        class: cls + ' sortable' + (active ? ' sorted' : ''),
        scope: 'col',
        'aria-sort': active ? (sort.dir === 'asc' ? 'ascending' : 'descending') : 'none',
        'data-sort': k,
      }, h('button', { type: 'button', class: 'sort-button' }, label, h('span', { class: 'sort-arrow', 'aria-hidden': 'true' }, active ? (sort.dir === 'asc' ? '▲' : '▼') : '↕')));
      th.addEventListener('click', () => {
        // Names start ascending, numbers descending; a second click reverses.
        sort = sort.key === k ? { key: k, dir: sort.dir === 'asc' ? 'desc' : 'asc' } : { key: k, dir: k === 'name' ? 'asc' : 'desc' };
        renderTable();
      });
      return th;
    })));
    const body = h('tbody');
    for (const row of sortedRows()) {
      const share = total !== 0 ? (100 * Number(row.amount)) / total : null;
      const tr = h('tr', { 'data-name': String(row.name), class: drillable ? 'drillable' : '', tabindex: drillable ? '0' : null },
        h('td', { class: 'name' }, s.trend ? `FY${row.name}` : String(row.name)),
        h('td', { class: 'num' + (String(row.amount).startsWith('-') ? ' negative' : ''), 'data-amount': row.amount }, formatAmount(row.amount)),
        h('td', { class: 'num share' }, share === null ? '' : h('span', { class: 'share-cell' },
          h('span', { class: 'share-bar', style: `width:${Math.max(0, Math.min(100, share)).toFixed(1)}%` }),
          h('span', {}, `${share.toFixed(1)}%`))),
        h('td', { class: 'num' }, formatInt(row.transactions)),
        h('td', { class: 'rows-col' }, h('button', {
          type: 'button',
          class: 'button small',
          'data-testid': 'explore-rows',
          title: 'Show the rows behind this number',
          onclick: (e) => {
            e.stopPropagation();
            showRows(rowsFilter(s, row.name), rowsLabel(s, row.name));
          },
        }, 'Rows')));
      if (drillable) {
        tr.addEventListener('click', () => drill(row.name));
        tr.addEventListener('keydown', (e) => {
          if (e.key === 'Enter') drill(row.name);
        });
      } else if (s.trend) {
        tr.classList.add('drillable');
        tr.title = `Show FY${row.name}`;
        tr.addEventListener('click', () => go({ trend: false, year: Number(row.name) }));
      }
      body.append(tr);
    }
    if (!data.rows.length) body.append(h('tr', { class: 'more' }, h('td', { colspan: 5 }, 'Nothing for this selection.')));
    table.replaceChildren(thead, body);
    tableTitle.textContent = s.trend ? 'By fiscal year' : data.levels[data.depth].label + 's';
  }

  function drill(name) {
    if (state.trend || data.depth >= maxDepth(state.h)) return;
    go({ path: [...state.path, name] });
  }

  // ---- chart -------------------------------------------------------------------------

  function renderLevelChart() {
    const rows = data.rows; // the API's order: amount descending
    const many = rows.length > 18;
    const option = {
      // A fixed label column: containLabel mis-measures truncated labels.
      grid: { left: 236, right: many ? 40 : 24, top: 8, bottom: 28 },
      tooltip: {
        trigger: 'axis',
        axisPointer: { type: 'shadow' },
        formatter: (ps) => {
          const r = rows[ps[0].dataIndex];
          return `${escapeHtml(r.name)}<br><b>$${formatAmount(r.amount)}</b><br>${formatInt(r.transactions)} transactions`;
        },
      },
      xAxis: valueAxis({ axisLabel: { formatter: compactMoney, color: '#6b7785' } }),
      yAxis: categoryAxis(rows.map((r) => r.name), { inverse: true, axisLabel: { width: 220, overflow: 'truncate' } }),
      dataZoom: many
        ? [
          { type: 'slider', yAxisIndex: 0, startValue: 0, endValue: 17, width: 14, right: 8, showDetail: false, brushSelect: false },
          { type: 'inside', yAxisIndex: 0, zoomOnMouseWheel: false, moveOnMouseWheel: true },
        ]
        : [],
      series: [{
        type: 'bar',
        barMaxWidth: 26,
        data: rows.map((r) => ({ value: Number(r.amount), itemStyle: { color: Number(r.amount) < 0 ? NEGATIVE : PALETTE[0] } })),
        cursor: data.depth < maxDepth(state.h) ? 'pointer' : 'default',
      }],
    };
    // Height follows the number of bars shown (at most 18; more scroll with the slider).
    chartEl.style.height = `${Math.max(260, Math.min(rows.length, 18) * 32 + 60)}px`;
    // A bar drills down; at the lowest level it shows its rows.
    renderChart(chartEl, option, rows.length, (e) => {
      const name = rows[e.dataIndex].name;
      if (data.depth < maxDepth(state.h)) drill(name);
      else showRows(rowsFilter(state, name), rowsLabel(state, name));
    });
    chartTitle.textContent = `${data.levels[data.depth].label}s by amount`;
    hint.textContent = data.depth < maxDepth(state.h)
      ? 'Click a bar or a row to drill down; "Rows" shows the rows behind a number'
      : 'Lowest level of the hierarchy: click a bar to see its rows';
  }

  function renderTrendChart() {
    const rows = data.rows;
    const option = {
      grid: { left: 12, right: 24, top: 24, bottom: 28, containLabel: true },
      tooltip: {
        trigger: 'axis',
        formatter: (ps) => {
          const r = rows[ps[0].dataIndex];
          return `FY${r.name}<br><b>$${formatAmount(r.amount)}</b><br>${formatInt(r.transactions)} transactions`;
        },
      },
      xAxis: categoryAxis(rows.map((r) => `FY${r.name}`), { boundaryGap: false }),
      yAxis: valueAxis({ axisLabel: { formatter: compactMoney, color: '#6b7785' }, scale: false }),
      series: [{
        type: 'line',
        data: rows.map((r) => Number(r.amount)),
        symbolSize: 7,
        lineStyle: { width: 2.5, color: PALETTE[0] },
        itemStyle: { color: PALETTE[0] },
        areaStyle: { color: 'rgba(47,93,138,0.08)' },
      }],
    };
    chartEl.style.height = '380px';
    // A point shows its rows; the table's rows open a year.
    renderChart(chartEl, option, rows.length, (e) => {
      const year = Number(rows[e.dataIndex].name);
      showRows(rowsFilter(state, year), rowsLabel(state, year));
    });
    chartTitle.textContent = 'Amount per fiscal year';
    hint.textContent = 'Click a point to see its rows, a row of the table to open its year';
  }

  // ---- loading -------------------------------------------------------------------------

  async function load(s) {
    const mySeq = ++seq;
    message.hidden = true;
    clearChart(chartEl);
    table.setAttribute('aria-busy', 'true');
    csvButton.disabled = true;
    const common = { side: s.side, related: s.related ? 'include' : 'exclude', h: s.h, path: s.path };
    try {
      let d;
      if (s.trend) {
        const r = await api('/api/trend' + query(common));
        d = {
          levels: hierarchies[s.h],
          depth: s.path.length,
          rows: r.rows.map((x) => ({ name: x.fiscal_year, amount: x.amount, transactions: x.transactions })),
          total: r.rows.length ? sumDecimals(r.rows.map((x) => x.amount)) : '0.00',
          transactions: r.rows.reduce((n, x) => n + x.transactions, 0),
          sql: r.sql,
        };
      } else {
        d = await api('/api/explore' + query({ year: s.year, ...common }));
      }
      if (mySeq !== seq) return; // a newer request superseded this one
      data = d;
      render();
    } catch (e) {
      if (mySeq !== seq) return;
      data = null;
      table.replaceChildren();
      totalEl.textContent = '';
      totalEl.removeAttribute('data-amount');
      message.textContent = e.message;
      message.className = 'message error';
      message.hidden = false;
    } finally {
      if (mySeq === seq) table.removeAttribute('aria-busy');
    }
  }

  function render() {
    const s = state;
    const levels = data.levels.map((l) => l.label);
    renderBreadcrumb(s, levels);
    const where = s.path.length ? ` in ${s.path[s.path.length - 1]}` : '';
    caption.textContent = s.trend
      ? `${s.side}${where}, fiscal years ${data.rows[0]?.name ?? ''}–${data.rows.at(-1)?.name ?? ''}`
      : `${s.side} · ${fyLabel(s.year)} · ${levels[data.depth]}s${where}`;
    totalEl.textContent = '$' + formatAmount(data.total);
    totalEl.dataset.amount = data.total;
    totalEl.classList.toggle('negative', String(data.total).startsWith('-'));
    subEl.textContent = `${formatInt(data.transactions)} transactions · ${data.rows.length} ${s.trend ? 'years' : 'rows'} · related government units ${s.related ? 'included' : 'excluded'}`;
    renderTable();
    if (s.trend) renderTrendChart();
    else renderLevelChart();
    sqlPre.textContent = data.sql || '';
    sqlOpen.href = sqlLink(data.sql || '');
    csvButton.disabled = false;
  }

  function downloadCsv() {
    if (!data) return;
    const nameColumn = state.trend ? 'fiscal_year' : data.levels[data.depth].column || 'name';
    const rows = sortedRows().map((r) => [r.name, r.amount, r.transactions]);
    const file = slug('citybooks', state.side, state.trend ? 'trend' : fyLabel(state.year), state.h, ...state.path) + '.csv';
    downloadText(file, toCsv([nameColumn, 'amount', 'transactions'], rows));
  }

  return {
    /** Shows the state described by the URL parameters. */
    async apply(params) {
      const at = location.search;
      let fiscalYears;
      try {
        [fiscalYears] = await Promise.all([loadYears(), loadHierarchies()]);
        // Navigated again while the years loaded: that newer call shows its own state.
        if (location.search !== at) return;
      } catch (e) {
        message.textContent = e.message;
        message.className = 'message error';
        message.hidden = false;
        return;
      }
      const s = parse(params, fiscalYears);
      // Make the URL explicit (year filled in, junk dropped) without a new history entry.
      navigate('explore', toParams(s), { replace: true, silent: true });
      syncControls(s, fiscalYears);
      if (state && key(s) === key(state) && data) return; // already shown
      const sameLevel = state && state.h === s.h && state.trend === s.trend && state.path.length === s.path.length;
      if (!sameLevel) sort = { key: 'amount', dir: 'desc' };
      state = s;
      renderBreadcrumb(s, labels(s.h)); // immediately, before the data arrives
      await load(s);
    },
    /** The URL parameters of what is shown (for the tab link), or null before the first visit. */
    params: () => (state ? toParams(state) : null),
  };
}

/** {k: [a, b]} → [[k, a], [k, b]] for URLSearchParams. */
function flatten(obj) {
  const out = [];
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined || v === null) continue;
    for (const x of Array.isArray(v) ? v : [v]) out.push([k, String(x)]);
  }
  return out;
}
