// Shared by the browser tests: real `cairn` processes on port 0 (their RPC URLs read from
// their output, as tests/common/process.rs does), headless Debian chromium through
// playwright-core, deadlines instead of sleeps, screenshots as artifacts.

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TARGET = process.env.CARGO_TARGET_DIR ? resolve(process.env.CARGO_TARGET_DIR) : join(ROOT, 'target');

/** The release binary under test (`CAIRN_BIN` runs another). */
export const CAIRN = process.env.CAIRN_BIN ?? join(TARGET, 'release', 'cairn');
/** Where screenshots go. */
export const ARTIFACTS = process.env.CAIRN_BROWSER_ARTIFACTS ?? join(TARGET, 'browser-artifacts');
/** The browser: Debian's chromium (never a downloaded one). */
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** Waits for `probe()` to return something other than undefined/null/false, or fails after `ms`. */
export async function until(what, ms, probe) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== null && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every process started here: whatever a failed test left running is killed at exit. */
const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** A child process with its output kept line by line (stdout and stderr). */
class Proc {
  constructor(args, opts = {}) {
    if (!existsSync(CAIRN)) throw new Error(`no cairn binary at ${CAIRN}: run cargo build --release --bins first (or set CARGO_TARGET_DIR / CAIRN_BIN)`);
    this.lines = [];
    this.waiters = [];
    const env = { ...process.env, NO_COLOR: '1' };
    delete env.RUST_LOG; // the node's default filter: the lines read here are at info
    this.child = spawn(CAIRN, args, { stdio: ['pipe', 'pipe', 'pipe'], env, ...opts });
    running.add(this.child);
    this.exited = new Promise((r) => this.child.on('exit', (code, signal) => {
      running.delete(this.child);
      r({ code, signal });
    }));
    for (const stream of [this.child.stdout, this.child.stderr]) {
      createInterface({ input: stream }).on('line', (l) => {
        if (process.env.CAIRN_TEST_LOGS) console.error(`[${this.child.pid}] ${l}`);
        this.lines.push(l);
        for (const w of this.waiters) w();
      });
    }
  }

  /** Waits for an output line matching `re` (after the first `after` lines); returns its match. */
  line(re, ms, after = 0) {
    return until(`a line matching ${re} from ${CAIRN} ${this.child.spawnargs.slice(1, 2)}`, ms, () => {
      for (const l of this.lines.slice(after)) {
        const m = l.match(re);
        if (m) return m;
      }
      return null;
    });
  }

  /** Stops it: SIGINT (a clean shutdown), SIGKILL if it has not exited within 20 s. */
  async stop() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGINT');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 20000);
    await this.exited;
    clearTimeout(t);
  }
}

/** A `cairn node` on port 0 in a fresh data dir; `url` is its RPC. */
export async function startNode(extra = []) {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-browser-'));
  const p = new Proc(['node', '--no-mdns', '--rpc-port', '0', '--p2p-port', '0', '--data-dir', join(dir, 'data'), ...extra]);
  const [, url] = await p.line(/RPC listening on (http:\/\/\S+)/, 30000).catch(async (e) => {
    await p.stop();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  });
  const [, peer] = await p.line(/peers connect with --peers (\S+)/, 1000).catch(() => [null, null]);
  return {
    url,
    peer,
    proc: p,
    async stop() {
      await p.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A `cairn devnet` (its stdin open for commands); `urls()` reads the RPC URLs from its address table. */
export async function startDevnet(args) {
  const p = new Proc(['devnet', ...args]);
  return {
    proc: p,
    send(command) {
      p.child.stdin.write(`${command}\n`);
    },
    seen: () => p.lines.length,
    line: (re, ms, after) => p.line(re, ms, after),
    async urls(n) {
      return until(`${n} nodes in the devnet's address table`, 60000, () => {
        const nodes = new Map();
        for (const l of p.lines) {
          const m = l.match(/^\s*(\d+)\s+([0-9a-f]{64})\s+\S+\s+(http:\/\/127\.0\.0\.1:\d+)\s*$/);
          if (m) nodes.set(Number(m[1]), m[3]);
        }
        return nodes.size >= n ? [...Array(n).keys()].map((i) => nodes.get(i + 1)) : null;
      });
    },
    async stop() {
      if (p.child.exitCode !== null || p.child.signalCode !== null) return;
      p.child.stdin.end('quit\n');
      const t = setTimeout(() => p.child.kill('SIGKILL'), 30000);
      await p.exited;
      clearTimeout(t);
    },
  };
}

/** JSON from a node's RPC. */
export async function rpc(url, path, body) {
  const r = await fetch(`${url}${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const v = await r.json().catch(() => null);
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${JSON.stringify(v)}`);
  return v;
}

/** Farms `count` blocks now on the node at `url`. */
export const farm = (url, count, farmer = 'ab'.repeat(32)) => rpc(url, '/farm/blocks', { count, farmer });

/** Sends a transfer with the CLI (it signs with the devnet's published dev key); returns the txid. */
export function send(url, to, amount, key = 'dev:0') {
  return execFileSync(CAIRN, ['send', '--rpc', url, '--key', key, '--to', to, '--amount', String(amount)], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } }).trim().split('\n').pop().trim();
}

/**
 * Headless chromium in a fresh profile. Every page it opens records console errors, page
 * errors and CSP violations in `problems` (a test ends by asserting there are none).
 */
export async function browser() {
  const profile = mkdtempSync(join(tmpdir(), 'cairn-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
  });
  const problems = [];
  context.on('page', (page) => watch(page, problems));
  for (const page of context.pages()) watch(page, problems);
  return {
    context,
    problems,
    async page() {
      const page = context.pages()[0] ?? (await context.newPage());
      return page;
    },
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

function watch(page, problems) {
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // 4xx answers are the page's business (a search probing /blocks then /txs, an endpoint an
    // older node lacks); script errors, CSP refusals and 5xx are not.
    if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) problems.push(`console: ${m.text()} (${m.location()?.url ?? ''})`);
  });
}

/** Saves a full-page screenshot as `ARTIFACTS/name.png`. */
export async function shot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** Text of the first element matching `selector`, trimmed. */
export const text = async (page, selector) => (await page.locator(selector).first().textContent())?.trim();

/** Waits until the text of `selector` satisfies `ok` (a string to equal or a predicate). */
export async function waitText(page, selector, ok, ms = 15000) {
  const test = typeof ok === 'function' ? ok : (t) => t === ok;
  return until(`${selector} text ${typeof ok === 'function' ? 'to match' : `= ${ok}`}`, ms, async () => {
    const t = await page.locator(selector).first().textContent({ timeout: 1000 }).catch(() => null);
    return t !== null && test(t.trim()) ? t.trim() : null;
  });
}
