#!/usr/bin/env node
// End-to-end test of the citybooks web dashboard in a real browser.
//
//   cd tests/browser && npm ci          # playwright-core only; it never downloads a browser
//   node tests/browser/e2e.mjs --base http://127.0.0.1:18080 [--screenshot out.png] [--token T] [--held-load N] [--changed-year Y]
//
// Drives the Debian chromium (CHROMIUM, default /usr/bin/chromium) headless against a
// running `citybooks serve`, and checks what the page shows — the text a person reads and
// the values each chart draws — against SQL the script writes itself and sends to the same
// server's POST /api/sql (never the SQL the server hands out for its charts). Prints `ok - <what>` per check; on the first failure
// prints `not ok - <what>: <detail>` and exits 1. Any console error in the page, uncaught
// exception, failed request or HTTP error from the server fails the run (except the one
// error the read-only check provokes on purpose).
//
// Page conventions relied on (web/src): data-testid hooks; chart containers get
// data-rendered="true" and data-points="N" once drawn; Explore's `side-select` is a
// container of two buttons with data-value="Spending" / "Revenue"; each overview card is
// `[data-chart-id=<id>]` holding a table whose cells carry the API's raw value in
// data-value; the token lives in localStorage `citybooks.token`.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// ---- arguments -------------------------------------------------------------------------

function parseArgs(argv) {
  const out = { base: null, screenshot: null, token: null, heldLoad: null, changedYear: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const take = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--base') out.base = take();
    else if (a === '--screenshot') out.screenshot = take();
    else if (a === '--token') out.token = take();
    else if (a === '--held-load') out.heldLoad = take();
    else if (a === '--changed-year') out.changedYear = take();
    else if (a === '--help' || a === '-h') usage();
    else usage(`unknown argument ${a}`);
  }
  if (!out.base) usage('--base is required');
  out.base = out.base.replace(/\/+$/, '');
  return out;
}

function usage(error) {
  if (error) console.error(`e2e: ${error}`);
  console.error('usage: node tests/browser/e2e.mjs --base http://127.0.0.1:PORT [--screenshot out.png] [--token T] [--held-load N] [--changed-year Y]');
  process.exit(2);
}

const args = parseArgs(process.argv.slice(2));
const BASE = args.base;

// ---- the API from Node -----------------------------------------------------------------

async function api(pathname, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (args.token) headers.Authorization = `Bearer ${args.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(BASE + pathname, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${method} ${pathname}: ${r.status}, not JSON: ${text.slice(0, 200)}`);
  }
  return { status: r.status, json };
}

/** Runs SQL on the server; throws with the server's message on an error. */
async function sql(query) {
  const { status, json } = await api('/api/sql', { method: 'POST', body: { sql: query, limit: 100000, format: 'json' } });
  if (status !== 200) throw new Error(`POST /api/sql answered ${status}: ${json.error} — for: ${query}`);
  return json;
}

/** Result object → array of objects keyed by column name. */
const records = (r) => r.rows.map((row) => Object.fromEntries(r.columns.map((c, i) => [c.name, row[i]])));

const q = (s) => `'${String(s).replace(/'/g, "''")}'`;

// ---- value comparison ----------------------------------------------------------------

/**
 * Canonical text of a decimal: no '+', no leading zeros, no trailing fraction zeros,
 * no "-0". "0012.50" → "12.5", "-0.00" → "0". Anything else → null.
 */
function normDec(v) {
  if (v === null || v === undefined) return null;
  const m = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(String(v).trim());
  if (!m || (m[2] === '' && !m[3])) return null;
  const int = m[2].replace(/^0+/, '') || '0';
  const frac = (m[3] || '').replace(/0+$/, '');
  const body = frac ? `${int}.${frac}` : int;
  return m[1] === '-' && body !== '0' ? '-' + body : body;
}

/** Equality of two cell values as the API sends them (decimals exact, text exact). */
function sameValue(a, b) {
  if (a === null || a === undefined || b === null || b === undefined) return (a ?? null) === (b ?? null);
  const da = normDec(a), db = normDec(b);
  if (da !== null && db !== null) return da === db;
  if (typeof a === 'number' || typeof b === 'number') return Number(a) === Number(b);
  return String(a) === String(b);
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

/** Asserts that a name→amount map from the page equals one from SQL. */
function assertSameAmounts(shown, expected, what) {
  const s = [...shown.keys()].sort(), e = [...expected.keys()].sort();
  assert(JSON.stringify(s) === JSON.stringify(e), `${what}: the page lists ${JSON.stringify(s)}, SQL gives ${JSON.stringify(e)}`);
  for (const [name, amount] of expected) {
    assert(normDec(shown.get(name)) === normDec(amount), `${what}: "${name}" shows ${shown.get(name)}, SQL gives ${amount}`);
  }
}

/** A decimal string → BigInt units of 10^-scale (exact; more digits are refused). */
function units(v, scale) {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(String(v).trim());
  assert(m && (m[3] || '').length <= scale, `not a decimal of scale ≤ ${scale}: ${v}`);
  const n = BigInt((m[2] || '0') + (m[3] || '').padEnd(scale, '0'));
  return m[1] === '-' ? -n : n;
}

/** BigInt units of 10^-scale → decimal string. */
function fromUnits(n, scale) {
  const neg = n < 0n;
  const digits = (neg ? -n : n).toString().padStart(scale + 1, '0');
  const body = scale ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits;
  return (neg ? '-' : '') + body;
}

/** Digits grouped by thousands, as a person reads them: "1234567.5" → "1,234,567.5". */
function grouped(v) {
  const [int, frac] = String(v).split('.');
  const sign = int.startsWith('-') ? '-' : '';
  const digits = int.replace('-', '').replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return sign + digits + (frac !== undefined ? '.' + frac : '');
}

/** Asserts that displayed `text` reads as the number `value`: thousands grouped, exact. */
function assertReads(text, value, what) {
  const t = String(text).trim();
  assert(/^-?\d{1,3}(,\d{3})*(\.\d+)?$/.test(t), `${what}: "${t}" is not a number grouped by thousands`);
  assert(normDec(t.replace(/,/g, '')) === normDec(value), `${what}: the page reads "${t}", SQL gives ${value}`);
}

/** Asserts that a money amount reads "1,234.50": grouped, exactly two decimals. */
function assertMoney(text, value, what) {
  assert(/\.\d{2}$/.test(String(text).trim()), `${what}: "${text}" does not show cents`);
  assertReads(text, value, what);
}

// ---- the browser -------------------------------------------------------------------------

const problems = []; // console errors, page errors, failed requests, HTTP errors
let allowHttpErrors = 0; // HTTP error answers the current step provokes on purpose
let allowAborted = 0; // requests the current step aborts on purpose (Cancel)

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'citybooks-e2e-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
  viewport: { width: 1440, height: 900 },
  acceptDownloads: true,
});
if (args.token) {
  await context.addInitScript((t) => localStorage.setItem('citybooks.token', t), args.token);
}

