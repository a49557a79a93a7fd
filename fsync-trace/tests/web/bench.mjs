// Benchmark (not a test): the --html page with a synthetic 100,000-event timeline (10,000
// files x 5 dirty intervals + 5 syncs, one directory with 2,000 entry changes), in headless
// Chromium. Usage: node bench.mjs PAGE.html (any page fsync-trace wrote: its assets are used).
// Prints the time from navigation to interactive, a crash-control move and the worst moment.
import { chromium } from 'playwright-core';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const page_path = process.argv[2];
if (!page_path) {
  console.error('usage: node bench.mjs PAGE.html');
  process.exit(2);
}
const FILES = 10000;
const SPANS = 5;
const files = [];
let events = 0;
for (let i = 0; i < FILES; i++) {
  const dirty = [];
  const syncs = [];
  for (let k = 0; k < SPANS; k++) {
    const from = k * 2 + (i % 997) / 1000;
    const at = from + 0.5 + (i % 13) / 100;
    const bytes = 4096 * (1 + ((i * 7 + k) % 50));
    const last = k === SPANS - 1 && i % 10 === 0;
    dirty.push({ from_s: from, durable_s: last ? null : at + 0.002, covered_from_s: last ? null : at, writes: 1 + (bytes >> 12), bytes, by: 100, readings: [] });
    if (!last) syncs.push({ at_s: at, op: 'fdatasync', latency_us: 2000, errno: null });
    events += 2;
  }
  files.push({ path: `/data/db/shard-${String(i).padStart(5, '0')}.dat`, dev: '8:1', ino: i + 12, dirty, syncs });
}
const entries = [];
for (let j = 0; j < 2000; j++) entries.push({ at_s: j * 0.005, entry: `shard-${String(j).padStart(5, '0')}.dat`, op: 'create', durable_s: j % 3 ? j * 0.005 + 0.1 : null });
const data = {
  started: '2026-01-01T00:00:00.000000Z', tier: 'synthetic', duration_s: SPANS * 2 + 1,
  timeline: { limit: 200000, items: events + entries.length, cut_items: 0, cut_from_s: null, files, dirs: [{ path: '/data/db', dev: '8:1', ino: 2, entries, syncs: [] }] },
  exposure_peak: { offset_s: 8.5, lost_bytes: 0, exact_bytes: false, files: [], entries: [] },
  findings: [],
};
const template = readFileSync(page_path, 'utf8');
const html = template.replace(/(<script type="application\/json" id="trace-data">)[\s\S]*?(<\/script>)/, (_, a, b) => a + JSON.stringify(data).replace(/<\//g, '<\\/') + b);
const dir = mkdtempSync(join(tmpdir(), 'fsync-trace-bench-'));
const file = join(dir, 'big.html');
writeFileSync(file, html);
const context = await chromium.launchPersistentContext(join(dir, 'profile'), {
  executablePath: '/usr/bin/chromium', headless: true, viewport: { width: 1400, height: 800 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const results = { events: events + entries.length, files: FILES, html_mib: +(html.length / 1048576).toFixed(1), runs: [] };
try {
  for (let run = 0; run < 3; run++) {
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    const t0 = Date.now();
    await page.goto('file://' + file);
    await page.waitForSelector('body[data-ready="1"]', { timeout: 60000 });
    const ready = Date.now() - t0;
    const move = await page.evaluate(() => {
      const s = document.getElementById('crash-slider');
      const t = performance.now();
      s.value = '5.5';
      s.dispatchEvent(new Event('input', { bubbles: true }));
      return performance.now() - t;
    });
    const worst = await page.evaluate(() => {
      const t = performance.now();
      document.getElementById('worst').click();
      return performance.now() - t;
    });
    const filter = await page.evaluate(() => {
      const f = document.getElementById('filter');
      const t = performance.now();
      f.value = 'shard-0001';
      f.dispatchEvent(new Event('input', { bubbles: true }));
      return performance.now() - t;
    });
    const lost = await page.evaluate(() => document.getElementById('crash-total').textContent);
    results.runs.push({ ready_ms: ready, crash_move_ms: +move.toFixed(1), worst_ms: +worst.toFixed(1), filter_ms: +filter.toFixed(1), errors, lost });
    if (run === 0) await page.screenshot({ path: join(process.cwd(), '../../../target/html/bench-100k.png') });
    await page.close();
  }
} finally {
  await context.close();
  rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify(results, null, 1));
