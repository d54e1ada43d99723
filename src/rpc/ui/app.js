// Cairn dashboard: one module, no dependencies, no build step. It reads this node's RPC (same
// origin) and routes by the URL's hash (#/block/12, #/tx/…, #/address/…, #/mempool, #/peers,
// #/network).
//
// Security: everything shown comes from the node, and some of it from its peers. The DOM is
// built with createElement/textContent and setAttribute only, never from HTML strings (a unit
// test in src/rpc/ui.rs fails on any HTML-parsing DOM call), links are checked by safeHref, and the
// page's Content-Security-Policy runs scripts from this origin only.
//
// Live updates: Server-Sent Events from GET /events (block, reorg, tx, peer). When the stream
// is not there or breaks, the page polls GET /status every second and tries the stream again
// later, so it works against any node version.
//
// A node that wants a token (its RPC bound beyond loopback, or rpc_token set) answers 401: the
// page then asks for the token, keeps it for this tab only (sessionStorage), and sends it as
// `Authorization: Bearer` with every read; the event stream is then read with fetch, since an
// EventSource cannot send that header.

'use strict';

const POLL_MS = 1000;
const SSE_RETRY_MS = 15000;
const RECENT_BLOCKS = 10;
const TXS_PER_BLOCK_SHOWN = 5;
const MAX_EVENTS = 30;
const TX_EVENTS_PER_S = 5;
const HISTORY_PAGE = 25;
const TREE_HEIGHTS = 40;
const MIN_REFRESH_MS = 400;

// ---------------------------------------------------------------- DOM, text only

const SVG_NS = 'http://www.w3.org/2000/svg';

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (typeof v === 'function') {
      if (!k.startsWith('on')) throw new Error(`function for attribute ${k}`);
      el.addEventListener(k.slice(2), v);
    } else if (k.startsWith('on') || k === 'style' || k === 'srcdoc') {
      throw new Error(`attribute ${k} is not set from data`);
    } else if (k === 'href') {
      el.setAttribute('href', safeHref(String(v)));
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// Only in-page routes and plain http(s) URLs (a devnet node's own dashboard) become links.
function safeHref(v) {
  if (v.startsWith('#/')) return v;
  try {
    const u = new URL(v);
    if ((u.protocol === 'http:' || u.protocol === 'https:') && !u.username && !u.password) return u.href;
  } catch (_) { /* not a URL */ }
  return '#/';
}

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- formatting

const isHex64 = (v) => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);
const short = (v) => (typeof v === 'string' && v.length > 14 ? `${v.slice(0, 8)}…${v.slice(-4)}` : String(v ?? ''));
const num = (v) => (typeof v === 'number' ? v.toLocaleString('en-US') : String(v ?? '–'));

function ago(ms) {
  if (typeof ms !== 'number') return '';
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < -5) return `in ${-s} s`;
  if (s < 60) return `${Math.max(s, 0)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

const when = (ms) => (typeof ms === 'number' ? new Date(ms).toLocaleString() : '–');

function link(kind, id, text, cls) {
  const value = String(id ?? '');
  return h('a', { href: `#/${kind}/${encodeURIComponent(value)}`, class: cls ?? `mono ${kind}`, title: value }, text ?? short(value));
}

const blockLink = (id, text) => link('block', id, text ?? (typeof id === 'number' ? String(id) : short(id)));
const txLink = (id) => link('tx', id, undefined, 'mono txid');
const addrLink = (id) => link('address', id, undefined, 'mono address');

function kv(rows) {
  return h('table', { class: 'kv' }, h('tbody', null, rows.filter(Boolean).map(([k, v]) => h('tr', null, h('th', null, k), h('td', null, v)))));
}

function table(id, headers, rows, empty) {
  if (!rows.length) return h('p', { class: 'muted', id }, empty ?? 'Nothing here.');
  return h('div', { class: 'scroll' }, h('table', { class: 'list', id }, h('thead', null, h('tr', null, headers.map((x) => h('th', null, x)))), h('tbody', null, rows)));
}

const section = (title, ...body) => h('section', null, h('h2', null, title), ...body);
const badge = (text, kind) => h('span', { class: `badge ${kind ?? ''}` }, text);

// ---------------------------------------------------------------- RPC

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// ---------------------------------------------------------------- the RPC's token

const TOKEN_KEY = 'cairn-rpc-token';

function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch (_) {
    return '';
  }
}

function headers(accept) {
  const t = token();
  return t ? { Accept: accept, Authorization: `Bearer ${t}` } : { Accept: accept };
}

// A 401: ask for the token (once; the form stays until a token works).
function needToken(message) {
  const form = $('auth');
  if (!form.hidden) return;
  $('auth-why').textContent = token() ? `The token was refused: ${message}` : 'This node wants its RPC token to show anything.';
  form.hidden = false;
  $('auth-token').focus();
}

