// The one door to the citybooks HTTP API: adds the bearer token, turns `{"error": ...}`
// answers into thrown Errors carrying the server's message, and asks the user for a
// token when the server answers 401.

const TOKEN_KEY = 'citybooks.token';

/** An error answered by the API (`status` is the HTTP status, 0 for network errors). */
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

function storedToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return ''; // storage disabled: the token then lives only in this page
  }
}

let memoryToken = storedToken();

// All requests that meet a 401 while the dialog is open wait for the same answer.
let pendingTokenPrompt = null;

/** Shows the token dialog; resolves with the token entered, or null if dismissed. */
function askForToken(rejected) {
  if (pendingTokenPrompt) return pendingTokenPrompt;
  const dialog = document.getElementById('token-dialog');
  const input = dialog.querySelector('input');
  const note = dialog.querySelector('[data-role="note"]');
  note.textContent = rejected
    ? 'The server did not accept that token. Enter a valid API token.'
    : 'This warehouse requires an API token.';
  input.value = '';
  pendingTokenPrompt = new Promise((resolve) => {
    const done = () => {
      dialog.removeEventListener('close', done);
      pendingTokenPrompt = null;
      const token = dialog.returnValue === 'ok' ? input.value.trim() : '';
      resolve(token || null);
    };
    dialog.addEventListener('close', done);
  });
  dialog.showModal();
  input.focus();
  return pendingTokenPrompt;
}

function setToken(token) {
  memoryToken = token;
  try {
    localStorage.setItem(TOKEN_KEY, token);
  } catch {
    /* keep it in memory only */
  }
}

/**
 * Calls the API. `path` starts with /api/. `options` are fetch's (method, body, signal);
 * an object body is sent as JSON. Resolves with the parsed JSON answer (with `raw: true`,
 * with the body's text).
 */
export async function api(path, options = {}) {
  const { body, raw, ...rest } = options;
  let rejectedOnce = false;
  for (;;) {
    const headers = { Accept: 'application/json', ...(rest.headers || {}) };
    if (memoryToken) headers.Authorization = `Bearer ${memoryToken}`;
    const init = { ...rest, headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new ApiError(`The server could not be reached (${e.message}).`, 0);
    }
    if (response.status === 401) {
      const token = await askForToken(rejectedOnce || !!memoryToken);
      if (!token) throw new ApiError('An API token is required.', 401);
      setToken(token);
      rejectedOnce = true;
      continue; // retry with the new token
    }
    const text = await response.text();
    if (raw && response.ok) return text; // a download (CSV): the body as it came
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON: reported below */
    }
    if (!response.ok) {
      const message =
        (json && typeof json.error === 'string' && json.error) ||
        `${response.status} ${response.statusText}${text ? ': ' + text.slice(0, 200) : ''}`;
      throw new ApiError(message, response.status);
    }
    if (json === null) throw new ApiError(`Unexpected answer from ${path}: not JSON.`, response.status);
    return json;
  }
}

/** Builds a query string from an object; array values repeat the key. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null) continue;
    for (const item of Array.isArray(v) ? v : [v]) q.append(k, String(item));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

/** A random id for a query (crypto.randomUUID needs a secure context; fall back). */
export function newQueryId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; // version 4
  b[8] = (b[8] & 0x3f) | 0x80; // variant
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Lets the user enter (or replace) the token from the top bar; reloads to use it. */
export async function changeToken() {
  const token = await askForToken(false);
  if (token) {
    setToken(token);
    location.reload();
  }
}
