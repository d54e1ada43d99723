// The dashboard of one real `cairn node`, in headless chromium: the tip follows farmed blocks,
// a transaction opens from its block, search finds heights, hashes, txids and addresses, and
// hostile text from the node or the URL is shown as text.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNode, browser, farm, send, rpc, shot, text, waitText } from './lib.mjs';

let node;
let b;

before(async () => {
  node = await startNode(['--name', 'alice']);
  b = await browser();
});

after(async () => {
  await b?.close();
  await node?.stop();
});

test('the dashboard loads and follows the tip as blocks are farmed', async () => {
  const page = await b.page();
  const response = await page.goto(node.url);
  const csp = response.headers()['content-security-policy'];
  assert.match(csp, /script-src 'self'/);
  await waitText(page, '#tip-height', '0');
  await waitText(page, '#node-name', 'node alice');
  await page.locator('#blocks tr[data-height="0"]').waitFor();

  await farm(node.url, 1);
  await waitText(page, '#tip-height', '1');
  // The recent blocks list is refreshed live too.
  await page.locator('#blocks tr[data-height="1"]').waitFor();
  // The tip moved through the event stream (GET /events), not by polling.
  assert.equal(await text(page, '#live-mode'), 'live: events');
  await page.locator('#events li.ev-block').first().waitFor();
  await farm(node.url, 2);
  await waitText(page, '#tip-height', '3');
  await page.locator('#blocks tr[data-height="3"]').waitFor();
  await shot(page, 'dashboard-home');
  assert.deepEqual(b.problems, []);
});

test('a transaction opens from its block, and search finds it, its block and its address', async () => {
  const page = await b.page();
  const to = 'cd'.repeat(32);
  const txid = send(node.url, to, 4321);
  assert.match(txid, /^[0-9a-f]{64}$/);
  const farmed = await farm(node.url, 1);
  const height = farmed.height;
  await page.goto(`${node.url}/#/`);
  await waitText(page, '#tip-height', String(height));

  // The home page lists the block's transactions: open the transaction from there.
  await page.locator(`#blocks a.txid[title="${txid}"]`).click();
  await waitText(page, '#txid', txid);
  await waitText(page, '#tx-status', 'confirmed');
  await waitText(page, '#tx-amount', '4,321');
  await shot(page, 'transaction');

  // Its block, from the transaction page.
  await page.locator(`a.block:text-is("${height}")`).first().click();
  await waitText(page, 'h1', `Block ${height}`);
  await page.locator(`#block-txs a.txid[title="${txid}"]`).waitFor();
  await shot(page, 'block');
  const blockHash = await text(page, '#block-hash');

  const search = async (q) => {
    await page.fill('#search-input', q);
    await page.press('#search-input', 'Enter');
  };
  await search(to);
  await waitText(page, '#address', to);
  await waitText(page, '#balance', '4,321');
  const account = await rpc(node.url, `/accounts/${to}`);
  assert.equal(account.balance, 4321);
  // The history table, when this node serves GET /accounts/{address}/txs.
  const history = await fetch(`${node.url}/accounts/${to}/txs?limit=5`);
  if (history.ok) await page.locator(`#history a.txid[title="${txid}"]`).waitFor();
  await shot(page, 'address');

  await search(txid);
  await waitText(page, '#txid', txid);
  await search(blockHash);
  await waitText(page, '#block-hash', blockHash);
  await search('0');
  await waitText(page, 'h1', 'Block 0');
  assert.deepEqual(b.problems, []);
});

test('the mempool and peers pages list what the node has', async () => {
  const page = await b.page();
  const txid = send(node.url, 'ef'.repeat(32), 7);
  await page.goto(`${node.url}/#/mempool`);
  await page.locator(`#mempool a.txid[title="${txid}"]`).waitFor();
  await shot(page, 'mempool');
  // A second node, named, joins: the peers page shows it.
  const bob = await startNode(['--name', 'bob', '--peers', node.peer]);
  try {
    await page.goto(`${node.url}/#/peers`);
    await waitText(page, '#peers .peer-name', 'bob', 20000);
    await shot(page, 'peers');
  } finally {
    await bob.stop();
  }
  assert.deepEqual(b.problems, []);
});

test('markup from the node, a peer or the URL is shown as text and never runs', async () => {
  const page = await b.page();
  const img = '<img src=x onerror="window.__pwned=1">';
  const script = '<script>window.__pwned=2</script>';
  // Node names are refused unless plain ([A-Za-z0-9._-]), so hostile answers are played by
  // the browser: the status, a peer's name and user agent, a transaction's fields.
  await page.route('**/status', async (route) => {
    const r = await route.fetch();
    const v = await r.json();
    await route.fulfill({ response: r, json: { ...v, name: img } });
  });
  await page.route('**/p2p/peers', (route) => route.fulfill({
    json: { peers: [{ node_id: script, address: img, name: img, user_agent: `cairn/0.1.0 (${script})`, direction: img, best_height: 1, score: 0, connected_since: Date.now() }], count: 1, bans: [{ ip: img, reason: script, until_ms: 0 }] },
  }));
  const fakeTx = 'ee'.repeat(32);
  await page.route(`**/txs/${fakeTx}`, (route) => route.fulfill({
    json: { txid: script, status: img, transaction: { from: img, to: script, amount: img, fee: script, nonce: 1, public_key: img, signature: script, chain: img } },
  }));

  // A fresh document, so the page asks for /status again.
  await page.goto('about:blank');
  await page.goto(`${node.url}/#/peers`);
  await waitText(page, '#peers .peer-name', img);
  await waitText(page, '#peers .peer-agent', `cairn/0.1.0 (${script})`);
  await waitText(page, '#node-name', `node ${img}`);
  await page.goto(`${node.url}/#/tx/${fakeTx}`);
  await waitText(page, '#txid', script);
  await waitText(page, '#tx-amount', img);
  // From the URL and the search box: echoed in error messages and notices, as text.
  await page.goto(`${node.url}/#/block/${encodeURIComponent(img)}`);
  await waitText(page, '#error', (t) => t.includes('invalid'));
  await page.fill('#search-input', script);
  await page.press('#search-input', 'Enter');
  await waitText(page, '#notice', `Not a height, block hash, transaction ID or address: ${script}`);
  await shot(page, 'hostile-text');

  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'injected code ran');
  assert.equal(await page.locator('main img, main script, #notice img, .statusbar img').count(), 0, 'injected markup became elements');
  await page.unrouteAll({ behavior: 'wait' });
  assert.deepEqual(b.problems, []);
});