function useToken(value) {
  try {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch (_) { /* storage off: nothing is kept */ }
  $('auth').hidden = true;
  // Everything again with the token: the live stream, the status bar, the devnet link, the page.
  stopEvents();
  connectEvents();
  pollStatus();
  detectDevnet();
  render();
}

async function api(path) {
  let r;
  try {
    r = await fetch(path, { headers: headers('application/json'), cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, 'unreachable', `the node did not answer (${e.message})`);
  }
  let body = null;
  try {
    body = await r.json();
  } catch (_) { /* not JSON */ }
  if (!r.ok) {
    const err = body && body.error ? body.error : {};
    const e = new ApiError(r.status, String(err.code ?? 'http_error'), String(err.message ?? `HTTP ${r.status}`));
    if (r.status === 401) needToken(e.message);
    throw e;
  }
  return body;
}

async function exists(path) {
  try {
    await api(path);
    return true;
  } catch (e) {
    if (e.status === 404 || e.status === 400) return false;
    throw e;
  }
}

// ---------------------------------------------------------------- live state

const live = {
  tip: null, // {height, hash}
  status: null,
  mode: 'connecting',
  events: [], // newest first, at most MAX_EVENTS
  source: null, // the EventSource, or the fetch stream's AbortController
  pollTimer: null,
  retryTimer: null,
  listeners: new Set(), // (kind, data) => void
};

function emit(kind, data) {
  for (const f of live.listeners) f(kind, data);
}

function setMode(mode) {
  live.mode = mode;
  const el = $('live-mode');
  el.textContent = mode === 'events' ? 'live: events' : mode === 'polling' ? 'live: polling' : mode;
  el.dataset.mode = mode;
}

function showStatus(st) {
  live.status = st;
  $('tip-height').textContent = num(st.height);
  const a = $('tip-hash');
  a.textContent = short(st.best_hash);
  a.setAttribute('href', safeHref(`#/block/${encodeURIComponent(String(st.best_hash))}`));
  a.title = String(st.best_hash);
  $('node-name').textContent = st.name ? `node ${st.name}` : '';
  $('peer-count').textContent = num(st.peers);
  $('sync-state').textContent = st.syncing ? 'syncing' : '';
}

function newTip(height, hash, cause) {
  const changed = !live.tip || live.tip.height !== height || live.tip.hash !== hash;
  live.tip = { height, hash };
  if (live.status) showStatus({ ...live.status, height, best_hash: hash });
  if (changed) emit('tip', { height, hash, cause });
}

function record(kind, data) {
  live.events.unshift({ kind, data, at: Date.now() });
  live.events.length = Math.min(live.events.length, MAX_EVENTS);
  const list = $('events');
  if (list) {
    list.prepend(eventItem(live.events[0]));
    while (list.children.length > MAX_EVENTS) list.lastChild.remove();
  }
}

async function pollStatus() {
  try {
    const st = await api('/status');
    const seen = live.tip;
    showStatus(st);
    newTip(st.height, st.best_hash, 'poll');
    // Without the event stream, the feed shows the tip moves polling saw.
    if (live.mode === 'polling' && seen && seen.hash !== st.best_hash) record('tip', { height: st.height, hash: st.best_hash });
  } catch (e) {
    $('live-mode').textContent = e.status === 401 ? 'token needed' : `node unreachable: ${e.message}`;
  }
}

function startPolling() {
  if (live.pollTimer) return;
  setMode('polling');
  live.pollTimer = setInterval(pollStatus, POLL_MS);
  pollStatus();
}

function stopPolling() {
  clearInterval(live.pollTimer);
  live.pollTimer = null;
}

function parseData(ev) {
  try {
    const d = JSON.parse(ev.data);
    return d && typeof d === 'object' ? d : null;
  } catch (_) {
    return null;
  }
}

// What each event does, whichever way the stream is read.
const onEvent = {
  block(d) {
    record('block', d);
    newTip(d.height, d.hash, 'block');
  },
  reorg(d) {
    record('reorg', d);
    if (d.new_tip !== undefined && d.height !== undefined) newTip(d.height, d.new_tip, 'reorg');
  },
  tx(d) {
    recordTx(d);
    emit('tx', d);
  },
  lagged(d) {
    record('lagged', d);
  },
  peer(d) {
    record('peer', d);
    emit('peer', d);
    pollStatus(); // the peer count
  },
};

const EVENTS_PATH = '/events?types=block,reorg,tx,peer';

function streamOpened() {
  stopPolling();
  setMode('events');
  pollStatus(); // catch up on what happened before the stream opened
}

// The stream broke or is not served (an older node): poll, and try again later.
function streamFailed() {
  stopEvents();
  startPolling();
  live.retryTimer = setTimeout(connectEvents, SSE_RETRY_MS);
}

function stopEvents() {
  clearTimeout(live.retryTimer);
  if (live.source) (live.source.close ? live.source.close() : live.source.abort());
  live.source = null;
}

function connectEvents() {
  stopEvents();
  if (token()) return streamWithToken();
  if (typeof EventSource === 'undefined') return startPolling();
  const es = new EventSource(EVENTS_PATH);
  live.source = es;
  es.addEventListener('open', streamOpened);
  es.addEventListener('error', streamFailed);
  for (const [kind, f] of Object.entries(onEvent)) {
    es.addEventListener(kind, (ev) => {
      const d = parseData(ev);
      if (d) f(d);
    });
  }
}

// The event stream read with fetch, so it carries the token: the text/event-stream format's
// `event:` and `data:` lines, an event at each blank line (comments and `id:` are skipped).
async function streamWithToken() {
  const abort = new AbortController();
  live.source = abort;
  try {
    const r = await fetch(EVENTS_PATH, { headers: headers('text/event-stream'), cache: 'no-store', signal: abort.signal });
    if (r.status === 401) needToken('unauthorized');
    if (!r.ok || !r.body) throw new Error(`HTTP ${r.status}`);
    streamOpened();
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let kind = 'message';
    let data = [];
    let dataChars = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      // A line past a MiB is no event this node sends: drop the stream (and poll).
      if (buffer.length > 1 << 20) throw new Error('an event line past 1 MiB');
      let nl;
      while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
        // A CR at the end of what came may be half of a CRLF: wait for the next chunk.
        if (nl === buffer.length - 1 && buffer[nl] === '\r') break;
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + (buffer.startsWith('\r\n', nl) ? 2 : 1));
        if (line === '') {
          const f = Object.hasOwn(onEvent, kind) ? onEvent[kind] : null;
          const d = data.length ? parseData({ data: data.join('\n') }) : null;
          if (f && d) f(d);
          kind = 'message';
          data = [];
          dataChars = 0;
        } else if (line.startsWith('event:')) {
          kind = line.slice(6).trim();
        } else if (line.startsWith('data:')) {
          data.push(line.slice(5).replace(/^ /, ''));
          // One event's data past a MiB is no event this node sends either.
          dataChars += line.length;
          if (dataChars > 1 << 20) throw new Error('an event past 1 MiB');
        }
      }
    }
    throw new Error('the stream ended');
  } catch (_) {
    if (live.source === abort) streamFailed();
  }
}

