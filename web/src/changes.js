// Changes: what changed between two loads (GET /api/changes) — the summary by fiscal
// year, revenue and spending before and after, the rows added, removed and changed,
// and the members of a hierarchy whose totals moved, drilled down like Explore; any
// member's rows as they were before and after open in the rows dialog.
//
//   ?view=changes[&from=A][&to=B][&by=organization|type|fund][&path=..]*

import { api, query } from './api.js';
import { formatAmount, formatInt } from './format.js';
import { h } from './table.js';

export function createChanges({ navigate, showRows }) {
  const $ = (id) => document.getElementById(id);
  const fromSelect = $('changes-from');
  const toSelect = $('changes-to');
  const bySelect = $('changes-by');
  const summary = $('changes-summary');
  const crumbs = $('changes-breadcrumb');
  const body = $('changes-body');
  const message = $('changes-message');
  let state = { path: [] };
  let loads = null; // [{load_id, status, source_file}], newest first
  let hierarchies = null; // {id: [{column, label}]}
  let seq = 0;

  async function setup() {
    if (loads && hierarchies) return;
    const [l, hs] = await Promise.all([
      api('/api/sql', {
        method: 'POST',
        body: { sql: "select load_id, source_file, years_replaced from meta.loads where status = 'loaded' order by load_id desc", format: 'json', limit: 10000 },
      }),
      api('/api/hierarchies'),
    ]);
    loads = l.rows.map(([id, file, years]) => ({ id, file, years }));
    hierarchies = Object.fromEntries(hs.hierarchies.map((x) => [x.id, x.levels]));
    const option = (l) => h('option', { value: String(l.id) }, `Load ${l.id}: ${l.file.split('/').pop()} (FY ${l.years})`);
    fromSelect.replaceChildren(h('option', { value: 'none' }, 'An empty warehouse'), ...loads.map(option));
    toSelect.replaceChildren(...loads.map(option));
    bySelect.replaceChildren(...Object.keys(hierarchies).map((id) => h('option', { value: id }, id)));
  }

  function params(s) {
    return { ...(s.from ? { from: s.from } : {}), ...(s.to ? { to: s.to } : {}), by: s.by, path: s.path };
  }

  const go = (changes) => navigate('changes', params({ ...state, ...changes }));
  fromSelect.addEventListener('change', () => go({ from: fromSelect.value, path: [] }));
  toSelect.addEventListener('change', () => go({ to: toSelect.value, path: [] }));
  bySelect.addEventListener('change', () => go({ by: bySelect.value, path: [] }));

  async function load(s) {
    const mine = ++seq;
    message.hidden = true;
    body.setAttribute('aria-busy', 'true');
    try {
      await setup();
      const ask = { by: s.by, top: 200 };
      if (s.to) ask.to = s.to;
      if (s.from && s.from !== 'none') ask.from = s.from;
      const c = await api(`/api/changes${query(ask)}`);
      if (mine !== seq) return;
      render(s, c);
    } catch (e) {
      if (mine !== seq) return;
      body.replaceChildren();
      summary.textContent = '';
      message.textContent = e.message;
      message.hidden = false;
    } finally {
      if (mine === seq) body.removeAttribute('aria-busy');
    }
  }

  function render(s, c) {
    fromSelect.value = c.from_load === null ? 'none' : String(c.from_load);
    toSelect.value = String(c.to_load);
    bySelect.value = c.by;
    summary.textContent = c.summary;
    summary.dataset.to = String(c.to_load);
    const levels = hierarchies[c.by];
    crumbs.replaceChildren(
      h('a', { href: '#', onclick: (e) => { e.preventDefault(); go({ path: [] }); } }, 'All'),
      ...s.path.map((name, i) => [' › ', h('a', { href: '#', onclick: (e) => { e.preventDefault(); go({ path: s.path.slice(0, i + 1) }); } }, name)]).flat(),
    );
    if (!c.years.length) {
      body.replaceChildren(h('p', { class: 'muted' }, 'No fiscal year was replaced between these loads.'));
      return;
    }
    body.replaceChildren(...c.years.map((y) => yearCard(s, c, y, levels)));
  }

  function money(v, cls = '') {
    const negative = String(v).startsWith('-');
    return h('td', { class: `num ${cls}${negative ? ' negative' : ''}`, 'data-amount': v }, formatAmount(v));
  }

  function difference(before, after) {
    // Exact: both are decimal strings with two places.
    const cents = (v) => BigInt(String(v).replace('.', ''));
    const d = cents(after) - cents(before);
    const sign = d < 0n ? '-' : '';
    const abs = d < 0n ? -d : d;
    return `${sign}${abs / 100n}.${String(abs % 100n).padStart(2, '0')}`;
  }

  function yearCard(s, c, y, levels) {
    const depth = s.path.length;
    const level = levels[depth];
    const members = y.members.filter((m) => m.depth === depth && s.path.every((p, i) => m.path[i] === p));
    const rowsOf = (m, load) => showRows(
      { year: y.fiscal_year, side: m.side, related: 'include', h: c.by, path: m.path, ...(load ? { as_of_load: load } : {}) },
      `${m.path.at(-1)} (${m.side}, FY${y.fiscal_year}) as of load ${load}`,
    );
    const table = h('table', { class: 'data compact', 'data-testid': `changes-members-${y.fiscal_year}` },
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, level ? level.label : 'Member'),
        h('th', { scope: 'col' }, 'Side'),
        h('th', { class: 'num', scope: 'col' }, 'Before ($)'),
        h('th', { class: 'num', scope: 'col' }, 'After ($)'),
        h('th', { class: 'num', scope: 'col' }, 'Difference ($)'),
        h('th', { scope: 'col' }, 'Rows'))),
      h('tbody', {}, members.length
        ? members.map((m) => {
          const drillable = depth + 1 < levels.length;
          const tr = h('tr', { class: drillable ? 'drillable' : '', 'data-name': m.path.at(-1), 'data-side': m.side },
            h('td', { class: 'name' }, m.path.at(-1)),
            h('td', {}, m.side),
            money(m.before), money(m.after), money(m.difference),
            h('td', {},
              c.from_load === null ? null : h('button', { type: 'button', class: 'button small', title: `The rows as of load ${c.from_load}`, onclick: (e) => { e.stopPropagation(); rowsOf(m, c.from_load); } }, 'Before'),
              ' ',
              h('button', { type: 'button', class: 'button small', 'data-testid': 'changes-rows-after', title: `The rows as of load ${c.to_load}`, onclick: (e) => { e.stopPropagation(); rowsOf(m, c.to_load); } }, 'After')));
          if (drillable) tr.addEventListener('click', () => go({ path: m.path }));
          return tr;
        })
        : [h('tr', { class: 'more' }, h('td', { colspan: 6 }, 'No member moved here.'))]));
    const totals = h('table', { class: 'data compact', 'data-testid': `changes-totals-${y.fiscal_year}` },
      h('thead', {}, h('tr', {}, h('th', {}, ''), h('th', { class: 'num' }, 'Before ($)'), h('th', { class: 'num' }, 'After ($)'), h('th', { class: 'num' }, 'Difference ($)'))),
      h('tbody', {},
        ['Revenue', 'Spending'].map((side) => {
          const [before, after] = side === 'Revenue' ? [y.revenue_before, y.revenue_after] : [y.spending_before, y.spending_after];
          return h('tr', { 'data-side': side }, h('td', {}, side), money(before), money(after), money(difference(before, after)));
        })));
    const rows = y.grains_compared
      ? `${formatInt(y.rows_before)} rows before, ${formatInt(y.rows_after)} after: ${formatInt(y.rows_added)} added, ${formatInt(y.rows_removed)} removed, ${formatInt(y.rows_changed)} changed (at the grain: the year and every key)`
      : `${formatInt(y.rows_before)} rows before, ${formatInt(y.rows_after)} after`;
    return h('article', { class: 'card', 'data-year': String(y.fiscal_year) },
      h('div', { class: 'card-head' }, h('h2', {}, `Fiscal year ${y.fiscal_year}`)),
      h('p', { class: 'card-sub' }, rows),
      totals,
      h('h3', { class: 'changes-level' }, level ? `${level.label}s whose totals moved` : 'Members'),
      h('div', { class: 'table-wrap' }, table));
  }

  return {
    apply(p) {
      state = {
        from: p.get('from') || null,
        to: p.get('to') || null,
        by: p.get('by') || 'organization',
        path: p.getAll('path'),
      };
      load(state);
    },
    params: () => params(state),
  };
}
