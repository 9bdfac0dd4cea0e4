// SQL console, like Redshift's query editor: schema browser, editor, Run / Cancel,
// result table, a chart of the result and a client-side CSV export.
//
// URL state: sql=<the query text>. A query in the URL is run when the view is shown (on
// load, or by back/forward), unless it is the query whose result is already on screen.

import { api, newQueryId } from './api.js';
import { renderChart, clearChart, valueAxis, categoryAxis } from './charts.js';
import { isNumericType, formatCell, toCsv, downloadText, escapeHtml } from './format.js';
import { h, renderResultTable, shortType } from './table.js';
import { sourceLineCell } from './rows.js';

const MAX_TABLE_ROWS = 2000; // rows put in the DOM; the CSV export has them all
const MAX_CHART_POINTS = 5000;

export function createSqlConsole({ navigate }) {
  const $ = (id) => document.getElementById(id);
  const editor = $('sql-editor');
  const runButton = $('sql-run');
  const cancelButton = $('sql-cancel');
  const limitSelect = $('sql-limit');
  const status = $('sql-status');
  const resultsTable = $('sql-results');
  const exportButton = $('sql-export');
  const chartType = $('sql-chart-type');
  const xSelect = $('sql-x');
  const ySelect = $('sql-y');
  const chartEl = $('sql-chart');
  const tree = $('schema-tree');

  let schemaLoaded = false;
  let lastRunSql = null; // the text of the query whose result is shown (or running)
  let result = null;
  let running = null; // { id, controller }

  // ---- schema browser --------------------------------------------------------------

  async function loadSchema() {
    schemaLoaded = true;
    try {
      const { tables } = await api('/api/schema');
      const groups = new Map();
      for (const t of tables) {
        if (!groups.has(t.schema)) groups.set(t.schema, []);
        groups.get(t.schema).push(t);
      }
      tree.replaceChildren();
      // report first (the warehouse), then meta (loads, quarantine), then anything else.
      const rank = (s) => ({ report: 0, meta: 1 })[s] ?? 2;
      for (const [schema, ts] of [...groups].sort((a, b) => rank(a[0]) - rank(b[0]))) {
        tree.append(h('div', { class: 'schema-name' }, schema));
        for (const t of ts) {
          const qualified = `${t.schema}.${t.name}`;
          tree.append(h('details', { class: 'schema-table', 'data-table': qualified },
            h('summary', {},
              h('span', { class: 'table-name' }, t.name),
              h('span', { class: 'table-count muted' }, String(t.columns.length)),
              h('button', {
                type: 'button', class: 'link-button preview', title: `Run: select * from ${qualified} limit 100`,
                onclick: (e) => {
                  e.preventDefault();
                  editor.value = `select * from ${qualified} limit 100`;
                  run();
                },
              }, 'preview')),
            h('ul', {}, t.columns.map((c) => h('li', {},
              h('button', {
                type: 'button', class: 'column', title: `Insert "${c.name}" (${c.type}${c.nullable ? ', nullable' : ''})`,
                onclick: () => insertAtCursor(c.name),
              }, h('span', { class: 'column-name' }, c.name), h('span', { class: 'column-type' }, shortType(c.type) + (c.nullable ? '?' : ''))))))));
        }
      }
    } catch (e) {
      schemaLoaded = false;
      tree.replaceChildren(h('p', { class: 'message error' }, e.message));
    }
  }

  function insertAtCursor(text) {
    const { selectionStart: a, selectionEnd: b, value } = editor;
    editor.value = value.slice(0, a) + text + value.slice(b);
    editor.focus();
    editor.selectionStart = editor.selectionEnd = a + text.length;
  }

  // ---- running -----------------------------------------------------------------------

  function setStatus(text, kind = '') {
    status.textContent = text;
    status.className = 'status' + (kind ? ' ' + kind : '');
    status.dataset.state = kind || 'ok';
  }

  async function run({ fromUrl = false } = {}) {
    const sql = editor.value.trim();
    if (!sql) {
      setStatus('Nothing to run: type a query.', 'error');
      return;
    }
    if (running) await cancel({ quiet: true });
    lastRunSql = sql;
    // A run is a new history entry (so Back returns to the previous query); a run
    // caused by the URL itself only normalises it.
    if (!fromUrl) navigate('sql', { sql }, { silent: true });
    const id = newQueryId();
    const controller = new AbortController();
    running = { id, controller };
    runButton.disabled = true;
    cancelButton.disabled = false;
    setStatus('Running…', 'running');
    const started = performance.now();
    try {
      const r = await api('/api/sql', {
        method: 'POST',
        body: { sql, limit: Number(limitSelect.value), query_id: id, format: 'json' },
        signal: controller.signal,
      });
      if (running?.id !== id) return;
      result = r;
      const elapsed = r.elapsed_ms ?? performance.now() - started;
      setStatus(`${r.row_count.toLocaleString('en-US')} row${r.row_count === 1 ? '' : 's'}${r.truncated ? ` (truncated at the limit of ${Number(limitSelect.value).toLocaleString('en-US')})` : ''} · ${Number(elapsed).toFixed(1)} ms`);
      renderResultTable(resultsTable, r, { maxRows: MAX_TABLE_ROWS });
      linkSourceLines(resultsTable, r);
      exportButton.disabled = false;
      setupChartSelectors();
      renderResultChart();
    } catch (e) {
      if (running?.id !== id) return; // cancelled: status already says so
      result = null;
      resultsTable.replaceChildren();
      exportButton.disabled = true;
      clearChart(chartEl);
      setStatus(e.name === 'AbortError' ? 'cancelled' : e.message, e.name === 'AbortError' ? 'cancelled' : 'error');
    } finally {
      if (running?.id === id) {
        running = null;
        runButton.disabled = false;
        cancelButton.disabled = true;
      }
    }
  }

  /** Asks the server to stop the running query and abandons its answer. */
  async function cancel({ quiet = false } = {}) {
    if (!running) return;
    const { id, controller } = running;
    running = null;
    runButton.disabled = false;
    cancelButton.disabled = true;
    if (!quiet) setStatus('cancelled', 'cancelled');
    // Ask the server first, then drop the answer: a dropped request also ends the query
    // on the server, and if it arrived first the DELETE would find nothing to stop.
    try {
      await api(`/api/queries/${encodeURIComponent(id)}`, { method: 'DELETE' });
    } catch (e) {
      // 404: the query had already finished (or never reached the server) — nothing to stop.
      if (e.status !== 404 && !quiet) setStatus(`cancelled (the server said: ${e.message})`, 'cancelled');
    } finally {
      controller.abort();
    }
  }

  runButton.addEventListener('click', () => run());
  cancelButton.addEventListener('click', () => cancel());
  editor.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      run();
    } else if (e.key === 'Tab' && !e.shiftKey) {
      e.preventDefault(); // indent instead of leaving the editor
      insertAtCursor('  ');
    }
  });
  exportButton.addEventListener('click', () => {
    if (!result) return;
    const text = toCsv(result.columns.map((c) => c.name), result.rows);
    downloadText(`citybooks-query-${new Date().toISOString().replace(/[:.]/g, '-')}.csv`, text);
  });

  // ---- chart of the result ---------------------------------------------------------

  function setupChartSelectors() {
    const cols = result.columns;
    const numeric = cols.map((c) => isNumericType(c.type));
    const keepX = xSelect.value, keepY = ySelect.value;
    xSelect.replaceChildren(...cols.map((c) => h('option', { value: c.name }, c.name)));
    ySelect.replaceChildren(...cols.filter((_, i) => numeric[i]).map((c) => h('option', { value: c.name }, c.name)));
    // Keep the user's choice when the new result has those columns; else the defaults:
    // X = first text column (else the first column), Y = first numeric column not X.
    const names = cols.map((c) => c.name);
    const firstText = cols.find((_, i) => !numeric[i]);
    const x = names.includes(keepX) ? keepX : (firstText || cols[0])?.name;
    if (x !== undefined) xSelect.value = x;
    const yCandidates = cols.filter((c, i) => numeric[i]).map((c) => c.name);
    const y = yCandidates.includes(keepY) && keepY !== x ? keepY : yCandidates.find((n) => n !== x) ?? yCandidates[0];
    if (y !== undefined) ySelect.value = y;
    xSelect.disabled = !cols.length;
    ySelect.disabled = !yCandidates.length;
  }

  function renderResultChart() {
    if (!result) return;
    const xi = result.columns.findIndex((c) => c.name === xSelect.value);
    const yi = result.columns.findIndex((c) => c.name === ySelect.value);
    if (xi < 0 || yi < 0) {
      renderChart(chartEl, {}, 0);
      return;
    }
    const rows = result.rows.filter((r) => r[yi] !== null && r[yi] !== undefined).slice(0, MAX_CHART_POINTS);
    const xs = rows.map((r) => (r[xi] === null ? 'null' : String(r[xi])));
    const ys = rows.map((r) => Number(r[yi]));
    const yType = result.columns[yi].type;
    const tip = (i) => `${escapeHtml(xs[i])}<br>${escapeHtml(result.columns[yi].name)}: <b>${formatCell(rows[i][yi], yType)}</b>`;
    const type = chartType.value;
    let option;
    if (type === 'pie') {
      option = {
        tooltip: { trigger: 'item', formatter: (p) => `${tip(p.dataIndex)} · ${p.percent}%` },
        legend: { type: 'scroll', orient: 'vertical', right: 8, top: 'middle' },
        series: [{ type: 'pie', radius: '70%', center: ['38%', '52%'], data: xs.map((name, i) => ({ name, value: ys[i] })), label: { formatter: '{d}%' } }],
      };
    } else {
      option = {
        // left: room for the first rotated label, which containLabel does not account for.
        grid: { left: 48, right: 24, top: 28, bottom: 8, containLabel: true },
        tooltip: { trigger: 'axis', formatter: (ps) => tip(ps[0].dataIndex) },
        // Few categories: every label, rotated when long; many: ECharts thins them out.
        xAxis: categoryAxis(xs, {
          axisLabel: {
            interval: xs.length <= 24 ? 0 : 'auto',
            rotate: xs.length > 4 || xs.some((x) => x.length > 14) ? 30 : 0,
            width: 140,
            overflow: 'truncate',
            hideOverlap: xs.length > 24,
          },
        }),
        yAxis: valueAxis({ name: result.columns[yi].name, nameTextStyle: { align: 'left', color: '#6b7785' }, axisLabel: { formatter: (v) => Intl.NumberFormat('en-US', { notation: 'compact' }).format(v), color: '#6b7785' } }),
        series: [{ type, data: ys, ...(type === 'line' ? { symbolSize: 6 } : { barMaxWidth: 48 }) }],
      };
    }
    renderChart(chartEl, option, rows.length);
  }

  chartType.addEventListener('change', renderResultChart);
  xSelect.addEventListener('change', renderResultChart);
  ySelect.addEventListener('change', renderResultChart);

  return {
    /** Shows the state of the URL: loads the schema once, runs `sql` if it is new. */
    apply(params) {
      if (!schemaLoaded) loadSchema();
      const sql = params.get('sql');
      if (sql && sql.trim() !== lastRunSql) {
        editor.value = sql;
        run({ fromUrl: true });
      } else if (!editor.value && !sql) {
        editor.value = 'select f.revenue_or_spending, avg(t.amount) as average_amount\nfrom report.transaction as t\njoin report.finance as f on t.finance_id = f.finance_id\ngroup by f.revenue_or_spending\norder by f.revenue_or_spending;';
      }
    },
    params: () => (lastRunSql ? { sql: lastRunSql } : {}),
  };
}

/**
 * A result with lineage columns (`load_id` and `source_line`, as report.transaction and
 * meta.quarantine have) gets a last column linking each row to its original line.
 */
function linkSourceLines(table, result) {
  const at = (name) => result.columns.findIndex((c) => c.name === name);
  const [load, line] = [at('load_id'), at('source_line') >= 0 ? at('source_line') : at('line')];
  if (load < 0 || line < 0) return;
  table.querySelector('thead tr')?.append(h('th', { scope: 'col' }, 'Original line'));
  table.querySelectorAll('tbody tr').forEach((tr, i) => {
    const row = result.rows[i];
    if (row && !tr.classList.contains('more')) tr.append(sourceLineCell(row[load], row[line]));
  });
}