// Under a load of thousands of transactions a second the feed shows a few a second and counts
// the rest, so the page stays responsive.
const txBudget = { second: 0, used: 0, skipped: 0 };
function recordTx(d) {
  const now = Math.floor(Date.now() / 1000);
  if (now !== txBudget.second) {
    if (txBudget.skipped) record('more', { count: txBudget.skipped });
    txBudget.second = now;
    txBudget.used = 0;
    txBudget.skipped = 0;
  }
  if (txBudget.used < TX_EVENTS_PER_S) {
    txBudget.used += 1;
    record('tx', d);
  } else {
    txBudget.skipped += 1;
  }
}

function eventItem(e) {
  const d = e.data;
  const time = h('time', { class: 'muted' }, new Date(e.at).toLocaleTimeString());
  switch (e.kind) {
    case 'block':
      return h('li', { class: 'ev-block' }, time, ' block ', blockLink(d.hash, `#${d.height}`), ` ${num(d.txs)} txs`);
    case 'tip':
      return h('li', { class: 'ev-block' }, time, ' new tip ', blockLink(d.hash, `#${d.height}`));
    case 'reorg':
      return h('li', { class: 'ev-reorg' }, time, ` reorg depth ${num(d.depth)}: `, blockLink(d.old_tip), ' → ', blockLink(d.new_tip));
    case 'tx':
      return h('li', { class: 'ev-tx' }, time, ' tx ', txLink(d.txid), ` ${num(d.amount)} → `, addrLink(d.to));
    case 'peer':
      return h('li', { class: 'ev-peer' }, time, ` peer ${String(d.event ?? '')} `, String(d.name ?? (d.node_id ? short(d.node_id) : d.addr ?? '')),
        d.reason ? ` (${String(d.reason)}${d.by_peer ? ', by the peer' : ''})` : '');
    case 'more':
      return h('li', { class: 'ev-tx muted' }, time, ` … and ${num(d.count)} more transactions`);
    case 'lagged':
      return h('li', { class: 'ev-lagged muted' }, time, ` ${num(d.missed_txs)} transaction events skipped (too many to show)`);
    default:
      return h('li', null, time, ` ${e.kind}`);
  }
}

// ---------------------------------------------------------------- pages