function watch(page) {
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    // Chromium logs every HTTP error answer as a console error; those are judged by
    // the response handler below (which knows whether one was expected).
    if (/^Failed to load resource: the server responded with a status of/.test(m.text())) return;
    problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`uncaught exception in the page: ${e.message}`));
  page.on('requestfailed', (r) => {
    if (allowAborted > 0 && r.failure()?.errorText === 'net::ERR_ABORTED') {
      allowAborted--;
      return;
    }
    if (r.url().startsWith(BASE)) problems.push(`request failed: ${r.method()} ${r.url()} (${r.failure()?.errorText})`);
  });
  page.on('response', (r) => {
    if (!r.url().startsWith(BASE) || r.status() < 400) return;
    if (allowHttpErrors > 0) {
      allowHttpErrors--;
      return;
    }
    problems.push(`HTTP ${r.status()} for ${r.request().method()} ${r.url()}`);
  });
  return page;
}

async function newPage() {
  return watch(await context.newPage());
}

const tid = (id) => `[data-testid="${id}"]`;

/** Waits until chart `id` is drawn; returns its data-points. */
async function chartRendered(page, id, timeout = 30_000) {
  await page.waitForSelector(`${tid(id)}[data-rendered="true"]`, { state: 'attached', timeout });
  return Number(await page.getAttribute(tid(id), 'data-points'));
}

/** Waits until Explore shows a finished result: chart drawn, table filled, not busy. */
async function exploreSettled(page, crumbs) {
  await page.waitForFunction((n) => {
    const bc = document.querySelector('[data-testid="breadcrumb"]');
    const chart = document.querySelector('[data-testid="explore-chart"]');
    const table = document.querySelector('[data-testid="explore-table"]');
    return bc && bc.querySelectorAll('a, button').length === n && chart?.dataset.rendered === 'true' &&
      table && !table.hasAttribute('aria-busy') && table.querySelector('tbody');
  }, crumbs, { timeout: 30_000 });
}

/**
 * What Explore shows: rows in order (name, data-amount, and the text of the amount, share
 * and transactions cells), the total (attribute and text), the line under it, the crumbs,
 * and what the chart draws (its categories and values).
 */
async function exploreShown(page) {
  return page.evaluate(() => {
    const rows = [...document.querySelectorAll('[data-testid="explore-table"] tbody tr[data-name]')].map((tr) => {
      const cells = tr.querySelectorAll('td');
      return {
        name: tr.dataset.name,
        amount: tr.querySelector('[data-amount]')?.dataset.amount,
        nameText: cells[0].textContent,
        amountText: cells[1].textContent,
        shareText: cells[2].textContent,
        transactionsText: cells[3].textContent,
      };
    });
    const totalEl = document.querySelector('[data-testid="explore-total"]');
    const crumbs = [...document.querySelectorAll('[data-testid="breadcrumb"] a, [data-testid="breadcrumb"] button')].map((a) => a.textContent.trim());
    /* global echarts */
    const option = echarts.getInstanceByDom(document.querySelector('[data-testid="explore-chart"]'))?.getOption();
    const series = option ? option.series[0] : null;
    const axis = option ? (series.type === 'line' ? option.xAxis[0] : option.yAxis[0]) : null;
    return {
      rows,
      total: totalEl.dataset.amount,
      totalText: totalEl.textContent,
      sub: document.getElementById('explore-sub').textContent,
      crumbs,
      chart: series && {
        type: series.type,
        names: axis.data.map((d) => (typeof d === 'object' ? d.value : d)),
        values: series.data.map((d) => (typeof d === 'object' ? d.value : d)),
      },
    };
  });
}

const amountsOf = (rows) => new Map(rows.map((r) => [r.name, r.amount]));

// ---- checks ------------------------------------------------------------------------------

let passed = 0;
async function check(what, fn) {
  try {
    await fn();
    if (problems.length) throw new Error(problems.join('; '));
    passed++;
    console.log(`ok - ${what}`);
  } catch (e) {
    console.log(`not ok - ${what}: ${String(e.message || e).split('\n')[0]}`);
    await context.close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
    process.exit(1);
  }
}

// Is the server there, and does it want a token we do not have?
await check('the server answers GET /api/years', async () => {
  const { status, json } = await api('/api/years');
  if (status === 401) throw new Error('the server requires an API token: pass --token');
  assert(status === 200 && Array.isArray(json.fiscal_years) && json.fiscal_years.length > 0,
    `GET /api/years answered ${status}: ${JSON.stringify(json).slice(0, 200)}`);
});
const years = (await api('/api/years')).json.fiscal_years;
const latestYear = years[0];
const charts = (await api('/api/charts')).json.charts;
const CHART_IDS = ['transactions_by_organization_group', 'tax_revenue_distribution', 'net_by_organization_group', 'top_fund_types_by_max_spending'];

const page = await newPage();

// 1. The overview loads and draws its four charts.
await check('/ loads and the four overview charts render with data', async () => {
  await page.goto(BASE + '/', { waitUntil: 'domcontentloaded' });
  for (const id of CHART_IDS) {
    const points = await chartRendered(page, `chart-${id}`);
    assert(points > 0, `chart-${id} has data-points=${points}`);
  }
});

// 1b. A load the shrink guard held (--held-load N): the banner names it and says why; when
// none is held the banner stays hidden.
await check(args.heldLoad ? `the banner says load ${args.heldLoad} is held and why` : 'no held-load banner', async () => {
  const banner = page.locator(tid('held-banner'));
  if (!args.heldLoad) {
    assert(await banner.isHidden(), `the banner shows: ${await banner.textContent()}`);
    return;
  }
  await banner.waitFor({ state: 'visible', timeout: 10_000 });
  const text = await banner.textContent();
  assert(text.includes(`Load ${args.heldLoad} (`) && text.includes('is held, not in these figures')
    && text.includes('would go from'), `the banner says: ${text}`);
});

// 2. Each overview card shows what the test's own SQL computes (DOMAIN.md's definitions of
// the original dashboard, written here, not the SQL the server serves in /api/charts).

const byText = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
const cmpUnits = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The expected cards: per chart id its columns, its rows (each cell {text} for a name,
 * {exact} for an exact number, {near, tol} for a double, {ratio: [units, scale, n]} for
 * an average), whether the rows' order is the query's (else `orderBy` checks the page's
 * order), and the chart's categories and values.
 */
