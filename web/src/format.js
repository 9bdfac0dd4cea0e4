// Formatting helpers. Money arrives from the API as exact decimal strings ("-10242888.26");
// it is formatted by string manipulation, never through a float, so what the page shows is
// exactly what the warehouse computed.

/** True for Arrow types whose values are numbers (Int*, UInt*, Float*, Decimal*). */
export function isNumericType(type) {
  return /^(Int|UInt|Float|Decimal)/.test(String(type || ''));
}

/** True for Arrow decimal types (values arrive as exact strings). */
export function isDecimalType(type) {
  return /^Decimal/.test(String(type || ''));
}

/**
 * Splits a decimal string (or number) into sign, integer digits and fraction digits.
 * Returns null when the value is not a plain decimal (e.g. "NaN", "1e21").
 */
function splitDecimal(value) {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(String(value).trim());
  if (!m || (m[2] === '' && (m[3] === undefined || m[3] === ''))) return null;
  return { negative: m[1] === '-', int: m[2].replace(/^0+(?=\d)/, '') || '0', frac: m[3] || '' };
}

/** Inserts thousands separators into a string of digits. */
function groupDigits(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/**
 * Formats an exact decimal amount with thousands separators and (at least) `minFrac`
 * decimals: "-10242888.26" → "-10,242,888.26", "5" → "5.00". Extra decimals are kept
 * (nothing is rounded away); a value that is not a plain decimal is returned as is.
 */
export function formatDecimal(value, minFrac = 2) {
  if (value === null || value === undefined) return '';
  const d = splitDecimal(value);
  if (!d) return String(value);
  const frac = d.frac.padEnd(minFrac, '0');
  const isZero = /^0*$/.test(d.int + frac);
  return (d.negative && !isZero ? '-' : '') + groupDigits(d.int) + (frac ? '.' + frac : '');
}

/** Money: exactly two decimals are shown when the value has two (the warehouse's scale). */
export const formatAmount = (value) => formatDecimal(value, 2);

/** Integers (counts) with thousands separators. */
export function formatInt(value) {
  if (value === null || value === undefined) return '';
  return formatDecimal(value, 0);
}

/** A result-table cell, by its Arrow type. */
export function formatCell(value, type) {
  if (value === null || value === undefined) return '';
  if (isDecimalType(type)) return formatDecimal(value, 0);
  if (/^(Int|UInt)/.test(type)) return formatInt(value);
  if (/^Float/.test(type)) {
    return Number(value).toLocaleString('en-US', { maximumFractionDigits: 6 });
  }
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/**
 * Compares two exact decimals (strings or numbers) without floating point: returns
 * <0, 0 or >0. Non-decimal values fall back to numeric comparison.
 */
export function compareDecimal(a, b) {
  const x = splitDecimal(a), y = splitDecimal(b);
  if (!x || !y) return Number(a) - Number(b);
  const scale = Math.max(x.frac.length, y.frac.length);
  const big = (d) => {
    const n = BigInt(d.int + d.frac.padEnd(scale, '0'));
    return d.negative ? -n : n;
  };
  const bx = big(x), by = big(y);
  return bx < by ? -1 : bx > by ? 1 : 0;
}

/** Short money labels for chart axes: 1234567 → "$1.2M". Display only (rounded). */
const compactFmt = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });
export function compactMoney(n) {
  const v = Number(n);
  return (v < 0 ? '-$' : '$') + compactFmt.format(Math.abs(v));
}
export function compactNumber(n) {
  return compactFmt.format(Number(n));
}

/** One CSV field, quoted when needed (RFC 4180). */
function csvField(value) {
  if (value === null || value === undefined) return '';
  const s = typeof value === 'object' ? JSON.stringify(value) : String(value);
  return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

/** Builds CSV text from a header row and data rows (values written exactly as given). */
export function toCsv(header, rows) {
  return [header, ...rows].map((r) => r.map(csvField).join(',')).join('\r\n') + '\r\n';
}

/** Makes the browser download `text` as a file named `filename`. */
export function downloadText(filename, text, mime = 'text/csv;charset=utf-8') {
  const url = URL.createObjectURL(new Blob([text], { type: mime }));
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  // Revoke later: revoking synchronously can cancel the download in some browsers.
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** A file-name-safe slug of some words. */
export function slug(...parts) {
  return parts
    .filter((p) => p !== undefined && p !== null && p !== '')
    .join('-')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 120);
}

/** Escapes text for safe insertion into HTML built as a string (used by chart tooltips). */
export function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}
