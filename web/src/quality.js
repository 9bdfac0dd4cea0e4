// Quality: the quality of one load (GET /api/quality) — rows read, loaded and set aside
// by reason, each reason's lines with their original text, the rows that got each
// placeholder, the names rule 6 conformed, and what jumped against the previous load of
// the same source.
//
//   ?view=quality[&load=N]

import { api, query } from './api.js';
import { formatInt } from './format.js';
import { h } from './table.js';
import { sourceLineCell } from './rows.js';

export function createQuality({ navigate }) {
  const $ = (id) => document.getElementById(id);
  const loadSelect = $('quality-load');
  const body = $('quality-body');
  const message = $('quality-message');
  let state = { load: null };
  let seq = 0;

  loadSelect.addEventListener('change', () => navigate('quality', { load: loadSelect.value }));

  async function fillLoads() {
    const r = await api('/api/sql', {
      method: 'POST',
      body: { sql: 'select load_id, status, source_file from meta.loads order by load_id desc', format: 'json', limit: 10000 },
    });
    loadSelect.replaceChildren(...r.rows.map(([id, status, file]) =>
      h('option', { value: String(id) }, `Load ${id}: ${status} ${String(file).split('/').pop()}`)));
  }

  async function load(s) {
    const mine = ++seq;
    message.hidden = true;
    try {
      if (!loadSelect.options.length) await fillLoads();
      const q = await api(`/api/quality${query(s.load ? { load: s.load } : {})}`);
      if (mine !== seq) return;
      loadSelect.value = String(q.load_id);
      render(q);
    } catch (e) {
      if (mine !== seq) return;
      body.replaceChildren();
      message.textContent = e.message;
      message.hidden = false;
    }
  }

  function render(q) {
    const card = (title, ...content) => h('article', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', {}, title)), ...content);
    const figures = h('dl', { class: 'quality-figures', 'data-testid': 'quality-figures' },
      ...[['Status', q.status], ['Rows read', formatInt(q.rows_read)], ['Loaded', formatInt(q.rows_loaded)],
        ['Quarantined', formatInt(q.rows_quarantined)], ['Fiscal years replaced', q.years_replaced.join(', ') || 'none']]
        .flatMap(([k, v]) => [h('dt', {}, k), h('dd', { 'data-key': k }, v)]));
    const parts = [card(`Load ${q.load_id}: ${q.source_file}`, q.reason ? h('p', { class: 'message' }, q.reason) : null, figures,
      h('p', { class: 'muted' }, q.previous === null ? 'No earlier load of the same source to compare with.' : `Compared with load ${q.previous}, the previous load of the same source.`),
      ...q.flags.map((f) => h('p', { class: 'message error', 'data-testid': 'quality-flag' }, f)))];
    if (q.quarantine.length) {
      parts.push(card('Quarantined rows, by reason', ...q.quarantine.map((r) => h('details', { class: 'quality-reason', 'data-testid': 'quality-reason' },
        h('summary', {}, h('b', { 'data-rows': String(r.rows) }, formatInt(r.rows)), ` ${r.reason}`),
        h('table', { class: 'data compact' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Line'), h('th', {}, 'Field'), h('th', {}, 'Original line'))),
          h('tbody', {}, r.lines.map((l) => h('tr', {}, h('td', { class: 'num' }, String(l.line)), h('td', {}, l.field ?? ''),
            sourceLineCell(q.load_id, l.line)))))))));
    }
    parts.push(card('Rows given a placeholder', q.placeholders.length
      ? h('table', { class: 'data compact', 'data-testid': 'quality-placeholders' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Column'), h('th', {}, 'Placeholder'), h('th', { class: 'num' }, 'Rows'))),
        h('tbody', {}, q.placeholders.map((p) => h('tr', {}, h('td', {}, `${p.table}.${p.column}`), h('td', {}, p.placeholder), h('td', { class: 'num', 'data-rows': String(p.rows) }, formatInt(p.rows))))))
      : h('p', { class: 'muted' }, 'None.')));
    parts.push(card('Conformed by rule 6 (one code per name within its parent)', q.conformed.length
      ? h('ul', {}, q.conformed.map((c) => h('li', {}, c)))
      : h('p', { class: 'muted' }, 'Nothing to conform.')));
    body.replaceChildren(...parts);
  }

  return {
    apply(p) {
      state = { load: p.get('load') || null };
      load(state);
    },
    params: () => (state.load ? { load: state.load } : {}),
  };
}