async function overviewExpected() {
  const out = {};
  // Transactions by organization group, and each group's share of all rows in percent,
  // rounded half up to two decimals (computed here exactly).
  const counts = records(await sql(`select p.organization_group as g, count(*) as n
    from report.transaction t join report.program p on t.program_id = p.program_id group by p.organization_group`))
    .map((r) => ({ g: r.g, n: BigInt(r.n) }))
    .sort((a, b) => cmpUnits(b.n, a.n) || byText(a.g, b.g));
  const all = counts.reduce((sum, r) => sum + r.n, 0n);
  out.transactions_by_organization_group = {
    columns: ['organization_group', 'transactions', 'percent'],
    rows: counts.map((r) => [{ text: r.g }, { exact: String(r.n) },
      { near: Number((r.n * 20000n + all) / (2n * all)) / 100, tol: 0.0051 }]),
    chart: { names: counts.map((r) => r.g), values: counts.map((r) => Number(r.n)) },
  };

  // The tax histogram: ten equal bins between the smallest and largest tax revenue row.
  const taxes = records(await sql(`select cast(t.amount as varchar) as a from report.transaction t
    join report.type ty on t.type_id = ty.type_id join report.finance f on t.finance_id = f.finance_id
    where f.revenue_or_spending = 'Revenue' and ty.character like '%Taxes'`)).map((r) => Number(r.a));
  assert(taxes.length > 0, 'the data has no tax revenue rows');
  const lo = Math.min(...taxes), hi = Math.max(...taxes);
  const width = Math.max((hi - lo) / 10, 0.01);
  const bins = new Array(10).fill(0);
  for (const a of taxes) bins[Math.min(Math.floor((a - lo) / width), 9)]++;
  out.tax_revenue_distribution = {
    columns: ['bin', 'bin_from', 'bin_to', 'transactions'],
    rows: bins.map((n, i) => [{ exact: String(i) }, { near: lo + (i * (hi - lo)) / 10, tol: 0.0051 },
      { near: lo + ((i + 1) * (hi - lo)) / 10, tol: 0.0051 }, { exact: String(n) }]),
    chart: { names: null, values: bins },
  };

  // Net by organization group: revenue minus spending, exact.
  const sides = records(await sql(`select p.organization_group as g, f.revenue_or_spending as side, sum(t.amount) as amount
    from report.transaction t join report.program p on t.program_id = p.program_id
    join report.finance f on t.finance_id = f.finance_id group by 1, 2`));
  const net = new Map();
  for (const r of sides) net.set(r.g, (net.get(r.g) ?? 0n) + (r.side === 'Revenue' ? 1n : -1n) * units(r.amount, 2));
  const nets = [...net].sort((a, b) => cmpUnits(a[1], b[1]) || byText(a[0], b[0]));
  out.net_by_organization_group = {
    columns: ['organization_group', 'net'],
    rows: nets.map(([g, v]) => [{ text: g }, { exact: fromUnits(v, 2) }]),
    // Ties in net may come in either order; the page's order must not decrease.
    orderBy: (row) => units(row[1], 2),
    chart: { names: nets.map(([g]) => g), values: nets.map(([, v]) => Number(fromUnits(v, 2))) },
  };

  // The ten fund types with the largest single spending row.
  const maxima = records(await sql(`select fu.fund_type as k, max(t.amount) as m from report.transaction t
    join report.fund fu on t.fund_id = fu.fund_id join report.finance f on t.finance_id = f.finance_id
    where f.revenue_or_spending = 'Spending' group by fu.fund_type`))
    .sort((a, b) => cmpUnits(units(b.m, 2), units(a.m, 2)) || byText(a.k, b.k))
    .slice(0, 10);
  out.top_fund_types_by_max_spending = {
    columns: ['fund_type', 'max_spending'],
    rows: maxima.map((r) => [{ text: r.k }, { exact: r.m }]),
    chart: { names: maxima.map((r) => r.k), values: maxima.map((r) => Number(r.m)) },
  };

  // The original users' query: the average amount per side, as an exact ratio.
  const sums = records(await sql(`select f.revenue_or_spending as side, sum(t.amount) as s, count(*) as n
    from report.transaction t join report.finance f on t.finance_id = f.finance_id group by 1`))
    .sort((a, b) => byText(a.side, b.side));
  out.average_amount = {
    columns: ['revenue_or_spending', 'average_amount'],
    rows: sums.map((r) => [{ text: r.side }, { ratio: [units(r.s, 2), 2, BigInt(r.n)] }]),
  };
  return out;
}

/** Asserts that a table cell (its data-value and its displayed text) holds `want`. */
function assertCell(value, text, want, what) {
  if (want.text !== undefined) {
    assert(value === want.text && text === want.text, `${what}: "${text}", SQL gives "${want.text}"`);
  } else if (want.exact !== undefined) {
    assert(normDec(value) === normDec(want.exact), `${what}: ${value}, SQL gives ${want.exact}`);
    assertReads(text, want.exact, what);
  } else if (want.near !== undefined) {
    const read = Number(String(text).replace(/,/g, ''));
    assert(/^-?\d{1,3}(,\d{3})*(\.\d+)?$/.test(text) && Math.abs(read - want.near) <= want.tol,
      `${what}: the page reads "${text}", SQL gives ${want.near}`);
  } else {
    // An average shown to k decimals: within one unit of its last decimal of the exact ratio.
    const [sum, scale, n] = want.ratio;
    const shownScale = (String(value).split('.')[1] || '').length;
    const exactTimesN = sum * 10n ** BigInt(Math.max(0, shownScale - scale));
    const diff = units(value, shownScale) * n - exactTimesN;
    assert((diff < 0n ? -diff : diff) <= n, `${what}: ${value}, SQL gives ${sum}/${n} (scale ${scale})`);
    assertReads(text, value, what);
  }
}