async function homePage(ctx) {
  const st = await api('/status');
  showStatus(st);
  newTip(st.height, st.best_hash, 'page');
  const from = Math.max(0, st.height - (RECENT_BLOCKS - 1));
  const range = await api(`/blocks?from=${from}&limit=${RECENT_BLOCKS}`);
  const blocks = (range.blocks ?? []).slice().reverse();
  const rows = [];
  for (const b of blocks) {
    const txs = b.transactions ?? [];
    rows.push(h('tr', { 'data-height': b.header.height },
      h('td', null, blockLink(b.header.height)),
      h('td', null, blockLink(b.hash)),
      h('td', { title: when(b.header.timestamp) }, ago(b.header.timestamp)),
      h('td', { class: 'num' }, num(txs.length)),
      h('td', null, addrLink(b.header.farmer))));
    if (txs.length) {
      const shown = txs.slice(0, TXS_PER_BLOCK_SHOWN).map((t) => h('li', null, txLink(t.txid), ' ', addrLink(t.from), ' → ', addrLink(t.to), ` ${num(t.amount)}`));
      if (txs.length > TXS_PER_BLOCK_SHOWN) shown.push(h('li', null, blockLink(b.hash, `… ${num(txs.length - TXS_PER_BLOCK_SHOWN)} more in the block`)));
      rows.push(h('tr', { class: 'txrow' }, h('td', null), h('td', { colspan: 4 }, h('ul', { class: 'txs' }, shown))));
    }
  }
  ctx.refreshOn = ['tip'];
  return h('div', null,
    h('div', { class: 'cards' },
      card('Height', num(st.height), 'card-height'),
      card('Best block', blockLink(st.best_hash)),
      card('Chain', String(st.chain_id ?? '')),
      card('Block time', `${num(st.block_time_ms)} ms`),
      card('Node', String(st.name ?? short(st.node_id))),
      card('Peers', num(st.peers)),
      card('Version', String(st.version ?? ''))),
    h('div', { class: 'columns' },
      section('Recent blocks', table('blocks', ['Height', 'Hash', 'Time', 'Txs', 'Farmer'], rows, 'No blocks yet.')),
      section('Live', h('ul', { id: 'events', class: 'events' }, live.events.map(eventItem)),
        live.events.length ? null : h('p', { class: 'muted small' }, 'Events appear here as blocks, transactions and peers arrive.'))));
}

function card(title, value, id) {
  return h('div', { class: 'card', id }, h('div', { class: 'muted small' }, title), h('div', { class: 'big' }, value));
}

function txTable(id, txs, empty) {
  return table(id, ['Txid', 'From', 'To', 'Amount', 'Fee', 'Nonce'], txs.map((t) => h('tr', null,
    h('td', null, txLink(t.txid)),
    h('td', null, addrLink(t.from)),
    h('td', null, addrLink(t.to)),
    h('td', { class: 'num' }, num(t.amount)),
    h('td', { class: 'num' }, num(t.fee)),
    h('td', { class: 'num' }, num(t.nonce)))), empty);
}

async function blockPage(ctx, id) {
  const b = await api(`/blocks/${encodeURIComponent(id)}`);
  const hd = b.header;
  const tip = live.tip ? live.tip.height : null;
  const nav = h('p', { class: 'pager' },
    hd.height > 0 ? blockLink(hd.height - 1, `← ${hd.height - 1}`) : null, ' ',
    tip === null || hd.height < tip ? blockLink(hd.height + 1, `${hd.height + 1} →`) : null);
  return h('div', null,
    h('h1', null, `Block ${num(hd.height)}`), nav,
    kv([
      ['Hash', h('span', { class: 'mono wrap', id: 'block-hash' }, String(b.hash))],
      ['Height', num(hd.height)],
      ['Parent', hd.height > 0 ? blockLink(hd.prev_hash, String(hd.prev_hash)) : h('span', { class: 'mono wrap' }, String(hd.prev_hash))],
      ['Time', `${when(hd.timestamp)} (${ago(hd.timestamp)})`],
      ['Farmer', addrLink(hd.farmer)],
      ['Transactions', num((b.transactions ?? []).length)],
      ['Target', h('span', { class: 'mono wrap' }, String(hd.target))],
      ['Nonce', num(hd.nonce)],
      ['Tx root', h('span', { class: 'mono wrap' }, String(hd.tx_root))],
      ['Version', num(hd.version)],
    ]),
    section('Transactions', txTable('block-txs', b.transactions ?? [], 'No transactions in this block.')));
}

async function txPage(ctx, id) {
  const r = await api(`/txs/${encodeURIComponent(id)}`);
  const t = r.transaction ?? {};
  const confirmed = r.status === 'confirmed';
  const confirmations = confirmed && live.tip ? live.tip.height - r.height + 1 : null;
  ctx.refreshOn = ['tip'];
  return h('div', null,
    h('h1', null, 'Transaction ', h('span', { id: 'tx-status' }, badge(String(r.status), confirmed ? 'ok' : 'warn'))),
    kv([
      ['Txid', h('span', { class: 'mono wrap', id: 'txid' }, String(r.txid))],
      confirmed ? ['Block', h('span', null, blockLink(r.height), ' ', blockLink(r.block_hash))] : ['Block', 'pending in the mempool'],
      confirmations !== null ? ['Confirmations', num(confirmations)] : null,
      ['From', addrLink(t.from)],
      ['To', addrLink(t.to)],
      ['Amount', h('span', { id: 'tx-amount' }, num(t.amount))],
      ['Fee', num(t.fee)],
      ['Nonce', num(t.nonce)],
      ['Public key', h('span', { class: 'mono wrap' }, String(t.public_key))],
      ['Signature', h('span', { class: 'mono wrap' }, String(t.signature))],
      ['Chain', h('span', { class: 'mono wrap' }, String(t.chain))],
    ]));
}

