// The devnet's network view in headless chromium: three nodes of a real `cairn devnet`, a
// partition shown as two groups, each side farming its own branch, and after `heal` the tree
// showing the fork with the losing branch stale and every node on the winner.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDevnet, browser, farm, rpc, shot, text, waitText, until } from './lib.mjs';

let devnet;
let b;

before(async () => {
  // No built-in farmer: the test farms each side itself, so the winner is known.
  devnet = await startDevnet(['--nodes', '3']);
  b = await browser();
});

after(async () => {
  await b?.close();
  await devnet?.stop();
});

const edges = (page) => page.locator('#net-graph line.edge').count();

test('the network view shows the nodes, a partition, and the fork tree after heal', async () => {
  const urls = await devnet.urls(3);
  const page = await b.page();
  await page.goto(urls[0]);
  // The Network tab appears on a devnet node.
  await page.locator('#nav-network').waitFor({ state: 'visible' });
  await page.click('#nav-network');
  await page.locator('#net-graph g.net-node').nth(2).waitFor();
  await until('a full mesh of three links', 30000, async () => (await edges(page)) === 3);
  await waitText(page, '#partition', 'one network');
  await shot(page, 'devnet-mesh');

  let seen = devnet.seen();
  devnet.send('partition 1 / 2 3');
  await devnet.line(/partitioned: 1 \/ 2 3/, 30000, seen);
  await waitText(page, '#partition', 'partitioned: 1 / 2 3');
  assert.equal(await page.locator('#net-graph g.group').count(), 2);
  assert.equal(await page.locator('#net-graph g.net-node[data-group="1"]').count(), 1);
  assert.equal(await page.locator('#net-graph g.net-node[data-group="2"]').count(), 2);
  // Only the link inside group 2 remains.
  await until('node 1 cut off in the graph', 30000, async () => (await edges(page)) === 1 && (await page.locator('#net-graph line[data-edge="2-3"]').count()) === 1);

  // Each side farms its own branch; nodes 2 and 3 farm more, so theirs wins.
  await farm(urls[0], 2, '01'.repeat(32));
  await farm(urls[1], 4, '02'.repeat(32));
  await until('node 3 on node 2\'s branch', 30000, async () => (await rpc(urls[2], '/status')).height === 4);
  await waitText(page, '#tree-agree', 'nodes are on different tips');
  await page.locator('#block-tree rect.block[data-lane="1"]').first().waitFor();
  await shot(page, 'devnet-partition');

  seen = devnet.seen();
  devnet.send('heal');
  await devnet.line(/healed/, 30000, seen);
  await waitText(page, '#partition', 'one network', 30000);
  await waitText(page, '#tree-agree', 'every running node is on one tip', 30000);
  await until('the mesh back', 30000, async () => (await edges(page)) === 3);
  // The fork stays in the tree: node 1's two blocks are stale, the winning tip is everyone's.
  await waitText(page, '#tree-stale', '2 stale blocks');
  assert.equal(await page.locator('#block-tree rect.block.stale').count(), 2);
  const winner = (await rpc(urls[1], '/status')).best_hash;
  assert.equal(await page.locator(`#block-tree rect.block[data-hash="${winner}"]`).getAttribute('data-best-of'), '1 2 3');
  assert.match(await text(page, '#block-tree .tip-label'), /node1, node2, node3/);
  // Rates are plotted.
  await page.locator('#spark-blocks polyline').waitFor();
  await shot(page, 'devnet-healed');
  assert.deepEqual(b.problems, []);
});

test('a node outside a devnet has no Network tab', async () => {
  // The devnet's own nodes answer /devnet/network; this checks the tab stays hidden on a 404,
  // using the browser's routing to play a plain node.
  const urls = await devnet.urls(3);
  const page = await b.page();
  await page.route('**/devnet/network', (route) => route.fulfill({ status: 404, json: { error: { code: 'not_found', message: 'not a devnet node' } } }));
  await page.goto(`${urls[2]}/#/`);
  await waitText(page, '#tip-height', (t) => /^\d+$/.test(t));
  await page.locator('#blocks').waitFor();
  assert.equal(await page.locator('#nav-network').isVisible(), false);
  await page.unrouteAll({ behavior: 'wait' });
  assert.deepEqual(b.problems, []);
});