/** Checks every overview card of page `p` against `expected` (overviewExpected()). */
async function assertOverview(p, expected, where) {
  for (const [id, want] of Object.entries(expected)) {
    await p.waitForSelector(`[data-chart-id="${id}"] table tbody tr`, { state: 'attached', timeout: 30_000 });
    const shown = await p.evaluate((cid) => {
      const table = document.querySelector(`[data-chart-id="${cid}"] table`);
      const el = document.querySelector(`[data-testid="chart-${cid}"]`);
      /* global echarts */
      const option = el && echarts.getInstanceByDom(el)?.getOption();
      const series = option?.series[0];
      const names = !series ? null : series.type === 'pie' ? series.data.map((d) => d.name)
        : option.yAxis[0].type === 'category' ? option.yAxis[0].data.map((d) => (typeof d === 'object' ? d.value : d)) : null;
      return {
        header: [...table.querySelectorAll('thead th .col-name')].map((th) => th.textContent),
        rows: [...table.querySelectorAll('tbody tr')].map((tr) => [...tr.querySelectorAll('td')].map((td) => ({
          value: td.classList.contains('null') ? null : td.dataset.value,
          text: td.textContent,
        }))),
        chart: series && { names, values: series.data.map((d) => (typeof d === 'object' ? d.value : d)) },
      };
    }, id);
    const what = `${where}${id}`;
    assert(JSON.stringify(shown.header) === JSON.stringify(want.columns), `${what}: columns ${JSON.stringify(shown.header)}, expected ${JSON.stringify(want.columns)}`);
    assert(shown.rows.length === want.rows.length, `${what}: ${shown.rows.length} rows shown, SQL gives ${want.rows.length}`);
    // Rows are matched by their first cell where the order is not the query's own.
    const rows = want.orderBy ? want.rows.map((w) => shown.rows.find((r) => r[0].value === w[0].text)) : shown.rows;
    want.rows.forEach((w, r) => {
      assert(rows[r], `${what}: no row for ${JSON.stringify(w[0])}`);
      w.forEach((cell, c) => assertCell(rows[r][c].value, rows[r][c].text, cell, `${what}, row ${r + 1}, ${want.columns[c]}`));
    });
    if (want.orderBy) {
      const keys = shown.rows.map((r) => want.orderBy(r.map((c) => c.value)));
      keys.slice(1).forEach((k, i) => assert(keys[i] <= k, `${what}: the rows are not in order at row ${i + 2}`));
    }
    if (want.chart) {
      assert(shown.chart, `${what}: no chart drawn`);
      const order = want.chart.names && want.orderBy
        ? shown.chart.names.map((n) => want.chart.names.indexOf(n))
        : want.chart.values.map((_, i) => i);
      if (want.chart.names) {
        assert(JSON.stringify([...shown.chart.names].sort()) === JSON.stringify([...want.chart.names].sort()),
          `${what}: the chart draws ${JSON.stringify(shown.chart.names)}, SQL gives ${JSON.stringify(want.chart.names)}`);
        if (!want.orderBy) assert(JSON.stringify(shown.chart.names) === JSON.stringify(want.chart.names), `${what}: the chart's order ${JSON.stringify(shown.chart.names)}`);
      }
      assert(shown.chart.values.length === want.chart.values.length, `${what}: the chart draws ${shown.chart.values.length} values, SQL gives ${want.chart.values.length}`);
      shown.chart.values.forEach((v, i) => assert(v === want.chart.values[order[i]],
        `${what}: the chart draws ${v} for ${shown.chart.names?.[i] ?? `bin ${i}`}, SQL gives ${want.chart.values[order[i]]}`));
      const points = Number(await p.getAttribute(tid(`chart-${id}`), 'data-points'));
      assert(points === want.chart.values.length, `chart-${id}: data-points=${points}, SQL gives ${want.chart.values.length}`);
    }
  }
}

const overviewUrl = page.url();
await check('each overview card shows, as text and in its chart, what the test\'s own SQL computes', async () => {
  await assertOverview(page, await overviewExpected(), '');
});

await check('the copied Overview URL shows the same cards', async () => {
  const copy = await newPage();
  await copy.goto(overviewUrl, { waitUntil: 'domcontentloaded' });
  await assertOverview(copy, await overviewExpected(), 'the copied URL: ');
  await copy.close();
});

/** Waits for the rows dialog to answer; returns its count, sum and first row's cells. */
async function rowsShown(p) {
  await p.waitForSelector(`${tid('rows-dialog')}[open] ${tid('rows-count')}`, { timeout: 30_000 });
  return p.evaluate(() => ({
    count: Number(document.querySelector('[data-testid="rows-count"]').dataset.value),
    sum: document.querySelector('[data-testid="rows-sum"]').dataset.value,
    header: [...document.querySelectorAll('[data-testid="rows-table"] thead th')].map((th) => th.textContent.replace(/ [▲▼]$/, '')),
    first: [...(document.querySelector('[data-testid="rows-table"] tbody tr')?.querySelectorAll('td') ?? [])].map((td) => td.dataset.value ?? td.textContent),
  }));
}

/** Shows the first row's original line in the open rows dialog; checks it against the API. */
async function firstOriginalLine(p, shown) {
  const load = shown.first[shown.header.indexOf('load_id')];
  const line = shown.first[shown.header.indexOf('source_line')];
  await p.click(`${tid('rows-table')} tbody tr:first-child ${tid('source-line-button')}`);
  await p.waitForSelector(tid('source-text'), { timeout: 30_000 });
  const text = await p.textContent(tid('source-text'));
  const { status, json } = await api(`/api/source-line?load=${load}&line=${line}`);
  assert(status === 200 && json.text === text, `the original line of load ${load} line ${line} shows ${text.slice(0, 80)}, the API gives ${JSON.stringify(json).slice(0, 120)}`);
  return text;
}

// 2b. The rows behind a slice of the first chart: as many as the slice counts.
await check('an overview chart\'s table row opens the rows behind it: their count equals the chart\'s, each leads to its original line', async () => {
  const id = 'transactions_by_organization_group';
  await page.click(tid(`table-toggle-${id}`));
  await page.click(`[data-chart-id="${id}"] table tbody tr:first-child`);
  const shown = await rowsShown(page);
  const expected = await sql(charts.find((c) => c.id === id).sql);
  const [group, transactions] = expected.rows[0];
  assert(shown.count === Number(transactions), `the rows of ${group}: ${shown.count} shown, the chart counts ${transactions}`);
  const counted = records(await sql(`select count(*) as n from report.transaction t join report.program p on t.program_id = p.program_id where p.organization_group = ${q(group)}`))[0].n;
  assert(shown.count === Number(counted), `the rows of ${group}: ${shown.count} shown, SQL counts ${counted}`);
  const text = await firstOriginalLine(page, shown);
  assert(text.includes(group), `the original line ${text.slice(0, 120)} is not of ${group}`);
  await page.click(tid('rows-close'));
  await page.click(tid(`table-toggle-${id}`));
});

// The three hierarchies as the test knows them from DOMAIN.md (not from the server):
// their dimension table, its alias and key, and their levels, broadest first.
const HIERARCHIES = {
  organization: { table: 'program', alias: 'p', levels: ['organization_group', 'department', 'program'] },
  type: { table: 'type', alias: 'ty', levels: ['character', 'object', 'sub_object'] },
  fund: { table: 'fund', alias: 'fu', levels: ['fund_type', 'fund', 'fund_category'] },
};

/**
 * Independent SQL for an Explore view: one hierarchy `h` drilled along `path`, one side,
 * one fiscal year (or, with `trend`, every year), related government units excluded
 * unless `related`.
 */