async function addressPage(ctx, id, state) {
  const acct = await api(`/accounts/${encodeURIComponent(id)}`);
  const before = state && state.before;
  let history;
  try {
    const q = `limit=${HISTORY_PAGE}${before ? `&before=${encodeURIComponent(before)}` : ''}`;
    history = await api(`/accounts/${encodeURIComponent(id)}/txs?${q}`);
  } catch (e) {
    if (e.status !== 404) throw e;
    history = null; // an older node: no address index
  }
  ctx.refreshOn = before ? [] : ['tip', 'tx'];
  const body = [
    h('h1', null, 'Address'),
    h('p', { class: 'mono wrap', id: 'address' }, String(acct.address)),
    h('div', { class: 'cards' },
      card('Balance', h('span', { id: 'balance' }, num(acct.balance))),
      card('Nonce', num(acct.nonce)),
      card('Next nonce', num(acct.next_nonce))),
  ];
  if (!history) {
    body.push(section('History', h('p', { class: 'muted' }, 'This node does not serve address history (GET /accounts/{address}/txs).')));
    return h('div', null, body);
  }
  // Pending entries are {txid, direction, received_ms, transaction}.
  const pending = (history.pending ?? []).map((p) => ({ ...(p.transaction ?? p), txid: p.txid ?? (p.transaction ?? {}).txid }));
  if (pending.length && !before) body.push(section('Pending', txTable('pending', pending)));
  const rows = (history.confirmed ?? []).map((c) => {
    const t = c.transaction ?? {};
    const other = c.direction === 'received' ? t.from : t.to;
    return h('tr', { 'data-direction': String(c.direction) },
      h('td', null, badge(String(c.direction), c.direction === 'received' ? 'ok' : c.direction === 'sent' ? 'warn' : '')),
      h('td', null, txLink(c.txid)),
      h('td', null, blockLink(c.height)),
      h('td', { title: when(c.timestamp) }, ago(c.timestamp)),
      h('td', null, addrLink(other)),
      h('td', { class: 'num' }, num(t.amount)),
      h('td', { class: 'num' }, num(t.fee)));
  });
  const more = [];
  if (before) more.push(h('a', { href: `#/address/${encodeURIComponent(id)}` }, '← newest'), ' ');
  if (history.next !== null && history.next !== undefined) {
    more.push(h('button', { type: 'button', id: 'older', onclick: () => render({ before: String(history.next) }) }, 'Older →'));
  }
  body.push(section('History', table('history', ['', 'Txid', 'Block', 'Time', 'Counterparty', 'Amount', 'Fee'], rows, 'No confirmed transactions.'), h('p', { class: 'pager' }, more)));
  return h('div', null, body);
}

async function mempoolPage(ctx) {
  const m = await api('/mempool?limit=200');
  const txs = m.transactions ?? [];
  ctx.refreshOn = ['tip', 'tx'];
  const rows = txs.map((t) => h('tr', null,
    h('td', null, txLink(t.txid)),
    h('td', null, addrLink(t.from)),
    h('td', null, addrLink(t.to)),
    h('td', { class: 'num' }, num(t.amount)),
    h('td', { class: 'num' }, num(t.fee)),
    h('td', { class: 'num' }, num(t.nonce)),
    h('td', null, typeof t.received_ms === 'number' ? ago(t.received_ms) : '')));
  return h('div', null,
    h('h1', null, 'Mempool'),
    h('p', null, h('b', { id: 'mempool-count' }, num(m.count)), ' pending', txs.length < m.count ? ` (showing ${num(txs.length)})` : ''),
    table('mempool', ['Txid', 'From', 'To', 'Amount', 'Fee', 'Nonce', 'Received'], rows, 'The mempool is empty.'));
}

async function peersPage(ctx) {
  const p = await api('/p2p/peers');
  ctx.refreshOn = ['peer'];
  ctx.every = 5000;
  const rows = (p.peers ?? []).map((x) => h('tr', { class: 'peer' },
    h('td', { class: 'peer-name' }, String(x.name ?? '')),
    h('td', { class: 'mono', title: String(x.node_id) }, short(x.node_id)),
    h('td', { class: 'mono' }, String(x.address ?? '')),
    h('td', null, String(x.direction ?? '')),
    h('td', { class: 'num' }, num(x.best_height)),
    h('td', { class: 'num' }, x.ping_ms === null || x.ping_ms === undefined ? '–' : `${num(x.ping_ms)} ms`),
    h('td', null, ago(x.connected_since)),
    h('td', { class: 'peer-agent' }, String(x.user_agent ?? '')),
    h('td', { class: 'num' }, num(x.score))));
  const bans = (p.bans ?? []).map((b) => h('tr', null,
    h('td', { class: 'mono' }, String(b.node_id ?? b.ip ?? '')),
    h('td', null, String(b.reason ?? '')),
    h('td', null, when(b.until_ms))));
  return h('div', null,
    h('h1', null, 'Peers'),
    table('peers', ['Name', 'Node ID', 'Address', 'Direction', 'Height', 'Ping', 'Connected', 'User agent', 'Score'], rows, 'No peers connected.'),
    section('Bans', table('bans', ['Target', 'Reason', 'Until'], bans, 'No bans.')));
}

// ---------------------------------------------------------------- devnet network view

