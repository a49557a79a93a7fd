// Drives an `fsync-trace --html` page in Debian's headless Chromium and checks it against what
// the report says. Usage: node page.test.mjs PAGE.html EXPECT.json SCREENSHOT_DIR
//
// EXPECT.json: {"crash": [{"t": S, "bytes": N, "files": [[path, bytes, "lo..hi" or ""]], "entries": [[dir,
// entry, op]]}], "peak": {"t": S, "bytes": N, "files": [...], "entries": [...]},
// "max_load_ms": N (optional)}. Prints one JSON line of results; exits 1 on any failure.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readFileSync } from 'node:fs';

const [page_path, expect_path, shots] = process.argv.slice(2);
if (!page_path || !expect_path || !shots) {
  console.error('usage: node page.test.mjs PAGE.html EXPECT.json SCREENSHOT_DIR');
  process.exit(2);
}
const expected = JSON.parse(readFileSync(expect_path, 'utf8'));
const failures = [];
const check = (ok, what) => { if (!ok) failures.push(what); };
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

const profile = mkdtempSync(join(tmpdir(), 'fsync-trace-chromium-'));
// A fresh profile each run (playwright passes it as --user-data-dir).
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1400, height: 800 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const results = { load_ms: {} };
try {
  for (const scheme of ['light', 'dark']) {
    const page = await context.newPage();
    await page.emulateMedia({ colorScheme: scheme });
    const errors = [];
    const requests = [];
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') errors.push(m.text()); });
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('request', (r) => { if (!r.url().startsWith('file:')) requests.push(r.url()); });
    const start = Date.now();
    await page.goto('file://' + resolve(page_path));
    await page.waitForSelector('body[data-ready="1"]', { timeout: 20000 });
    results.load_ms[scheme] = Date.now() - start;
    if (expected.max_load_ms) check(results.load_ms[scheme] <= expected.max_load_ms, `${scheme}: interactive after ${results.load_ms[scheme]} ms`);

    const state = () => page.evaluate(() => ({
      t: Number(document.getElementById('crash-time').dataset.t),
      bytes: Number(document.getElementById('crash-total').dataset.bytes),
      total: document.getElementById('crash-total').textContent,
      files: [...document.querySelectorAll('#crash-files tbody tr')].map((r) => [r.dataset.path, Number(r.dataset.bytes), r.dataset.extent]),
      entries: [...document.querySelectorAll('#crash-entries tbody tr')].map((r) => [r.dataset.dir, r.dataset.entry, r.dataset.op]),
    }));
    const expectState = (s, want, what) => {
      check(s.bytes === want.bytes, `${what}: ${s.bytes} bytes, expected ${want.bytes} (${s.total})`);
      check(same(s.files, want.files), `${what}: files ${JSON.stringify(s.files)}, expected ${JSON.stringify(want.files)}`);
      check(same(s.entries, want.entries), `${what}: entries ${JSON.stringify(s.entries)}, expected ${JSON.stringify(want.entries)}`);
    };
    // The crash control, moved the way a user drags it.
    for (const c of expected.crash || []) {
      await page.locator('#crash-slider').evaluate((el, t) => {
        el.value = String(t);
        el.dispatchEvent(new Event('input', { bubbles: true }));
      }, c.t);
      const s = await state();
      check(Math.abs(s.t - c.t) < 1e-9, `${scheme}: slider at ${s.t}, expected ${c.t}`);
      expectState(s, c, `${scheme}: crash at ${c.t}`);
      if (scheme === 'light') await page.screenshot({ path: join(shots, `crash-${c.t}.png`) });
    }
    // The worst moment.
    if (expected.peak) {
      await page.click('#worst');
      const s = await state();
      check(Math.abs(s.t - expected.peak.t) < 1e-9, `${scheme}: worst moment at ${s.t}, expected ${expected.peak.t}`);
      expectState(s, expected.peak, `${scheme}: worst moment`);
      await page.click('#zoom-in');
      await page.click('#zoom-in');
    }
    // Step moves forward to something that happened; the filter narrows the lanes.
    const before = (await state()).t;
    await page.click('#step');
    const after = (await state()).t;
    check(after > before || after === before, `${scheme}: step went back from ${before} to ${after}`);
    await page.screenshot({ path: join(shots, `page-${scheme}.png`) });
    if (expected.filter) {
      await page.fill('#filter', expected.filter.query);
      const count = await page.textContent('#lane-count');
      check(count.startsWith(`${expected.filter.lanes} of `), `${scheme}: filter ${expected.filter.query}: ${count}`);
      await page.fill('#filter', '');
    }
    await page.click('#play');
    await page.waitForTimeout(300);
    await page.click('#play');
    check(errors.length === 0, `${scheme}: console errors: ${errors.join(' | ')}`);
    check(requests.length === 0, `${scheme}: fetched ${requests.join(', ')}`);
    await page.close();
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
results.failures = failures;
console.log(JSON.stringify(results));
process.exit(failures.length ? 1 : 0);