function exploreSql({ year, side = 'Spending', related = false, h = 'organization', path = [], trend = false }) {
  const H = HIERARCHIES[h];
  const joins = ['join report.finance f on t.finance_id = f.finance_id', 'join report.program p on t.program_id = p.program_id'];
  if (H.table !== 'program') joins.push(`join report.${H.table} ${H.alias} on t.${H.table}_id = ${H.alias}.${H.table}_id`);
  const where = [`f.revenue_or_spending = ${q(side)}`];
  if (!trend && year !== 'all') where.push(`t.fiscal_year = ${Number(year)}`);
  if (!related) where.push(`p.related_govt_units = 'No'`);
  path.forEach((name, i) => where.push(`${H.alias}.${H.levels[i]} = ${q(name)}`));
  const level = trend ? 't.fiscal_year' : `${H.alias}.${H.levels[path.length]}`;
  const from = `report.transaction t ${joins.join(' ')} where ${where.join(' and ')}`;
  return {
    rows: `select cast(${level} as varchar) as name, sum(t.amount) as amount, count(*) as transactions from ${from} group by ${level}`,
    total: `select sum(t.amount) as total, count(*) as transactions from ${from}`,
  };
}

async function expectedExplore(opts) {
  const s = exploreSql(opts);
  const rows = records(await sql(s.rows));
  const total = records(await sql(s.total))[0];
  return {
    rows,
    amounts: new Map(rows.map((r) => [r.name, r.amount])),
    total: total.total ?? '0',
    transactions: total.transactions,
  };
}

/**
 * Asserts that Explore shows `expected` as a person reads it: the same members with the
 * same amounts, each amount, share and count as text, the total and its line, and the
 * chart's bars (or the trend's points) at the same values.
 */
function assertExplore(shown, expected, what, trend = false) {
  assert(shown.rows.length > 0, `${what}: the table is empty`);
  assertSameAmounts(amountsOf(shown.rows), expected.amounts, what);
  const byName = new Map(expected.rows.map((r) => [r.name, r]));
  const total = Number(expected.total);
  for (const row of shown.rows) {
    const want = byName.get(row.name);
    assert(row.nameText === (trend ? `FY${row.name}` : row.name), `${what}: the row of ${row.name} reads "${row.nameText}"`);
    assertMoney(row.amountText, want.amount, `${what}, amount of ${row.name}`);
    const share = total !== 0 ? `${((100 * Number(want.amount)) / total).toFixed(1)}%` : '';
    assert(row.shareText === share, `${what}: the share of ${row.name} reads "${row.shareText}", SQL gives ${share}`);
    assertReads(row.transactionsText, want.transactions, `${what}, transactions of ${row.name}`);
  }
  assert(normDec(shown.total) === normDec(expected.total), `${what}: total is ${shown.total}, SQL gives ${expected.total}`);
  assert(shown.totalText.startsWith('$'), `${what}: the total reads "${shown.totalText}"`);
  assertMoney(shown.totalText.slice(1), expected.total, `${what}, total`);
  const line = `${grouped(String(expected.transactions))} transactions · ${expected.rows.length} ${trend ? 'years' : 'rows'}`;
  assert(shown.sub.startsWith(line), `${what}: under the total "${shown.sub}", SQL gives "${line}"`);
  assert(shown.chart && shown.chart.type === (trend ? 'line' : 'bar'), `${what}: the chart is ${JSON.stringify(shown.chart?.type)}`);
  assert(shown.chart.names.length === expected.rows.length, `${what}: the chart draws ${shown.chart.names.length} ${trend ? 'points' : 'bars'}, SQL gives ${expected.rows.length}`);
  shown.chart.names.forEach((label, i) => {
    const name = trend ? String(label).replace(/^FY/, '') : String(label);
    const want = byName.get(name);
    assert(want, `${what}: the chart draws "${label}", which SQL does not give`);
    assert(shown.chart.values[i] === Number(want.amount), `${what}: the chart draws ${label} at ${shown.chart.values[i]}, SQL gives ${want.amount}`);
  });
}

/**
 * Waits (up to 30 s) until Explore shows what `opts` asks for, as SQL computes it, and
 * returns what it shows: the page may still show the previous view for a moment after a
 * click, so the comparison is repeated until it holds; the last difference is the error.
 */
async function expectExplore(p, opts, what) {
  const expected = await expectedExplore(opts);
  const deadline = Date.now() + 30_000;
  for (;;) {
    let error;
    try {
      await exploreSettled(p, (opts.path ?? []).length + 1);
      const shown = await exploreShown(p);
      assertExplore(shown, expected, what, opts.trend);
      return shown;
    } catch (e) {
      error = e;
    }
    if (Date.now() > deadline) throw error;
    await new Promise((r) => setTimeout(r, 100));
  }
}

// 3. Explore's default view: organization groups, spending, latest year, related excluded.
let firstGroup;
await check(`Explore shows organization groups of FY${latestYear} spending (related units excluded) as SQL computes them: amounts, shares, counts, total and bars`, async () => {
  await page.click(tid('tab-explore'));
  await exploreSettled(page, 1);
  const url = new URL(page.url());
  assert(url.searchParams.get('view') === 'explore', `URL ${page.url()} has no view=explore`);
  assert(url.searchParams.get('year') === String(latestYear), `URL ${page.url()} has no year=${latestYear}`);
  assert(url.searchParams.get('side') === 'Spending' && url.searchParams.get('h') === 'organization' && !url.searchParams.has('related'),
    `URL ${page.url()} is not the default (side=Spending, h=organization, related absent)`);
  assert(!(await page.isChecked(tid('related-toggle'))), 'related-toggle is checked by default');
  const shown = await expectExplore(page, { year: latestYear }, 'organization groups');
  assert(Number(await page.getAttribute(tid('explore-chart'), 'data-points')) === shown.rows.length, 'explore-chart data-points differs from the table rows');
  firstGroup = shown.rows[0].name;
});

await check('Explore "Download CSV" holds the rows shown, amounts exact', async () => {
  const shown = await exploreShown(page);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click(tid('csv-download'))]);
  const text = fs.readFileSync(await download.path(), 'utf8');
  const lines = text.trim().split(/\r?\n/);
  assert(lines[0] === 'organization_group,amount,transactions', `CSV header is ${lines[0]}`);
  assert(lines.length - 1 === shown.rows.length, `CSV has ${lines.length - 1} rows, the table ${shown.rows.length}`);
  // Parse the CSV (quoted fields) and compare with the table.
  const parsed = lines.slice(1).map((l) => [...l.matchAll(/("(?:[^"]|"")*"|[^,]*)(?:,|$)/g)].map((m) => m[1].replace(/^"|"$/g, '').replace(/""/g, '"')));
  parsed.forEach((f, i) => {
    assert(f[0] === shown.rows[i].name && f[1] === shown.rows[i].amount, `CSV row ${i + 1} is ${f.slice(0, 2)}, the table shows ${shown.rows[i].name} ${shown.rows[i].amount}`);
  });
});