const GROUP_COLOURS = ['#2563eb', '#d97706', '#059669', '#db2777', '#7c3aed', '#0891b2'];
const groupColour = (g) => (g ? GROUP_COLOURS[(g - 1) % GROUP_COLOURS.length] : GROUP_COLOURS[0]);

async function networkPage(ctx) {
  const v = await api('/devnet/network');
  ctx.every = POLL_MS;
  const nodes = v.nodes ?? [];
  const up = nodes.filter((n) => n.up);
  const partition = Array.isArray(v.partition) ? v.partition.map((g) => g.join(' ')).join(' / ') : null;
  const rates = v.rates ?? [];
  const last = rates[rates.length - 1] ?? { blocks_per_s: 0, txs_per_s: 0 };
  return h('div', null,
    h('h1', null, 'Devnet'),
    h('p', null,
      `${up.length}/${nodes.length} nodes up · `,
      h('span', { id: 'partition', 'data-partitioned': partition ? 'yes' : 'no' }, partition ? `partitioned: ${partition}` : 'one network'),
      ` · ${v.farming ? 'farming' : 'not farming'}`),
    h('div', { class: 'columns' },
      section('Nodes and links', graph(nodes)),
      section('Rates',
        sparkline('blocks/s', rates.map((r) => r.blocks_per_s), last.blocks_per_s, 'spark-blocks'),
        sparkline('confirmed tx/s', rates.map((r) => r.txs_per_s), last.txs_per_s, 'spark-txs'))),
    section('Block tree', blockTree(v.blocks ?? [], nodes)),
    section('Nodes', table('net-nodes', ['Node', 'State', 'Group', 'Height', 'Tip', 'Peers', 'Mempool'], nodes.map((n) => h('tr', { 'data-node': n.number },
      h('td', null, h('a', { href: String(n.rpc ?? ''), class: 'node-link' }, String(n.name ?? n.number))),
      h('td', null, n.up ? (n.syncing ? badge('syncing', 'warn') : badge('up', 'ok')) : badge('stopped', 'bad')),
      h('td', null, n.group ? String(n.group) : '–'),
      h('td', { class: 'num' }, n.up ? num(n.height) : '–'),
      h('td', null, n.tip ? blockLink(n.tip) : '–'),
      h('td', null, (n.peers ?? []).map((p) => `node${p}`).join(' ')),
      h('td', { class: 'num' }, num(n.mempool)))))));
}

// Nodes on a circle; while partitioned, one circle per group, side by side, each in a dashed
// ring: a link can only join nodes of one group.
function graph(nodes) {
  const W = 520;
  const H = 300;
  const groups = new Map();
  for (const n of nodes) {
    const g = n.group ?? 0;
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(n);
  }
  const keys = [...groups.keys()].sort((a, b) => a - b);
  const pos = new Map();
  const rings = [];
  keys.forEach((g, gi) => {
    const members = groups.get(g);
    const cx = (W / keys.length) * (gi + 0.5);
    const cy = H / 2;
    const r = members.length === 1 ? 0 : Math.min(W / keys.length / 2 - 40, H / 2 - 40);
    members.forEach((n, i) => {
      const a = (2 * Math.PI * i) / members.length - Math.PI / 2;
      pos.set(n.number, [cx + r * Math.cos(a), cy + r * Math.sin(a)]);
    });
    if (keys.length > 1) {
      rings.push(svg('g', { class: 'group', 'data-group': g },
        svg('circle', { cx, cy, r: r + 30, class: 'group-ring', stroke: groupColour(g) }),
        svg('text', { x: cx, y: 16, class: 'group-label', 'text-anchor': 'middle', fill: groupColour(g) }, `group ${g}`)));
    }
  });
  const edges = [];
  const seen = new Set();
  for (const n of nodes) {
    for (const p of n.peers ?? []) {
      const key = n.number < p ? `${n.number}-${p}` : `${p}-${n.number}`;
      if (seen.has(key) || !pos.has(p)) continue;
      seen.add(key);
      const [x1, y1] = pos.get(n.number);
      const [x2, y2] = pos.get(p);
      edges.push(svg('line', { x1, y1, x2, y2, class: 'edge', 'data-edge': key }));
    }
  }
  const circles = nodes.map((n) => {
    const [x, y] = pos.get(n.number);
    return svg('g', { class: `net-node ${n.up ? 'up' : 'down'}`, 'data-node': n.number, 'data-group': n.group ?? '', transform: `translate(${x.toFixed(1)},${y.toFixed(1)})` },
      svg('title', null, `${n.name}: ${n.up ? `height ${n.height}, tip ${short(n.tip)}, peers ${(n.peers ?? []).length}` : 'stopped'}`),
      svg('circle', { r: 22, fill: n.up ? groupColour(n.group) : '#9ca3af' }),
      svg('text', { y: -2, 'text-anchor': 'middle', class: 'node-name' }, String(n.name ?? n.number)),
      svg('text', { y: 11, 'text-anchor': 'middle', class: 'node-height' }, n.up ? `#${n.height}` : 'stopped'));
  });
  return svg('svg', { id: 'net-graph', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'devnet nodes and their connections' }, rings, edges, circles);
}

