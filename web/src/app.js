// citybooks dashboard: the entry module. Owns the URL (every view's state lives in the
// query string) and switches between the five views.
//
//   ?view=overview
//   ?view=explore&year=2025|mode=trend&side=Spending|Revenue[&related=include]&h=organization|type|fund[&path=..]*
//   ?view=changes[&from=A][&to=B][&by=organization|type|fund][&path=..]*
//   ?view=quality[&load=N]
//   ?view=sql&sql=<query text>

import { api, changeToken } from './api.js';
import { resizeCharts } from './charts.js';
import { createOverview } from './overview.js';
import { createExplore } from './explore.js';
import { createSqlConsole } from './sqlconsole.js';
import { createRows } from './rows.js';
import { createChanges } from './changes.js';
import { createQuality } from './quality.js';

const VIEWS = ['overview', 'explore', 'changes', 'quality', 'sql'];

/** The query string for a view and its parameters (arrays repeat the key). */
function search(view, params) {
  const q = new URLSearchParams();
  q.append('view', view);
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null) continue;
    for (const x of Array.isArray(v) ? v : [v]) q.append(k, String(x));
  }
  return '?' + q.toString();
}

/** A link that opens `sql` in the SQL console. */
const sqlLink = (sql) => search('sql', { sql });

/**
 * Changes the URL to `view` with `params`: a new history entry unless `replace`; then
 * shows it unless `silent` (the caller already shows that state).
 */
function navigate(view, params, { replace = false, silent = false } = {}) {
  const target = search(view, params);
  if (target !== location.search) {
    history[replace ? 'replaceState' : 'pushState'](null, '', target);
  }
  if (!silent) route();
}

/** "Show the rows" of any number: one dialog for every view. */
const rowsDialog = createRows();
const showRows = (filter, label) => rowsDialog.show(filter, label);

const views = {
  overview: createOverview({ sqlLink, showRows }),
  explore: createExplore({ navigate, sqlLink, showRows }),
  changes: createChanges({ navigate, showRows }),
  quality: createQuality({ navigate }),
  sql: createSqlConsole({ navigate }),
};

/** Shows the view the URL names, with the URL's state. */
function route() {
  const params = new URLSearchParams(location.search);
  const view = VIEWS.includes(params.get('view')) ? params.get('view') : 'overview';
  for (const v of VIEWS) {
    const section = document.getElementById(`view-${v}`);
    section.hidden = v !== view;
    const tab = document.querySelector(`.tab[data-view="${v}"]`);
    tab.setAttribute('aria-selected', String(v === view));
    tab.classList.toggle('active', v === view);
  }
  document.title = `citybooks · ${{ overview: 'Overview', explore: 'Explore', changes: 'Changes', quality: 'Quality', sql: 'SQL' }[view]}`;
  views[view].apply(params);
  // Charts drawn while their view was hidden need their real size now.
  requestAnimationFrame(() => resizeCharts(document.getElementById(`view-${view}`)));
}

// Tabs return to the state each view had when it was left.
for (const tab of document.querySelectorAll('.tab')) {
  tab.addEventListener('click', () => {
    const v = tab.dataset.view;
    navigate(v, views[v].params() || {});
  });
}

// In-page links (href="?view=..."): follow them without reloading; modified clicks
// (new tab / window) keep the browser's behaviour.
document.addEventListener('click', (e) => {
  const a = e.target.closest('a[href]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const href = a.getAttribute('href');
  if (!href.startsWith('?') && href !== '/') return;
  e.preventDefault();
  history.pushState(null, '', href === '/' ? search('overview', {}) : href);
  route();
});

/** Says which loads the shrink guard held: nothing of them is in the figures. */
async function showHeldLoads() {
  const banner = document.getElementById('held-banner');
  let held = [];
  try {
    held = (await api('/health')).held || [];
  } catch {
    return;
  }
  banner.hidden = held.length === 0;
  banner.textContent = held
    .map((h) => `Load ${h.load_id} (${h.source_file}) is held, not in these figures: ${h.reason}`)
    .join('\n');
}

document.getElementById('token-button').addEventListener('click', changeToken);
window.addEventListener('popstate', route);
route();
showHeldLoads();