// 3b. The year filter: another fiscal year, then back.
await check('the year filter shows another fiscal year as SQL computes it, and back', async () => {
  assert(years.length >= 2, `the warehouse has ${years.length} fiscal year(s); this test needs two`);
  const other = years[years.length - 1];
  await page.selectOption(tid('year-select'), String(other));
  await page.waitForFunction((y) => new URL(location.href).searchParams.get('year') === y, String(other));
  const shown = await expectExplore(page, { year: other }, `organization groups of FY${other}`);
  const latest = await expectedExplore({ year: latestYear });
  assert(normDec(shown.total) !== normDec(latest.total), `FY${other} and FY${latestYear} show the same total ${shown.total}`);
  await page.selectOption(tid('year-select'), String(latestYear));
  await expectExplore(page, { year: latestYear }, `organization groups of FY${latestYear} again`);
});

// 4. Drilling into the first group.
await check('clicking the first row drills down: breadcrumb, URL path= and the departments as SQL computes them', async () => {
  await page.click(`${tid('explore-table')} tbody tr[data-name]:first-child`);
  const shown = await expectExplore(page, { year: latestYear, path: [firstGroup] }, `departments of ${firstGroup}`);
  assert(shown.crumbs[1] === firstGroup, `breadcrumb is ${JSON.stringify(shown.crumbs)}, expected "${firstGroup}" last`);
  const paths = new URL(page.url()).searchParams.getAll('path');
  assert(JSON.stringify(paths) === JSON.stringify([firstGroup]), `URL path= is ${JSON.stringify(paths)}`);
});

// 4b. The rows behind a department's amount: count and sum equal to SQL.
await check('a department\'s "Rows" shows the rows behind its amount: count and sum equal to SQL, original line shown', async () => {
  const department = await page.getAttribute(`${tid('explore-table')} tbody tr[data-name]:first-child`, 'data-name');
  await page.click(`${tid('explore-table')} tbody tr[data-name]:first-child ${tid('explore-rows')}`);
  const shown = await rowsShown(page);
  const expected = records(await sql(`select count(*) as n, sum(t.amount) as amount from report.transaction t
    join report.program p on t.program_id = p.program_id join report.finance f on t.finance_id = f.finance_id
    where f.revenue_or_spending = 'Spending' and p.related_govt_units = 'No' and t.fiscal_year = ${Number(latestYear)}
      and p.organization_group = ${q(firstGroup)} and p.department = ${q(department)}`))[0];
  assert(shown.count === Number(expected.n), `${department}: ${shown.count} rows shown, SQL counts ${expected.n}`);
  assert(normDec(shown.sum) === normDec(expected.amount), `${department}: the rows sum to ${shown.sum}, SQL gives ${expected.amount}`);
  const departmentAt = shown.header.indexOf('department');
  assert(shown.first[departmentAt] === department, `the first row is of ${shown.first[departmentAt]}, not ${department}`);
  await firstOriginalLine(page, shown);
  await page.click(tid('rows-close'));
  assert(new URL(page.url()).searchParams.getAll('path').length === 1, 'opening the rows changed the view');
});

// 4c. Down to the lowest level (program), and back.
await check('a department drills down to its programs as SQL computes them; Back returns to the departments', async () => {
  const department = await page.getAttribute(`${tid('explore-table')} tbody tr[data-name]:first-child`, 'data-name');
  await page.click(`${tid('explore-table')} tbody tr[data-name]:first-child`);
  const shown = await expectExplore(page, { year: latestYear, path: [firstGroup, department] }, `programs of ${department}`);
  assert(JSON.stringify(shown.crumbs) === JSON.stringify(['All', firstGroup, department]), `breadcrumb is ${JSON.stringify(shown.crumbs)}`);
  const row = await page.getAttribute(`${tid('explore-table')} tbody tr[data-name]:first-child`, 'class');
  assert(!String(row).includes('drillable'), 'a program (the lowest level) offers to drill further');
  await page.goBack();
  await expectExplore(page, { year: latestYear, path: [firstGroup] }, `departments of ${firstGroup} after Back`);
});

// 5. The URL reproduces the view; the related-units toggle.
await check('the copied URL reproduces the view; related=include shows the figures without the related filter', async () => {
  const before = await exploreShown(page);
  const page2 = await newPage();
  await page2.goto(page.url(), { waitUntil: 'domcontentloaded' });
  await exploreSettled(page2, 2);
  const again = await exploreShown(page2);
  assert(JSON.stringify(again) === JSON.stringify(before), `the copied URL shows ${JSON.stringify(again).slice(0, 300)}, the original ${JSON.stringify(before).slice(0, 300)}`);

  await page2.click(tid('related-toggle'));
  await page2.waitForFunction(() => new URL(location.href).searchParams.get('related') === 'include');
  await expectExplore(page2, { year: latestYear, path: [firstGroup], related: true }, `departments of ${firstGroup}, related units included`);
  // The group level too: back up with the breadcrumb's first crumb.
  await page2.click(`${tid('breadcrumb')} a >> nth=0`);
  await expectExplore(page2, { year: latestYear, related: true }, 'organization groups, related units included');
  await page2.close();
});

// 6. Trend.
await check(`trend mode draws one point per fiscal year (${years.length}) at the amounts SQL computes`, async () => {
  await page.click(tid('mode-trend'));
  await page.waitForFunction(() => new URL(location.href).searchParams.get('mode') === 'trend');
  const shown = await expectExplore(page, { trend: true, path: [firstGroup] }, `the trend of ${firstGroup}`);
  const points = await chartRendered(page, 'explore-chart');
  assert(points === years.length && shown.chart.values.length === years.length, `the trend draws ${points} points for ${years.length} fiscal years`);
});

// 6a. The type and fund hierarchies, on both sides, to their lowest level.
for (const h of ['type', 'fund']) {
  for (const side of ['Spending', 'Revenue']) {
    await check(`Explore by ${h}, ${side}: every level down to the lowest as SQL computes it; the copied URL shows the same`, async () => {
      const p = await newPage();
      await p.goto(BASE + '/?view=explore', { waitUntil: 'domcontentloaded' });
      await exploreSettled(p, 1);
      await p.selectOption(tid('hierarchy-select'), h);
      await p.waitForFunction((x) => new URL(location.href).searchParams.get('h') === x, h);
      if (side !== 'Spending') {
        await p.click(`${tid('side-select')} button[data-value="${side}"]`);
        await p.waitForFunction((x) => new URL(location.href).searchParams.get('side') === x, side);
      }
      const path = [];
      const levels = HIERARCHIES[h].levels;
      for (;;) {
        const shown = await expectExplore(p, { year: latestYear, side, h, path: [...path] }, `${h} ${side} at ${levels[path.length]}${path.length ? ` of ${path.join(' › ')}` : ''}`);
        if (path.length === levels.length - 1) break;
        path.push(shown.rows[0].name);
        await p.click(`${tid('explore-table')} tbody tr[data-name]:first-child`);
        await p.waitForFunction((n) => new URL(location.href).searchParams.getAll('path').length === n, path.length);
      }
      const url = new URL(p.url());
      assert(url.searchParams.get('h') === h && url.searchParams.get('side') === side
        && JSON.stringify(url.searchParams.getAll('path')) === JSON.stringify(path), `the URL ${p.url()} does not hold the view`);
      const before = await exploreShown(p);
      const copy = await newPage();
      await copy.goto(p.url(), { waitUntil: 'domcontentloaded' });
      await expectExplore(copy, { year: latestYear, side, h, path }, `the copied URL of ${h} ${side}`);
      const again = await exploreShown(copy);
      assert(JSON.stringify(again) === JSON.stringify(before), `the copied URL shows ${JSON.stringify(again).slice(0, 300)}, the original ${JSON.stringify(before).slice(0, 300)}`);
      await copy.close();
      await p.close();
    });
  }
}

