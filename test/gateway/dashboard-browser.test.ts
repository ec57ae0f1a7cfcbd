// The live dashboard in a real browser: Debian's Chromium driven by playwright-core, against a
// gateway pair carrying a compressible transfer. The page must load with no console error, its
// charts must move between two samples, and a screenshot is written (docs/dashboard.png with
// LONGHAUL_UPDATE_SCREENSHOT=1).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { test } from 'node:test';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startPair, stopChild } from './helpers.ts';

const CHROMIUM = process.env.LONGHAUL_CHROMIUM ?? '/usr/bin/chromium';
const skip = existsSync(CHROMIUM)
  ? false
  : `no Chromium at ${CHROMIUM} (Debian: apt-get install chromium, as .ci/run does; or set LONGHAUL_CHROMIUM): the dashboard's browser test needs a real browser`;
// The published screenshot is refreshed on request only; a plain test run leaves docs/ untouched.
const SCREENSHOT =
  process.env.LONGHAUL_UPDATE_SCREENSHOT === '1'
    ? fileURLToPath(new URL('../../docs/dashboard.png', import.meta.url))
    : join(tmpdir(), `longhaul-dashboard-${process.pid}.png`);

/** A sink that counts what it receives. */
async function startSink(): Promise<{ server: Server; port: number; received: () => number; close(): Promise<void> }> {
  let received = 0;
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('data', (d: Buffer) => {
      received += d.length;
    });
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    port: (server.address() as { port: number }).port,
    received: () => received,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Log-like text (compresses ~3x with lz4), 64 KiB a chunk, paced: ~6 MB/s until stopped. */
function pacedSender(port: number): { stop(): void; sent: () => number } {
  const lines: string[] = [];
  for (let i = 0; lines.join('').length < 64 * 1024; i++) {
    lines.push(
      `{"seq":${i},"host":"db-${i % 7}","op":"replicate","block":${(i * 7919) % 65_536},"id":"${randomBytes(4).toString('hex')}"}\n`,
    );
  }
  const chunk = Buffer.from(lines.join('')).subarray(0, 64 * 1024);
  const s = connect({ port, host: '127.0.0.1' });
  s.on('error', () => {});
  let sent = 0;
  let stopped = false;
  const timer = setInterval(() => {
    if (stopped || s.writableLength > 1024 * 1024) return;
    s.write(chunk);
    sent += chunk.length;
  }, 10);
  return {
    sent: () => sent,
    stop() {
      stopped = true;
      clearInterval(timer);
      s.destroy();
    },
  };
}

interface PageSample {
  samples: number;
  charts: Record<string, { points: number; lastTime: number; last: Array<number | null> }>;
  figures: Record<string, string>;
  tunnelRows: string[][];
}

// Runs in the page: what the dashboard's charts hold now, its figures and its tunnel table.
function readPage(): PageSample {
  type Chart = { data: Array<Array<number | null>> };
  const d = (window as unknown as { longhaulDashboard: { samples: number; charts: Map<string, Chart> } }).longhaulDashboard;
  const charts: PageSample['charts'] = {};
  for (const [id, c] of d.charts) {
    const xs = c.data[0]!;
    charts[id] = { points: xs.length, lastTime: xs[xs.length - 1] ?? 0, last: c.data.slice(1).map((col) => col[col.length - 1] ?? null) };
  }
  const figures: Record<string, string> = {};
  for (const f of document.querySelectorAll('[data-peer="b"] .figures > div')) {
    figures[f.querySelector('.k')!.textContent!] = f.querySelector('.v')!.textContent!;
  }
  const tunnelRows = [...document.querySelectorAll('#tunnels tbody tr')].map((tr) =>
    [...tr.querySelectorAll('td')].map((td) => td.textContent!),
  );
  return { samples: d.samples, charts, figures, tunnelRows };
}

test('dashboard in Chromium: loads without console errors, its charts move during a transfer, screenshot written', {
  skip,
  timeout: 150_000,
}, async () => {
  const { chromium } = await import('playwright-core');
  const sink = await startSink();
  const token = randomBytes(16).toString('hex');
  const pair = await startPair({
    target: `127.0.0.1:${sink.port}`,
    allow: ['127.0.0.1/32'],
    compression: 'lz4',
    aConfig: { control: '127.0.0.1:0', controlToken: token },
  });
  const sender = pacedSender(pair.port);
  const server = await chromium.launchServer({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const browserProcess = server.process();
  try {
    const browser = await chromium.connect(server.wsEndpoint());
    // The token as a Basic password: how an operator's browser sends it (the server asks with a Basic challenge).
    const context = await browser.newContext({
      httpCredentials: { username: 'ops', password: token },
      viewport: { width: 1280, height: 1400 },
    });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`));
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`);
    });

    const url = `http://127.0.0.1:${pair.a.control!.address.port}/`;
    const res = await page.goto(url);
    assert.equal(res?.status(), 200);
    // Data is flowing once the link chart's send rate is above zero on a few samples.
    await page.waitForFunction(
      () => {
        type C = { data: number[][] };
        const d = (window as unknown as { longhaulDashboard?: { samples: number; charts: Map<string, C> } }).longhaulDashboard;
        const link = d?.charts.get('b:link');
        return d !== undefined && d.samples >= 3 && link !== undefined && (link.data[1]!.at(-1) ?? 0) > 0;
      },
      null,
      { timeout: 30_000, polling: 200 },
    );
    const first = await page.evaluate(readPage);
    const canvasBefore = await page.locator('[data-peer="b"] .chart canvas').first().screenshot();
    await page.waitForFunction(
      (n) => (window as unknown as { longhaulDashboard: { samples: number } }).longhaulDashboard.samples >= n,
      first.samples + 3,
      { timeout: 15_000, polling: 200 },
    );
    const second = await page.evaluate(readPage);
    const canvasAfter = await page.locator('[data-peer="b"] .chart canvas').first().screenshot();

    // The charts move: every chart gained points and its time axis advanced, and the figures changed.
    for (const id of ['b:link', 'b:raw-wire', 'b:ratio', 'b:rtt', 'b:loss', 'connections']) {
      const a = first.charts[id];
      const b = second.charts[id];
      assert.ok(a && b, `chart ${id} exists`);
      assert.ok(b.points > a.points, `chart ${id}: ${a.points} -> ${b.points} points`);
      assert.ok(b.lastTime > a.lastTime, `chart ${id}: time ${a.lastTime} -> ${b.lastTime}`);
    }
    assert.notDeepEqual(second.charts['b:link']!.last, first.charts['b:link']!.last, 'link figures changed between two samples');
    assert.ok(!canvasBefore.equals(canvasAfter), 'the link chart was redrawn with new data');
    // What is drawn is the transfer: raw above wire (log text compresses), RTT measured, one open connection.
    const [sendBps, bandwidthBps] = second.charts['b:link']!.last as number[];
    assert.ok(sendBps! > 1e6 && bandwidthBps! > 0, `send ${sendBps} bit/s, bandwidth ${bandwidthBps}`);
    const [rawOut, wireOut] = second.charts['b:raw-wire']!.last as number[];
    assert.ok(rawOut! > 1.5 * wireOut!, `raw out ${rawOut} vs wire out ${wireOut}`);
    assert.ok((second.charts['b:ratio']!.last[0] ?? 0) > 1.5, `compression ratio ${second.charts['b:ratio']!.last[0]}`);
    assert.ok((second.charts['b:rtt']!.last[0] ?? 0) > 0, 'RTT charted');
    assert.equal(second.charts.connections!.last[0], 1, 'the tunnel has one open connection');
    assert.equal(second.tunnelRows.length, 1);
    assert.equal(second.tunnelRows[0]![4], '1', 'tunnel table: open connections');
    assert.match(second.figures['send rate / estimated bandwidth'] ?? '', /bit\/s .*\/ .*bit\/s/);
    assert.match(second.figures['raw -> wire, out'] ?? '', /\d\.\d\dx$/);

    // A longer history for the picture in the docs.
    await page.waitForFunction(
      () => (window as unknown as { longhaulDashboard: { samples: number } }).longhaulDashboard.samples >= 15,
      null,
      { timeout: 30_000, polling: 500 },
    );
    assert.deepEqual(problems, [], 'no console errors, failed requests or error responses');
    // Only a page that passed becomes the picture in the docs.
    writeFileSync(SCREENSHOT, await page.screenshot({ fullPage: true }));
    await context.close();
    await browser.close();
  } finally {
    sender.stop();
    await server.close().catch(() => {});
    // Chromium is ours: if closing left it running, it is signalled (its own PID) until it is gone.
    await stopChild(browserProcess);
    await pair.stop();
    await sink.close();
  }
  assert.ok(sink.received() > 10 * 1024 * 1024, `the transfer reached the target (${sink.received()} bytes)`);
});