// The last TREE_HEIGHTS heights of the tree: one column per height, one lane per branch. Lane
// 0 is the branch of the highest tip most nodes follow; blocks no node follows are stale.
function blockTree(blocks, nodes) {
  if (!blocks.length) return h('p', { class: 'muted' }, 'No blocks recorded yet.');
  const top = blocks[blocks.length - 1].height;
  const shown = blocks.filter((b) => b.height > top - TREE_HEIGHTS);
  const byHash = new Map(shown.map((b) => [b.hash, b]));
  const children = new Map();
  for (const b of shown) {
    if (byHash.has(b.prev)) children.set(b.prev, (children.get(b.prev) ?? 0) + 1);
  }
  const score = (b) => [b.best_of.length > 0 ? 1 : 0, b.height, b.best_of.length];
  const better = (a, b) => { const x = score(a); const y = score(b); for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] > y[i]; return false; };
  const leaves = shown.filter((b) => !children.has(b.hash)).sort((a, b) => (better(a, b) ? -1 : better(b, a) ? 1 : 0));
  const lane = new Map();
  let lanes = 0;
  for (const leaf of leaves) {
    const l = lanes++;
    for (let b = leaf; b && !lane.has(b.hash); b = byHash.get(b.prev)) lane.set(b.hash, l);
  }
  const COL = 46;
  const ROW = 38;
  const base = top - TREE_HEIGHTS + 1 > 0 ? top - TREE_HEIGHTS + 1 : 0;
  const minH = Math.max(base, shown[0].height);
  const x = (height) => 20 + (height - minH) * COL;
  const y = (l) => 30 + l * ROW;
  const tips = new Map();
  for (const n of nodes) if (n.up && n.tip) tips.set(n.tip, [...(tips.get(n.tip) ?? []), String(n.name)]);
  const longest = Math.max(0, ...[...tips.values()].map((names) => names.join(', ').length));
  const W = x(top) + 60 + longest * 7;
  const H = y(lanes - 1) + 40;
  const parts = [];
  for (const b of shown) {
    const p = byHash.get(b.prev);
    if (p) parts.push(svg('line', { x1: x(p.height) + 30, y1: y(lane.get(p.hash)) + 10, x2: x(b.height), y2: y(lane.get(b.hash)) + 10, class: 'tree-edge' }));
  }
  for (const b of shown) {
    const stale = b.best_of.length === 0;
    const l = lane.get(b.hash);
    parts.push(svg('a', { href: `#/block/${b.hash}` },
      svg('rect', { x: x(b.height), y: y(l), width: 30, height: 20, rx: 4, class: `block ${stale ? 'stale' : 'best'}`, 'data-hash': b.hash, 'data-height': b.height, 'data-lane': l, 'data-best-of': b.best_of.join(' ') },
        svg('title', null, `#${b.height} ${short(b.hash)} · ${b.txs} txs · ${stale ? 'stale: no node follows it' : `best chain of ${b.best_of.map((n) => `node${n}`).join(', ')}`}`)),
      svg('text', { x: x(b.height) + 15, y: y(l) + 14, 'text-anchor': 'middle', class: 'block-label' }, String(b.height % 1000))));
    if (tips.has(b.hash)) {
      parts.push(svg('text', { x: x(b.height) + 36, y: y(l) + 14, class: 'tip-label', 'data-tip-of': tips.get(b.hash).join(' ') }, `← ${tips.get(b.hash).join(', ')}`));
    }
  }
  const stale = shown.filter((b) => b.best_of.length === 0).length;
  const agree = new Set(nodes.filter((n) => n.up).map((n) => n.tip)).size === 1;
  const box = h('div', { class: 'scroll tree', id: 'tree-box' }, svg('svg', { id: 'block-tree', width: W, height: H, viewBox: `0 0 ${W} ${H}` }, parts));
  requestAnimationFrame(() => { box.scrollLeft = box.scrollWidth; });
  return h('div', null,
    h('p', { class: 'small' },
      h('span', { id: 'tree-agree', 'data-agree': agree ? 'yes' : 'no' }, agree ? 'every running node is on one tip' : 'nodes are on different tips'),
      ` · ${lanes} branch${lanes === 1 ? '' : 'es'} · `,
      h('span', { id: 'tree-stale', 'data-stale': stale }, `${stale} stale block${stale === 1 ? '' : 's'}`),
      ' (grey: on no node\'s best chain)'),
    box);
}

function sparkline(label, values, current, id) {
  const W = 240;
  const H = 48;
  const max = Math.max(1e-9, ...values);
  const pts = values.map((v, i) => `${(values.length < 2 ? 0 : (i / (values.length - 1)) * W).toFixed(1)},${(H - 2 - (v / max) * (H - 4)).toFixed(1)}`).join(' ');
  return h('div', { class: 'spark', id },
    h('div', { class: 'small muted' }, label),
    h('div', { class: 'big' }, typeof current === 'number' ? current.toFixed(2) : '–'),
    svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: 'sparkline' },
      svg('polyline', { points: pts, class: 'spark-line' }),
      svg('title', null, `${label}: last ${values.length} s, peak ${max.toFixed(2)}`)));
}