// 6b. Changes: the latest load against the one before; --changed-year names the fiscal
// year it brought (default: the latest year, when the one before is an empty warehouse).
const changedYear = Number(args.changedYear ?? latestYear);
await check('Changes lists every organization group that moved, equal to SQL, and its rows as of the load', async () => {
  await page.click(tid('tab-changes'));
  await page.waitForFunction(() => document.querySelector('[data-testid="changes-summary"]')?.textContent.startsWith('fiscal year'), null, { timeout: 30_000 });
  const said = await page.textContent(tid('changes-summary'));
  assert(said.startsWith(`fiscal year ${changedYear} new: `), `the summary says: ${said}`);
  const shown = await page.evaluate((y) => [...document.querySelectorAll(`[data-testid="changes-members-${y}"] tbody tr[data-name]`)].map((tr) => ({
    name: tr.dataset.name, side: tr.dataset.side, after: tr.querySelectorAll('[data-amount]')[1].dataset.amount,
  })), changedYear);
  const expected = records(await sql(`select p.organization_group as name, f.revenue_or_spending as side, sum(t.amount) as amount
    from report.transaction t join report.program p on t.program_id = p.program_id join report.finance f on t.finance_id = f.finance_id
    where t.fiscal_year = ${Number(changedYear)} group by 1, 2`)).filter((r) => normDec(r.amount) !== '0');
  assert(shown.length === expected.length, `${shown.length} members shown, SQL gives ${expected.length}`);
  for (const r of expected) {
    const m = shown.find((x) => x.name === r.name && x.side === r.side);
    assert(m && normDec(m.after) === normDec(r.amount), `${r.name} (${r.side}) shows ${m && m.after}, SQL gives ${r.amount}`);
  }
  const load = await page.getAttribute(tid('changes-summary'), 'data-to');
  await page.click(`${tid(`changes-members-${changedYear}`)} tbody tr[data-name]:first-child ${tid('changes-rows-after')}`);
  const rows = await rowsShown(page);
  const first = shown[0];
  const n = records(await sql(`select count(*) as n, sum(t.amount) as amount from report.transaction t join report.program p on t.program_id = p.program_id
    join report.finance f on t.finance_id = f.finance_id where t.fiscal_year = ${Number(changedYear)} and p.organization_group = ${q(first.name)} and f.revenue_or_spending = ${q(first.side)}`))[0];
  assert(rows.count === Number(n.n) && normDec(rows.sum) === normDec(n.amount), `the rows of ${first.name} as of load ${load}: ${rows.count} summing to ${rows.sum}, SQL ${n.n} summing to ${n.amount}`);
  await page.click(tid('rows-close'));
  const url = new URL(page.url());
  assert(url.searchParams.get('view') === 'changes', `URL ${page.url()} is not the changes view`);
});

// 6c. Quality: the latest load (held here) and the sample's load, figures equal to SQL.
await check('Quality shows the held load\'s reason, and the first load\'s rows and placeholders equal to SQL', async () => {
  await page.click(tid('tab-quality'));
  await page.waitForSelector(`${tid('quality-figures')} dd[data-key="Status"]`, { timeout: 30_000 });
  const status = await page.textContent(`${tid('quality-figures')} dd[data-key="Status"]`);
  assert(status === (args.heldLoad ? 'held' : 'loaded'), `the latest load's status shows ${status}`);
  await page.selectOption(tid('quality-load'), '1');
  await page.waitForFunction(() => new URL(location.href).searchParams.get('load') === '1'
    && document.querySelector('[data-testid="quality-figures"] dd[data-key="Status"]')?.textContent === 'loaded', null, { timeout: 30_000 });
  const read = await page.textContent(`${tid('quality-figures')} dd[data-key="Rows read"]`);
  const loads = records(await sql('select rows_read from meta.loads where load_id = 1'))[0];
  assert(read.replace(/,/g, '') === String(loads.rows_read), `rows read shows ${read}, meta.loads has ${loads.rows_read}`);
  const shown = await page.evaluate(() => [...document.querySelectorAll('[data-testid="quality-placeholders"] tbody tr')]
    .map((tr) => [tr.children[0].textContent, tr.children[1].textContent, tr.children[2].dataset.rows]));
  for (const [column, placeholder, rows] of shown) {
    const [table, name] = column.split('.');
    const alias = { program: 'p', type: 'ty', fund: 'fu' }[table];
    const n = records(await sql(`select count(*) as n from report.transaction t join report.${table} ${alias} on t.${table}_id = ${alias}.${table}_id
      where t.load_id = 1 and ${alias}.${name} = ${q(placeholder)}`))[0].n;
    assert(String(n) === rows, `${column} = ${placeholder}: ${rows} rows shown, SQL counts ${n}`);
  }
});

// 7. SQL console.
const ORIGINAL_QUERY = `select f.revenue_or_spending, avg(t.amount) as average_amount
from report.transaction as t
join report.finance as f on t.finance_id = f.finance_id
group by f.revenue_or_spending
order by f.revenue_or_spending;`;

async function sqlResultsShown(p) {
  return p.evaluate(() => {
    const table = document.querySelector('[data-testid="sql-results"]');
    return {
      header: [...table.querySelectorAll('thead th .col-name')].map((th) => th.textContent),
      rows: [...table.querySelectorAll('tbody tr:not(.more)')].map((tr) => [...tr.querySelectorAll('td')].map((td) =>
        td.classList.contains('null') ? null : td.dataset.value)),
    };
  });
}

