// What the staff pages (technician, care, billing) share: building nodes, the API
// client, notices, timestamps, polling and the session. A classic script loaded before
// each page's own inline script, so its top-level names are that script's globals.
// Each page pins this file by hash (script-src + integrity): tests/browser/test_page_policy.py.
'use strict';

const SVG_NS = 'http://www.w3.org/2000/svg';

const $ = (id) => document.getElementById(id);

// Every node is built from text nodes and attributes: API data never goes through
// innerHTML, so a name, an address or an SMS body cannot inject markup.
function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

function fill(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'onclick') node.addEventListener('click', value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// ---- API ----------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// Back to this page (and view) once logged in again.
function toLogin() {
  location.replace('/login?next=' + encodeURIComponent(location.pathname + location.hash));
}

async function api(method, path, body, signal) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' }, signal };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  let data = null;
  try { data = await resp.json(); } catch (_) { /* empty or non-JSON body */ }
  if (resp.status === 401) {
    toLogin();
    throw new ApiError(401, 'Session expirée / session expired');
  }
  if (!resp.ok) {
    const text = data && typeof data.error === 'string' ? data.error : `HTTP ${resp.status}`;
    throw new ApiError(resp.status, resp.status === 403 ? `Non autorisé / not allowed: ${text}` : text);
  }
  return data;
}

function errorMessage(err) {
  if (err instanceof ApiError) return err.message;
  return 'Serveur injoignable / server unreachable';
}

// ---- page furniture -----------------------------------------------------------------

// The page's notice box (#notice); an empty text hides it.
function notify(text, kind) {
  const box = $('notice');
  box.textContent = text;
  box.className = 'alert ' + (kind || 'error');
  box.hidden = !text;
}

// The button stays disabled while its work runs: one click, one request.
async function busy(button, work) {
  button.disabled = true;
  try { await work(); } finally { button.disabled = false; }
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

function markNav(link, on) {
  if (on) link.setAttribute('aria-current', 'page');
  else link.removeAttribute('aria-current');
}

// A status pill: `style` is the known status whose colours it wears (.badge-<style>).
function statusBadge(status, style, title, big, testid) {
  return h('span', { class: `badge badge-${style}${big ? ' big' : ''}`, 'data-testid': testid || 'status-badge',
                     'data-status': status, title: title || '' }, status);
}

// An API timestamp in French local time, with its age when asked ("il y a / ago 5 min").
function stamp(iso, format, withAge) {
  if (!iso) return '—';
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return String(iso);
  const text = t.toLocaleString('fr-FR', format);
  if (!withAge) return text;
  const age = Math.round((Date.now() - t.getTime()) / 1000);
  const rel = age < 60 ? `${Math.max(age, 0)} s` : age < 3600 ? `${Math.floor(age / 60)} min`
    : age < 172800 ? `${Math.floor(age / 3600)} h` : `${Math.floor(age / 86400)} j`;
  return `${text} (il y a / ago ${rel})`;
}

// ---- live views ---------------------------------------------------------------------

// Runs `work(me)` now and every `ms` until stopPoll(me); a hidden tab skips the fetch.
// `work` checks me.stopped after its await, so a late answer cannot redraw another view.
function poll(work, ms) {
  const me = { stopped: false, timer: null };
  const tick = async () => {
    if (me.stopped) return;
    if (!document.hidden) await work(me);
    if (!me.stopped) me.timer = setTimeout(tick, ms);
  };
  tick();
  return me;
}

function stopPoll(me) {
  if (!me) return;
  me.stopped = true;
  clearTimeout(me.timer);
}

// ---- session ------------------------------------------------------------------------

// Shows who is logged in; false (and the #forbidden box) when the account lacks the role.
async function whoAmI(role, roleName) {
  const me = await api('GET', '/api/me');
  $('who').textContent = me.username;
  const roles = Array.isArray(me.roles) ? me.roles : [];
  if (!roles.includes(role) && !roles.includes('admin')) {
    $('forbidden-text').textContent =
      `Le compte « ${me.username} » (rôles : ${roles.join(', ') || 'aucun'}) n'a pas le rôle ` +
      `${roleName} (${role}). / Account "${me.username}" lacks the ${role} role: not allowed.`;
    $('forbidden').hidden = false;
    return false;
  }
  return true;
}

async function logout(loginUrl) {
  try { await fetch('/api/logout', { method: 'POST', credentials: 'same-origin' }); } catch (_) { /* leave anyway */ }
  location.replace(loginUrl);
}

// Wires the page, then shows #app only to an account with the page's role and opens it.
// A 401 is already on its way to the login page: nothing more to show.
async function startPage({ role, roleName, loginUrl, wire, open }) {
  $('logout').addEventListener('click', () => logout(loginUrl));
  wire();
  try {
    if (!(await whoAmI(role, roleName))) return;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    notify(errorMessage(err));
    $('app').hidden = false;
    return;
  }
  $('app').hidden = false;
  await open();
}