// ---------------------------------------------------------------- routing

const routes = [
  [/^$|^\/$/, homePage, 'home'],
  [/^\/block\/(.+)$/, blockPage, 'home'],
  [/^\/tx\/(.+)$/, txPage, 'home'],
  [/^\/address\/(.+)$/, addressPage, 'home'],
  [/^\/mempool$/, mempoolPage, 'mempool'],
  [/^\/peers$/, peersPage, 'peers'],
  [/^\/network$/, networkPage, 'network'],
];

let generation = 0;
let current = null; // {ctx, page, param, state}
let timer = null;
let refreshing = false;
let dirty = false;
let lastRefresh = 0;

function decode(s) {
  try {
    return decodeURIComponent(s);
  } catch (_) {
    return s;
  }
}

// Renders the page of the current hash; `state` carries a page's own state (a cursor), and a
// quiet render (a live refresh) keeps the old content until the new one is ready.
async function render(state, quiet) {
  const hash = location.hash.replace(/^#/, '');
  const my = ++generation;
  clearTimeout(timer);
  let page = null;
  let param = null;
  let nav = null;
  for (const [re, f, n] of routes) {
    const m = hash.match(re);
    if (m) {
      page = f;
      param = m[1] === undefined ? null : decode(m[1]);
      nav = n;
      break;
    }
  }
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.nav === nav);
  const view = $('view');
  if (!page) {
    view.replaceChildren(h('h1', null, 'Not found'), h('p', null, 'No page ', h('code', null, `#${hash}`), '. ', h('a', { href: '#/' }, 'Back to the chain')));
    current = null;
    return;
  }
  if (!quiet) {
    current = null; // no live refresh of the page being left
    hideNotice();
    view.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  }
  const ctx = { refreshOn: [], every: 0 };
  try {
    const node = await page(ctx, param, state);
    if (my !== generation) return;
    view.replaceChildren(node);
    current = { ctx, page, param, state };
  } catch (e) {
    if (my !== generation) return;
    current = { ctx, page, param, state };
    // A failed live refresh keeps what is shown; the next one tries again.
    if (!quiet && e.status === 401) view.replaceChildren(h('p', { class: 'muted', id: 'error' }, 'Enter the node\'s RPC token above to see its chain.'));
    else if (!quiet) view.replaceChildren(h('h1', null, e.status === 404 ? 'Not found' : 'Error'), h('p', { class: 'error', id: 'error' }, errorText(e)), h('p', null, h('a', { href: '#/' }, 'Back to the chain')));
  }
  if (ctx.every) timer = setTimeout(refresh, ctx.every);
}

function errorText(e) {
  return e instanceof ApiError ? `${e.message} (${e.code})` : String(e && e.message ? e.message : e);
}

// A live refresh of the page shown, at most one at a time and one every MIN_REFRESH_MS.
async function refresh() {
  if (!current) return;
  if (refreshing) {
    dirty = true;
    return;
  }
  refreshing = true;
  const shown = current;
  const wait = lastRefresh + MIN_REFRESH_MS - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  lastRefresh = Date.now();
  try {
    // Unless the user went elsewhere meanwhile (that render is the refresh).
    if (current === shown) await render(shown.state, true);
  } finally {
    refreshing = false;
    if (dirty) {
      dirty = false;
      refresh();
    }
  }
}

live.listeners.add((kind) => {
  if (current && current.ctx.refreshOn.includes(kind)) refresh();
});

function showNotice(text) {
  const n = $('notice');
  n.replaceChildren(document.createTextNode(text));
  n.hidden = false;
}

function hideNotice() {
  $('notice').hidden = true;
}

async function search(q) {
  q = q.trim();
  if (!q) return;
  if (/^\d{1,20}$/.test(q)) {
    location.hash = `#/block/${q}`;
    return;
  }
  const hex = q.toLowerCase().replace(/^0x/, '');
  if (isHex64(hex)) {
    try {
      if (await exists(`/blocks/${hex}`)) location.hash = `#/block/${hex}`;
      else if (await exists(`/txs/${hex}`)) location.hash = `#/tx/${hex}`;
      else location.hash = `#/address/${hex}`;
    } catch (e) {
      showNotice(`Search failed: ${errorText(e)}`);
    }
    return;
  }
  showNotice(`Not a height, block hash, transaction ID or address: ${q}`);
}

async function detectDevnet() {
  try {
    await api('/devnet/network');
    $('nav-network').hidden = false;
  } catch (_) { /* not a devnet node */ }
}

function main() {
  $('search').addEventListener('submit', (ev) => {
    ev.preventDefault();
    search($('search-input').value);
  });
  $('auth').addEventListener('submit', (ev) => {
    ev.preventDefault();
    useToken($('auth-token').value.trim());
    $('auth-token').value = '';
  });
  window.addEventListener('hashchange', () => render());
  connectEvents();
  pollStatus();
  detectDevnet();
  render();
}

main();
