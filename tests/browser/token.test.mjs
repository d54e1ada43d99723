// The dashboard of a node that wants an RPC token (`--rpc-token`), in headless chromium: the
// page loads without it and asks for it, a wrong token is refused and asked for again, the
// right one shows the chain with live events (read with fetch, which carries the token), and it
// is kept for the tab across reloads.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNode, browser, shot, text, waitText } from './lib.mjs';

const TOKEN = 'dashboard-test-token-0123456789';
let node;
let b;

before(async () => {
  node = await startNode(['--name', 'carol', '--rpc-token', TOKEN]);
  b = await browser();
});

after(async () => {
  await b?.close();
  await node?.stop();
});

async function farmWithToken(count) {
  const r = await fetch(`${node.url}/farm/blocks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ count, farmer: 'ab'.repeat(32) }),
  });
  assert.ok(r.ok, await r.text());
}

test('a token-protected node: the page asks for the token and shows the chain live with it', async () => {
  // What the page reads still needs the token.
  assert.equal((await fetch(`${node.url}/status`)).status, 401);

  const page = await b.page();
  const response = await page.goto(node.url);
  assert.equal(response.status(), 200, 'the page itself is open');
  await page.locator('#auth').waitFor({ state: 'visible' });
  await waitText(page, '#live-mode', 'token needed');
  await shot(page, 'token-asked');

  // A wrong token is refused, and asked for again.
  await page.fill('#auth-token', 'wrong');
  await page.click('#auth button[type="submit"]');
  await waitText(page, '#auth-why', (t) => t.startsWith('The token was refused'));
  await page.locator('#auth').waitFor({ state: 'visible' });

  await page.fill('#auth-token', TOKEN);
  await page.click('#auth button[type="submit"]');
  await page.locator('#auth').waitFor({ state: 'hidden' });
  await waitText(page, '#tip-height', '0');
  await waitText(page, '#node-name', 'node carol');
  await page.locator('#blocks tr[data-height="0"]').waitFor();
  // Live through the event stream, read with fetch and the token.
  await waitText(page, '#live-mode', 'live: events');
  await farmWithToken(2);
  await waitText(page, '#tip-height', '2');
  await page.locator('#blocks tr[data-height="2"]').waitFor();
  await page.locator('#events li.ev-block').first().waitFor();
  assert.equal(await text(page, '#live-mode'), 'live: events');
  await shot(page, 'token-dashboard');

  // Kept for the tab: a reload asks nothing.
  await page.reload();
  await waitText(page, '#tip-height', '2');
  assert.equal(await page.locator('#auth').isHidden(), true);
  await waitText(page, '#live-mode', 'live: events');
  assert.deepEqual(b.problems, []);
});
