// Rendering of API result objects ({columns, rows}) as HTML tables.

import { formatCell, isNumericType } from './format.js';

/** Creates an element with attributes and children (strings become text nodes). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Arrow type names are long; this is the short form shown in headers and the schema. */
export function shortType(type) {
  const t = String(type || '');
  const m = /^Decimal128\((\d+),\s*(\d+)\)$/.exec(t);
  if (m) return `decimal(${m[1]},${m[2]})`;
  if (/^(Utf8|LargeUtf8|Utf8View)$/.test(t)) return 'text';
  if (/^Timestamp/.test(t)) return 'timestamp';
  return t.toLowerCase();
}

/**
 * Fills `table` with a result object. Every cell carries the raw API value in
 * `data-value` (exact decimal strings as sent); numeric columns are right-aligned.
 * `maxRows` limits how many rows are put in the DOM (the rest is summarised).
 */
export function renderResultTable(table, result, { maxRows = Infinity } = {}) {
  table.replaceChildren();
  const numeric = result.columns.map((c) => isNumericType(c.type));
  table.append(
    h('thead', {}, h('tr', {}, result.columns.map((c, i) =>
      h('th', { class: numeric[i] ? 'num' : '', title: c.type, scope: 'col' },
        h('span', { class: 'col-name' }, c.name),
        h('span', { class: 'col-type' }, shortType(c.type)))))),
  );
  const body = h('tbody');
  const shown = result.rows.slice(0, maxRows);
  for (const row of shown) {
    body.append(h('tr', {}, row.map((v, i) =>
      v === null || v === undefined
        ? h('td', { class: 'null' + (numeric[i] ? ' num' : '') }, 'null')
        : h('td', { class: numeric[i] ? 'num' : '', 'data-value': typeof v === 'object' ? JSON.stringify(v) : String(v) },
          formatCell(v, result.columns[i].type)))));
  }
  if (result.rows.length > shown.length) {
    body.append(h('tr', { class: 'more' }, h('td', { colspan: result.columns.length },
      `… ${result.rows.length - shown.length} more rows (export the CSV to see all)`)));
  }
  if (result.rows.length === 0) {
    body.append(h('tr', { class: 'more' }, h('td', { colspan: Math.max(1, result.columns.length) }, 'No rows.')));
  }
  table.append(body);
}