await check("SQL console: the original users' query shows 2 rows equal to the API, and charts them as bars", async () => {
  await page.click(tid('tab-sql'));
  await page.waitForSelector(`${tid('schema-browser')} details`, { state: 'attached' });
  await page.fill(tid('sql-editor'), ORIGINAL_QUERY);
  await page.click(tid('sql-run'));
  await page.waitForFunction(() => /\brows?\b/.test(document.querySelector('[data-testid="sql-status"]').textContent) ||
    document.querySelector('[data-testid="sql-status"]').dataset.state === 'error');
  const status = await page.textContent(tid('sql-status'));
  assert(/^2 rows/.test(status), `sql-status says "${status}"`);
  const expected = await sql(ORIGINAL_QUERY);
  const shown = await sqlResultsShown(page);
  assert(shown.rows.length === 2 && expected.rows.length === 2, `${shown.rows.length} rows shown, API ${expected.rows.length}`);
  assert(JSON.stringify(shown.header) === JSON.stringify(expected.columns.map((c) => c.name)), `columns ${shown.header}`);
  expected.rows.forEach((row, r) => row.forEach((v, c) => assert(sameValue(shown.rows[r][c], v), `row ${r + 1} column ${c + 1} shows ${shown.rows[r][c]}, API ${v}`)));
  assert(new URL(page.url()).searchParams.get('sql') === ORIGINAL_QUERY.trim(), 'the URL does not carry sql=<the query>');

  await page.selectOption(tid('sql-chart-type'), 'bar');
  await page.selectOption(tid('sql-x'), 'revenue_or_spending');
  await page.selectOption(tid('sql-y'), 'average_amount');
  const points = await chartRendered(page, 'sql-chart');
  assert(points === 2, `sql-chart data-points=${points}`);
  const type = await page.evaluate(() => echarts.getInstanceByDom(document.querySelector('[data-testid="sql-chart"]')).getOption().series[0].type);
  assert(type === 'bar', `sql-chart is a ${type} chart`);
});

await check('SQL console: a URL with sql= runs the query on load', async () => {
  const page3 = await newPage();
  await page3.goto(page.url(), { waitUntil: 'domcontentloaded' });
  await page3.waitForFunction(() => /^2 rows/.test(document.querySelector('[data-testid="sql-status"]').textContent));
  assert((await page3.inputValue(tid('sql-editor'))).trim() === ORIGINAL_QUERY.trim(), 'the editor does not hold the query of the URL');
  await chartRendered(page3, 'sql-chart');
  await page3.close();
});

await check('SQL console: a write (create table x as select 1) shows the server\'s error in sql-status', async () => {
  const violation = 'create table x as select 1';
  const server = await api('/api/sql', { method: 'POST', body: { sql: violation, limit: 10, format: 'json' } });
  assert(server.status >= 400 && typeof server.json.error === 'string', `the server answered ${server.status} to a write`);
  allowHttpErrors = 1; // the page's own request gets the same error answer
  await page.fill(tid('sql-editor'), violation);
  await page.press(tid('sql-editor'), 'Control+Enter'); // the keyboard shortcut runs too
  await page.waitForSelector(`${tid('sql-status')}[data-state="error"]`);
  const status = (await page.textContent(tid('sql-status'))).trim();
  assert(status === server.json.error.trim(), `sql-status says "${status}", the server "${server.json.error}"`);
  const color = await page.$eval(tid('sql-status'), (el) => getComputedStyle(el).color);
  const [r, g, b] = color.match(/\d+/g).map(Number);
  assert(r > 150 && g < 80 && b < 80, `the error is not shown in red (${color})`);
  assert(allowHttpErrors === 0, 'the page did not send the query');
});

await check('SQL console: Cancel stops a long query on the server and says "cancelled"', async () => {
  // Long enough to be still running when Cancel is clicked; bounded by the server's timeout.
  const slow = 'select count(*) from generate_series(1, 20000000000)';
  let queryId = null;
  const onRequest = (r) => {
    if (r.method() === 'POST' && r.url() === BASE + '/api/sql') queryId = JSON.parse(r.postData() || '{}').query_id;
  };
  page.on('request', onRequest);
  // The page asks the server to cancel, then drops its request: the request ends either
  // aborted or with the server's "the query was cancelled" (400), whichever comes first.
  allowAborted = 1;
  allowHttpErrors = 1;
  await page.fill(tid('sql-editor'), slow);
  await Promise.all([
    page.waitForRequest((r) => r.method() === 'POST' && r.url() === BASE + '/api/sql'),
    page.click(tid('sql-run')),
  ]);
  await page.waitForSelector(`${tid('sql-status')}[data-state="running"]`);
  // Cancel once the server runs it (GET /api/queries lists it), with a deadline.
  for (let i = 0; ; i++) {
    const running = await api('/api/queries');
    if (running.json.running.includes(queryId)) break;
    assert(i < 600, `the server never listed query ${queryId} as running`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const [del] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'DELETE' && r.url().includes('/api/queries/')),
    page.click(tid('sql-cancel')),
  ]);
  page.off('request', onRequest);
  assert(queryId, 'the page sent no query_id with POST /api/sql');
  assert(del.url().endsWith('/api/queries/' + encodeURIComponent(queryId)), `DELETE went to ${del.url()}, the query_id was ${queryId}`);
  assert(del.status() === 200, `DELETE /api/queries/{id} answered ${del.status()}: ${await del.text()}`);
  const status = (await page.textContent(tid('sql-status'))).trim();
  assert(status === 'cancelled', `sql-status says "${status}"`);
  // The server no longer runs it.
  const again = await api('/api/queries/' + encodeURIComponent(queryId), { method: 'DELETE' });
  assert(again.status === 404, `a second DELETE answered ${again.status}: the query still runs`);
  await page.waitForFunction(() => !document.querySelector('[data-testid="sql-run"]').disabled);
  // The aborted fetch is reported asynchronously; give it a moment, then stop excusing aborts.
  for (let i = 0; i < 50 && allowAborted > 0 && allowHttpErrors > 0; i++) await new Promise((r) => setTimeout(r, 100));
  allowAborted = 0;
  allowHttpErrors = 0;
});

// 8. Screenshots.
if (args.screenshot) {
  await check(`screenshots of Overview, Explore and the rows behind a number (1440×900) written`, async () => {
    const out = path.resolve(args.screenshot);
    const explorePath = out.replace(/\.png$/i, '') + '-explore.png';
    const rowsPath = out.replace(/\.png$/i, '') + '-rows.png';
    const shot = await newPage();
    await shot.setViewportSize({ width: 1440, height: 900 });
    await shot.goto(BASE + '/', { waitUntil: 'domcontentloaded' });
    for (const id of CHART_IDS) await chartRendered(shot, `chart-${id}`);
    await shot.screenshot({ path: out });
    await shot.click(tid('tab-explore'));
    await exploreSettled(shot, 1);
    await shot.screenshot({ path: explorePath });
    await shot.click(`${tid('explore-table')} tbody tr[data-name]:first-child ${tid('explore-rows')}`);
    await firstOriginalLine(shot, await rowsShown(shot));
    await shot.screenshot({ path: rowsPath });
    await shot.close();
    for (const p of [out, explorePath, rowsPath]) assert(fs.statSync(p).size > 0, `empty screenshot ${p}`);
    console.log(`# ${out}\n# ${explorePath}\n# ${rowsPath}`);
  });
}

await context.close();
fs.rmSync(userDataDir, { recursive: true, force: true });
console.log(`# all ${passed} checks passed`);
