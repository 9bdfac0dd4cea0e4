#!/usr/bin/env node
// End-to-end test of the citybooks web dashboard in a real browser.
//
//   cd tests/browser && npm ci          # playwright-core only; it never downloads a browser
//   node tests/browser/e2e.mjs --base http://127.0.0.1:18080 [--screenshot out.png] [--token T] [--held-load N]
//
// Drives the Debian chromium (CHROMIUM, default /usr/bin/chromium) headless against a
// running `citybooks serve`, and checks what the page shows against SQL the script sends to
// the same server's POST /api/sql. Prints `ok - <what>` per check; on the first failure
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
  const out = { base: null, screenshot: null, token: null, heldLoad: null };
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
    else if (a === '--help' || a === '-h') usage();
    else usage(`unknown argument ${a}`);
  }
  if (!out.base) usage('--base is required');
  out.base = out.base.replace(/\/+$/, '');
  return out;
}

function usage(error) {
  if (error) console.error(`e2e: ${error}`);
  console.error('usage: node tests/browser/e2e.mjs --base http://127.0.0.1:PORT [--screenshot out.png] [--token T] [--held-load N]');
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

/** What Explore shows: rows (name → data-amount, in order), total, crumbs. */
async function exploreShown(page) {
  return page.evaluate(() => {
    const rows = [...document.querySelectorAll('[data-testid="explore-table"] tbody tr[data-name]')].map((tr) => ({
      name: tr.dataset.name,
      amount: tr.querySelector('[data-amount]')?.dataset.amount,
    }));
    const total = document.querySelector('[data-testid="explore-total"]').dataset.amount;
    const crumbs = [...document.querySelectorAll('[data-testid="breadcrumb"] a, [data-testid="breadcrumb"] button')].map((a) => a.textContent.trim());
    return { rows, total, crumbs };
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

// 2. Each overview chart shows exactly what its SQL returns.
await check('each overview chart and its table equal POST /api/sql of the chart\'s SQL', async () => {
  for (const id of [...CHART_IDS, 'average_amount']) {
    const chart = charts.find((c) => c.id === id);
    assert(chart, `GET /api/charts has no chart "${id}"`);
    const expected = await sql(chart.sql);
    // Wait for the card's table to be filled (the original users' query has no chart).
    await page.waitForSelector(`[data-chart-id="${id}"] table tbody tr`, { state: 'attached', timeout: 30_000 });
    const shown = await page.evaluate((cid) => {
      const table = document.querySelector(`[data-chart-id="${cid}"] table`);
      return {
        header: [...table.querySelectorAll('thead th .col-name')].map((th) => th.textContent),
        rows: [...table.querySelectorAll('tbody tr')].map((tr) => [...tr.querySelectorAll('td')].map((td) =>
          td.classList.contains('null') ? null : td.dataset.value)),
      };
    }, id);
    assert(JSON.stringify(shown.header) === JSON.stringify(expected.columns.map((c) => c.name)),
      `${id}: columns ${JSON.stringify(shown.header)} vs SQL ${JSON.stringify(expected.columns.map((c) => c.name))}`);
    assert(shown.rows.length === expected.rows.length, `${id}: ${shown.rows.length} rows shown, SQL gives ${expected.rows.length}`);
    expected.rows.forEach((row, r) => row.forEach((v, c) => {
      assert(sameValue(shown.rows[r][c], v), `${id}: row ${r + 1} column ${expected.columns[c].name} shows ${shown.rows[r][c]}, SQL gives ${v}`);
    }));
    if (CHART_IDS.includes(id)) {
      const points = Number(await page.getAttribute(tid(`chart-${id}`), 'data-points'));
      assert(points === expected.rows.length, `chart-${id}: data-points=${points}, SQL gives ${expected.rows.length} rows`);
    }
  }
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

// Independent SQL for Explore's organization hierarchy.
function exploreSql({ year, side = 'Spending', related = false, group = null }) {
  const where = [`f.revenue_or_spending = ${q(side)}`];
  if (year !== undefined) where.push(`t.fiscal_year = ${Number(year)}`);
  if (!related) where.push(`p.related_govt_units = 'No'`);
  if (group !== null) where.push(`p.organization_group = ${q(group)}`);
  const level = group === null ? 'p.organization_group' : 'p.department';
  const from = `report.transaction t
    join report.program p on t.program_id = p.program_id
    join report.finance f on t.finance_id = f.finance_id
    where ${where.join(' and ')}`;
  return {
    rows: `select ${level} as name, sum(t.amount) as amount from ${from} group by ${level}`,
    total: `select sum(t.amount) as total from ${from}`,
  };
}

async function expectedExplore(opts) {
  const s = exploreSql(opts);
  const rows = records(await sql(s.rows));
  const total = records(await sql(s.total))[0].total;
  return { amounts: new Map(rows.map((r) => [r.name, r.amount])), total: total ?? '0' };
}

// 3. Explore's default view: organization groups, spending, latest year, related excluded.
let firstGroup;
await check(`Explore lists organization groups of FY${latestYear} spending (related units excluded) equal to SQL, total too`, async () => {
  await page.click(tid('tab-explore'));
  await exploreSettled(page, 1);
  const url = new URL(page.url());
  assert(url.searchParams.get('view') === 'explore', `URL ${page.url()} has no view=explore`);
  assert(url.searchParams.get('year') === String(latestYear), `URL ${page.url()} has no year=${latestYear}`);
  assert(url.searchParams.get('side') === 'Spending' && url.searchParams.get('h') === 'organization' && !url.searchParams.has('related'),
    `URL ${page.url()} is not the default (side=Spending, h=organization, related absent)`);
  assert(!(await page.isChecked(tid('related-toggle'))), 'related-toggle is checked by default');
  const shown = await exploreShown(page);
  assert(shown.rows.length > 0, 'the table is empty');
  const expected = await expectedExplore({ year: latestYear });
  assertSameAmounts(amountsOf(shown.rows), expected.amounts, 'organization groups');
  assert(normDec(shown.total) === normDec(expected.total), `total shows ${shown.total}, SQL gives ${expected.total}`);
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

// 4. Drilling into the first group.
await check('clicking the first row drills down: breadcrumb, URL path= and department amounts equal to SQL', async () => {
  await page.click(`${tid('explore-table')} tbody tr[data-name]:first-child`);
  await exploreSettled(page, 2);
  const shown = await exploreShown(page);
  assert(shown.crumbs[1] === firstGroup, `breadcrumb is ${JSON.stringify(shown.crumbs)}, expected "${firstGroup}" last`);
  const paths = new URL(page.url()).searchParams.getAll('path');
  assert(JSON.stringify(paths) === JSON.stringify([firstGroup]), `URL path= is ${JSON.stringify(paths)}`);
  const expected = await expectedExplore({ year: latestYear, group: firstGroup });
  assertSameAmounts(amountsOf(shown.rows), expected.amounts, `departments of ${firstGroup}`);
  assert(normDec(shown.total) === normDec(expected.total), `total shows ${shown.total}, SQL gives ${expected.total}`);
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

// 5. The URL reproduces the view; the related-units toggle.
await check('the copied URL reproduces the view; related=include gives the totals without the related filter', async () => {
  const before = await exploreShown(page);
  const page2 = await newPage();
  await page2.goto(page.url(), { waitUntil: 'domcontentloaded' });
  await exploreSettled(page2, 2);
  const again = await exploreShown(page2);
  assert(JSON.stringify(again) === JSON.stringify(before), `the copied URL shows ${JSON.stringify(again).slice(0, 300)}, the original ${JSON.stringify(before).slice(0, 300)}`);

  await page2.click(tid('related-toggle'));
  await page2.waitForFunction(() => new URL(location.href).searchParams.get('related') === 'include');
  await exploreSettled(page2, 2);
  const withRelated = await exploreShown(page2);
  const expected = await expectedExplore({ year: latestYear, group: firstGroup, related: true });
  assertSameAmounts(amountsOf(withRelated.rows), expected.amounts, `departments of ${firstGroup}, related units included`);
  assert(normDec(withRelated.total) === normDec(expected.total), `total with related units shows ${withRelated.total}, SQL gives ${expected.total}`);
  // The group level too: back up with the breadcrumb's first crumb.
  await page2.click(`${tid('breadcrumb')} a >> nth=0`);
  await exploreSettled(page2, 1);
  const top = await exploreShown(page2);
  const expectedTop = await expectedExplore({ year: latestYear, related: true });
  assertSameAmounts(amountsOf(top.rows), expectedTop.amounts, 'organization groups, related units included');
  assert(normDec(top.total) === normDec(expectedTop.total), `top total with related units shows ${top.total}, SQL gives ${expectedTop.total}`);
  await page2.close();
});

// 6. Trend.
await check('trend mode renders a line chart with at least one point', async () => {
  await page.click(tid('mode-trend'));
  await page.waitForFunction(() => new URL(location.href).searchParams.get('mode') === 'trend');
  await exploreSettled(page, 2);
  const points = await chartRendered(page, 'explore-chart');
  assert(points >= 1, `explore-chart data-points=${points}`);
  const type = await page.evaluate(() => {
    /* global echarts */
    const chart = echarts.getInstanceByDom(document.querySelector('[data-testid="explore-chart"]'));
    return chart.getOption().series[0].type;
  });
  assert(type === 'line', `the trend chart is a ${type} chart`);
  // The trend's years equal SQL per fiscal year for the selection.
  const shown = await exploreShown(page);
  const rows = records(await sql(`select cast(t.fiscal_year as varchar) as name, sum(t.amount) as amount
    from report.transaction t join report.program p on t.program_id = p.program_id
    join report.finance f on t.finance_id = f.finance_id
    where f.revenue_or_spending = 'Spending' and p.related_govt_units = 'No' and p.organization_group = ${q(firstGroup)}
    group by t.fiscal_year`));
  assertSameAmounts(amountsOf(shown.rows), new Map(rows.map((r) => [r.name, r.amount])), 'trend years');
});

// 6b. Changes: the latest load against the one before (here: an empty warehouse).
await check('Changes lists every organization group that moved, equal to SQL, and its rows as of the load', async () => {
  await page.click(tid('tab-changes'));
  await page.waitForFunction(() => document.querySelector('[data-testid="changes-summary"]')?.textContent.startsWith('fiscal year'), null, { timeout: 30_000 });
  const said = await page.textContent(tid('changes-summary'));
  assert(said.startsWith(`fiscal year ${latestYear} new: `), `the summary says: ${said}`);
  const shown = await page.evaluate((y) => [...document.querySelectorAll(`[data-testid="changes-members-${y}"] tbody tr[data-name]`)].map((tr) => ({
    name: tr.dataset.name, side: tr.dataset.side, after: tr.querySelectorAll('[data-amount]')[1].dataset.amount,
  })), latestYear);
  const expected = records(await sql(`select p.organization_group as name, f.revenue_or_spending as side, sum(t.amount) as amount
    from report.transaction t join report.program p on t.program_id = p.program_id join report.finance f on t.finance_id = f.finance_id
    where t.fiscal_year = ${Number(latestYear)} group by 1, 2`)).filter((r) => normDec(r.amount) !== '0');
  assert(shown.length === expected.length, `${shown.length} members shown, SQL gives ${expected.length}`);
  for (const r of expected) {
    const m = shown.find((x) => x.name === r.name && x.side === r.side);
    assert(m && normDec(m.after) === normDec(r.amount), `${r.name} (${r.side}) shows ${m && m.after}, SQL gives ${r.amount}`);
  }
  const load = await page.getAttribute(tid('changes-summary'), 'data-to');
  await page.click(`${tid(`changes-members-${latestYear}`)} tbody tr[data-name]:first-child ${tid('changes-rows-after')}`);
  const rows = await rowsShown(page);
  const first = shown[0];
  const n = records(await sql(`select count(*) as n, sum(t.amount) as amount from report.transaction t join report.program p on t.program_id = p.program_id
    join report.finance f on t.finance_id = f.finance_id where t.fiscal_year = ${Number(latestYear)} and p.organization_group = ${q(first.name)} and f.revenue_or_spending = ${q(first.side)}`))[0];
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
