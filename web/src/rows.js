// "Show the rows": the fact rows behind any number of the dashboard (GET /api/rows),
// paged and sortable, their count and sum, a CSV of all of them, and for each row its
// original line in the raw file (GET /api/source-line).

import { api, query } from './api.js';
import { formatAmount, formatCell, formatInt, isNumericType, downloadText } from './format.js';
import { h, shortType } from './table.js';

const PAGE = 50;

/**
 * A table cell with a button that shows, in a full-width row below its own, line `line`
 * of the raw file load `load` read, as the store holds it, under the file's header.
 */
export function sourceLineCell(load, line) {
  const cell = h('td', { class: 'source-cell' });
  if (load === null || load === undefined || line === null || line === undefined) return cell;
  const button = h('button', {
    type: 'button',
    class: 'button small',
    'data-testid': 'source-line-button',
    title: `Line ${line} of the file load ${load} read`,
    onclick: async () => {
      const row = button.closest('tr');
      const shown = row.nextElementSibling?.classList.contains('source-row') ? row.nextElementSibling : null;
      if (shown) {
        shown.remove();
        button.textContent = 'Show';
        return;
      }
      button.disabled = true;
      const detail = h('td', { colspan: row.children.length });
      try {
        const found = await api(`/api/source-line${query({ load, line })}`);
        detail.append(h('div', { class: 'source-line', 'data-testid': 'source-line' },
          h('div', { class: 'muted' }, `${found.file}, line ${found.line} (bytes ${found.start}–${found.end}), as the store holds it:`),
          h('pre', { class: 'source-header' }, found.header),
          h('pre', { class: 'source-text', 'data-testid': 'source-text' }, found.text)));
        button.textContent = 'Hide';
      } catch (e) {
        detail.append(h('div', { class: 'message error' }, e.message));
      } finally {
        button.disabled = false;
      }
      row.after(h('tr', { class: 'source-row' }, detail));
    },
  }, 'Show');
  cell.append(button);
  return cell;
}

export function createRows() {
  const dialog = document.getElementById('rows-dialog');
  const title = document.getElementById('rows-title');
  const summary = document.getElementById('rows-summary');
  const table = document.getElementById('rows-table');
  const pager = document.getElementById('rows-pager');
  const message = document.getElementById('rows-message');
  const csv = document.getElementById('rows-csv');
  let current = null; // {filter, label, offset, sort}
  let seq = 0;

  csv.addEventListener('click', async () => {
    if (!current) return;
    csv.disabled = true;
    try {
      const text = await api(`/api/rows${query({ ...current.filter, format: 'csv' })}`, { raw: true });
      downloadText(`citybooks-rows-${new Date().toISOString().replace(/[:.]/g, '-')}.csv`, text);
    } catch (e) {
      showMessage(e.message);
    } finally {
      csv.disabled = false;
    }
  });

  function showMessage(text) {
    message.textContent = text;
    message.hidden = !text;
  }

  async function load() {
    const mine = ++seq;
    const c = current;
    showMessage('');
    summary.textContent = 'Loading…';
    let answer;
    try {
      answer = await api(`/api/rows${query({ ...c.filter, offset: c.offset, limit: PAGE, sort: c.sort })}`);
    } catch (e) {
      if (mine === seq) {
        summary.textContent = '';
        showMessage(e.message);
      }
      return;
    }
    if (mine !== seq) return;
    const total = Number(answer.total_rows);
    summary.replaceChildren(
      h('span', { 'data-testid': 'rows-count', 'data-value': String(answer.total_rows) }, `${formatInt(total)} rows`),
      ', summing to ',
      h('b', { 'data-testid': 'rows-sum', 'data-value': answer.total_amount }, `$${formatAmount(answer.total_amount)}`),
    );
    renderTable(answer);
    renderPager(total);
  }

  function renderTable(answer) {
    const cols = answer.columns;
    const numeric = cols.map((c) => isNumericType(c.type));
    const at = (name) => cols.findIndex((c) => c.name === name);
    const [load, line] = [at('load_id'), at('source_line')];
    const sortKey = current.sort.replace(/^-/, '');
    const thead = h('thead', {}, h('tr', {},
      cols.map((c, i) => {
        const active = sortKey === c.name;
        const arrow = active ? (current.sort.startsWith('-') ? '▼' : '▲') : '';
        return h('th', { class: (numeric[i] ? 'num ' : '') + 'sortable', scope: 'col', title: shortType(c.type) },
          h('button', {
            type: 'button',
            class: 'sort-button',
            onclick: () => {
              // Numbers start descending, text ascending; a second click reverses.
              const descFirst = numeric[i];
              current.sort = active ? (current.sort.startsWith('-') ? c.name : `-${c.name}`) : (descFirst ? `-${c.name}` : c.name);
              current.offset = 0;
              load();
            },
          }, c.name, arrow ? ` ${arrow}` : ''));
      }),
      h('th', { scope: 'col' }, 'Original line')));
    const body = h('tbody');
    for (const row of answer.rows) {
      const source = sourceLineCell(row[load], row[line]);
      body.append(h('tr', {},
        row.map((v, i) => (v === null || v === undefined
          ? h('td', { class: 'null' + (numeric[i] ? ' num' : '') }, 'null')
          : h('td', { class: numeric[i] ? 'num' : '', 'data-value': String(v) }, formatCell(v, cols[i].type)))),
        source));
    }
    if (!answer.rows.length) body.append(h('tr', { class: 'more' }, h('td', { colspan: cols.length + 1 }, 'No rows.')));
    table.replaceChildren(thead, body);
  }

  function renderPager(total) {
    const { offset } = current;
    const last = Math.min(offset + PAGE, total);
    pager.replaceChildren(
      h('button', {
        type: 'button', class: 'button small', disabled: offset === 0, 'data-testid': 'rows-prev',
        onclick: () => { current.offset = Math.max(0, offset - PAGE); load(); },
      }, '‹ Previous'),
      h('span', { class: 'muted', 'data-testid': 'rows-range' }, total ? ` ${formatInt(offset + 1)}–${formatInt(last)} of ${formatInt(total)} ` : ' '),
      h('button', {
        type: 'button', class: 'button small', disabled: last >= total, 'data-testid': 'rows-next',
        onclick: () => { current.offset = offset + PAGE; load(); },
      }, 'Next ›'),
    );
  }

  return {
    /**
     * Opens the rows behind a number: `filter` is the query the number was computed
     * with (an explorer view's parameters, or {chart, key}); `label` says which number.
     */
    show(filter, label) {
      current = { filter, label, offset: 0, sort: '-amount' };
      title.textContent = `The rows behind ${label}`;
      table.replaceChildren();
      pager.replaceChildren();
      if (!dialog.open) dialog.showModal();
      load();
    },
  };
}
