// fsync-trace's timeline page: one lane per file and directory, drawn on a canvas (only the
// lanes and the time range on screen), and the crash control: what a power cut at an instant
// loses, computed from the same timeline as the report's exposure_peak (see whatif.rs).
(function () {
  'use strict';
  const data = JSON.parse(document.getElementById('trace-data').textContent);
  const tl = data.timeline || { files: [], dirs: [], cut_items: 0, limit: 0 };
  const $ = (id) => document.getElementById(id);
  const ROW = 22;
  const LABEL = 280;
  const AXIS = 24;

  // ---- the model ------------------------------------------------------------------------
  const until = (d) => d.durable_s ?? d.removed_s ?? Infinity;
  const entryUntil = (e) => e.durable_s ?? e.cancelled_s ?? Infinity;
  let end = data.duration_s || 0;
  const times = [];
  const lanes = [];
  for (const f of tl.files) {
    let exposure = 0;
    for (const d of f.dirty) {
      const last = d.readings.length ? d.readings[d.readings.length - 1][1] : 0;
      exposure = Math.max(exposure, d.bytes ?? last);
      times.push(d.from_s);
      if (d.covered_from_s != null) times.push(d.covered_from_s);
      if (until(d) !== Infinity) times.push(until(d));
      for (const r of d.readings) times.push(r[0]);
    }
    for (const s of f.syncs) times.push(s.at_s, s.at_s + s.latency_us / 1e6);
    lanes.push({ kind: 'file', path: f.path, dirty: f.dirty, syncs: f.syncs, entries: [], exposure, findings: [] });
  }
  for (const dir of tl.dirs) {
    for (const e of dir.entries) {
      times.push(e.at_s);
      if (entryUntil(e) !== Infinity) times.push(entryUntil(e));
    }
    for (const s of dir.syncs) times.push(s.at_s, s.at_s + s.latency_us / 1e6);
    const pending = dir.entries.filter((e) => entryUntil(e) === Infinity).length;
    lanes.push({ kind: 'dir', path: dir.path, dirty: [], syncs: dir.syncs, entries: dir.entries, exposure: pending, findings: [] });
  }
  const byPath = new Map(lanes.map((l) => [l.path, l]));
  for (const f of data.findings || []) {
    const lane = byPath.get(f.path);
    if (lane && f.at_s != null) {
      lane.findings.push(f);
      times.push(f.at_s);
    }
  }
  times.sort((a, b) => a - b);
  const steps = times.filter((t, i) => i === 0 || t !== times[i - 1]);
  if (steps.length) end = Math.max(end, steps[steps.length - 1]);
  if (!(end > 0)) end = 1;
  // Most exposed first: files by their largest dirty interval, then directories by entries
  // never made durable; then by path.
  lanes.sort((a, b) => (a.kind === b.kind ? 0 : a.kind === 'file' ? -1 : 1) || b.exposure - a.exposure || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));

  // The hull of extent `a` (undefined: none) and `e` (null: unknown) of `bytes` bytes.
  function unite(a, e, bytes) {
    if (bytes === 0 && e == null) return a;
    if (a === null || e == null) return null;
    if (a === undefined) return { lo: e.lo, hi: e.hi };
    return { lo: Math.min(a.lo, e.lo), hi: Math.max(a.hi, e.hi) };
  }

  // What a power cut at t loses (the rules of whatif.rs).
  function crashAt(t) {
    const files = [];
    const entries = [];
    let bytes = 0;
    let exact = true;
    for (const l of lanes) {
      let since = null;
      let b = 0;
      let ex = true;
      // Dirty extent: undefined while nothing is known written, null once unknown.
      let ext;
      for (const d of l.dirty) {
        if (!(d.from_s <= t && t < until(d))) continue;
        since = since === null ? d.from_s : Math.min(since, d.from_s);
        if (d.covered_from_s != null && d.bytes != null && d.covered_from_s <= t) {
          b += d.bytes;
          ext = unite(ext, d.dirty_extent, d.bytes);
        } else {
          let v = 0;
          let at = null;
          let i = -1;
          for (const r of d.readings) {
            if (r[0] <= t) { v = r[1]; at = r[0]; i += 1; } else break;
          }
          b += v;
          ex = ex && at === t;
          if (i >= 0) ext = unite(ext, (d.reading_extents || [])[i] ?? null, v);
        }
      }
      if (since !== null) {
        files.push({ path: l.path, bytes: b, exact: ex, since, extent: ext });
        bytes += b;
        exact = exact && ex;
      }
      if (l.entries.length) {
        const last = new Map();
        for (const e of l.entries) if (e.at_s <= t && t < entryUntil(e)) last.set(e.entry, e.op);
        for (const [entry, op] of [...last].sort((x, y) => (x[0] < y[0] ? -1 : 1))) entries.push({ dir: l.path, entry, op });
      }
    }
    files.sort((a, b) => b.bytes - a.bytes || (a.path < b.path ? -1 : 1));
    return { files, entries, bytes, exact };
  }

  // ---- the view -------------------------------------------------------------------------
  // The whole run, with a margin so what happens at the very end shows.
  const fit = () => ({ t0: 0, t1: end * 1.03 });
  let view = fit();
  let crashT = 0;
  let shown = lanes;
  let playing = null;
  const canvas = $('canvas');
  const scroller = $('scroller');
  const ctx = canvas.getContext('2d');
  let colors = {};

  function readColors() {
    const cs = getComputedStyle(document.documentElement);
    for (const k of ['bg', 'fg', 'muted', 'row', 'line', 'dirty', 'durable', 'sync', 'sync-err', 'entry', 'finding', 'cursor']) {
      colors[k] = cs.getPropertyValue('--' + k).trim();
    }
  }

  const xOf = (t, w) => LABEL + ((t - view.t0) / (view.t1 - view.t0)) * (w - LABEL);
  const tOf = (x, w) => view.t0 + ((x - LABEL) / (w - LABEL)) * (view.t1 - view.t0);

  function human(b) {
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = b;
    let i = 0;
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return i === 0 ? b + ' B' : v.toFixed(1) + ' ' + u[i];
  }

  function applyFilter() {
    const q = $('filter').value.trim().toLowerCase();
    const n = Number($('topn').value);
    let l = q ? lanes.filter((x) => x.path.toLowerCase().includes(q)) : lanes;
    const matching = l.length;
    if (n > 0) l = l.slice(0, n);
    shown = l;
    $('lane-count').textContent = `${shown.length} of ${matching} lane(s)` + (q ? ' matching' : '') + ` (${lanes.length} in all)`;
    $('spacer').style.height = Math.max(0, shown.length * ROW + AXIS - scroller.clientHeight) + 'px';
    draw();
  }

  function tickStep(span, px) {
    const raw = span / Math.max(1, px / 90);
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
    return 10 * p;
  }

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    const w = scroller.clientWidth;
    const h = scroller.clientHeight;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
      canvas.style.width = w + 'px';
      canvas.style.height = h + 'px';
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = colors.bg;
    ctx.fillRect(0, 0, w, h);
    ctx.font = '12px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    const first = Math.floor(scroller.scrollTop / ROW);
    const rows = Math.ceil((h - AXIS) / ROW) + 1;
    const tEnd = end;
    for (let i = first; i < Math.min(shown.length, first + rows); i++) {
      const l = shown[i];
      const y = AXIS + (i - first) * ROW - (scroller.scrollTop % ROW);
      if (i % 2 === 0) { ctx.fillStyle = colors.row; ctx.fillRect(0, y, w, ROW); }
      ctx.save();
      ctx.beginPath();
      ctx.rect(LABEL, y, w - LABEL, ROW);
      ctx.clip();
      const mid = y + ROW / 2;
      if (l.kind === 'file' && l.dirty.length) {
        // Durable from the first durable point on, dirty blocks over it.
        const firstDurable = l.dirty.find((d) => d.durable_s != null);
        if (firstDurable) {
          ctx.fillStyle = colors.durable;
          ctx.globalAlpha = 0.35;
          const x0 = xOf(firstDurable.durable_s, w);
          ctx.fillRect(x0, y + 6, xOf(tEnd, w) - x0, ROW - 12);
          ctx.globalAlpha = 1;
        }
        ctx.fillStyle = colors.dirty;
        for (const d of l.dirty) {
          const a = d.from_s;
          const b = Math.min(until(d), tEnd);
          if (b < view.t0 || a > view.t1) continue;
          const x0 = xOf(a, w);
          ctx.fillRect(x0, y + 4, Math.max(2, xOf(b, w) - x0), ROW - 8);
        }
      }
      for (const e of l.entries) {
        const a = e.at_s;
        const b = Math.min(entryUntil(e), tEnd);
        if (b < view.t0 || a > view.t1) continue;
        const x0 = xOf(a, w);
        ctx.fillStyle = colors.entry;
        ctx.globalAlpha = 0.45;
        ctx.fillRect(x0, mid - 2, Math.max(1, xOf(b, w) - x0), 4);
        ctx.globalAlpha = 1;
        if (e.durable_s != null) {
          ctx.fillStyle = colors.durable;
          ctx.fillRect(xOf(e.durable_s, w) - 1, y + 4, 2, ROW - 8);
        }
        ctx.fillStyle = colors.entry;
        ctx.beginPath();
        ctx.moveTo(x0, mid - 6); ctx.lineTo(x0 + 5, mid); ctx.lineTo(x0, mid + 6); ctx.lineTo(x0 - 5, mid);
        ctx.fill();
      }
      for (const s of l.syncs) {
        const a = s.at_s;
        const b = a + s.latency_us / 1e6;
        if (b < view.t0 || a > view.t1) continue;
        const x0 = xOf(a, w);
        ctx.fillStyle = s.errno != null ? colors['sync-err'] : colors.sync;
        ctx.fillRect(x0, y + 2, Math.max(2, xOf(b, w) - x0), ROW - 4);
      }
      ctx.fillStyle = colors.finding;
      for (const f of l.findings) {
        const x0 = xOf(f.at_s, w);
        ctx.beginPath();
        ctx.moveTo(x0, y + 1); ctx.lineTo(x0 + 5, y + 9); ctx.lineTo(x0 - 5, y + 9);
        ctx.fill();
      }
      ctx.restore();
      // The label, cut from the left so the file name shows.
      ctx.fillStyle = colors.fg;
      let label = l.path + (l.kind === 'dir' ? '/' : '');
      while (label.length > 4 && ctx.measureText(label).width > LABEL - 12) label = '…' + label.slice(2);
      ctx.fillText(label, 6, mid);
    }
    // The axis.
    ctx.fillStyle = colors.bg;
    ctx.fillRect(0, 0, w, AXIS);
    ctx.strokeStyle = colors.line;
    ctx.beginPath(); ctx.moveTo(0, AXIS - 0.5); ctx.lineTo(w, AXIS - 0.5); ctx.stroke();
    const step = tickStep(view.t1 - view.t0, w - LABEL);
    ctx.fillStyle = colors.muted;
    for (let t = Math.ceil(view.t0 / step) * step; t <= view.t1; t += step) {
      const x = xOf(t, w);
      ctx.fillRect(x, AXIS - 6, 1, 6);
      ctx.fillText(t.toFixed(step < 0.001 ? 6 : step < 1 ? 3 : 1) + ' s', x + 3, AXIS / 2 - 2);
    }
    ctx.fillText('seconds from the start', 6, AXIS / 2 - 2);
    // The power cut.
    const cx = xOf(crashT, w);
    if (cx >= LABEL) {
      ctx.fillStyle = colors.cursor;
      ctx.fillRect(cx - 1, 0, 2, h);
    }
  }

  function setCrash(t, keepView) {
    crashT = Math.min(Math.max(0, t), end);
    $('crash-slider').value = String(crashT);
    if (!keepView && (crashT < view.t0 || crashT > view.t1)) {
      const span = view.t1 - view.t0;
      view.t0 = Math.max(0, crashT - span / 2);
      view.t1 = view.t0 + span;
    }
    const c = crashAt(crashT);
    $('crash-time').textContent = crashT.toFixed(6).replace(/0{1,3}$/, '') + ' s';
    $('crash-time').dataset.t = String(crashT);
    const total = $('crash-total');
    total.dataset.bytes = String(c.bytes);
    total.dataset.files = String(c.files.length);
    total.dataset.entries = String(c.entries.length);
    total.textContent = c.files.length === 0 && c.entries.length === 0
      ? 'Nothing would be lost.'
      : `loses ${c.files.length} file(s), ${human(c.bytes)}${c.exact ? '' : ' or more'}, ${c.entries.length} directory entr${c.entries.length === 1 ? 'y' : 'ies'}`;
    const fb = $('crash-files').tBodies[0];
    fb.replaceChildren(...c.files.slice(0, 200).map((f) => {
      const tr = document.createElement('tr');
      tr.dataset.path = f.path;
      tr.dataset.bytes = String(f.bytes);
      tr.dataset.extent = f.extent ? `${f.extent.lo}..${f.extent.hi}` : '';
      tr.innerHTML = '<td class="num"></td><td class="path"></td><td></td><td></td>';
      tr.cells[0].textContent = (f.exact ? '' : '≥ ') + human(f.bytes);
      tr.cells[1].textContent = f.path;
      tr.cells[2].textContent = f.extent ? `${human(f.extent.hi - f.extent.lo)} at ${f.extent.lo}..${f.extent.hi}` : (f.extent === null ? 'unknown' : '-');
      tr.cells[3].textContent = f.since.toFixed(3) + ' s';
      return tr;
    }));
    const eb = $('crash-entries').tBodies[0];
    eb.replaceChildren(...c.entries.slice(0, 200).map((e) => {
      const tr = document.createElement('tr');
      tr.dataset.dir = e.dir;
      tr.dataset.entry = e.entry;
      tr.dataset.op = e.op;
      tr.innerHTML = '<td></td><td class="path"></td>';
      tr.cells[0].textContent = e.op;
      tr.cells[1].textContent = e.dir + '/' + e.entry;
      return tr;
    }));
    const more = [];
    if (c.files.length > 200) more.push(`${c.files.length - 200} more file(s)`);
    if (c.entries.length > 200) more.push(`${c.entries.length - 200} more entr(ies)`);
    $('notes').textContent = (more.length ? 'Not listed: ' + more.join(', ') + '. ' : '') + notes;
    draw();
  }

  function zoom(factor) {
    const span = Math.min(end * 1.03, Math.max(1e-6, (view.t1 - view.t0) * factor));
    view.t0 = Math.max(0, Math.min(end * 1.03 - span, crashT - span / 2));
    view.t1 = view.t0 + span;
    draw();
  }

  function nextStep(t) {
    let lo = 0;
    let hi = steps.length;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      if (steps[m] <= t) lo = m + 1; else hi = m;
    }
    return lo < steps.length ? steps[lo] : end;
  }

  function stopPlay() {
    if (playing) cancelAnimationFrame(playing.frame);
    playing = null;
    $('play').textContent = 'Play';
  }

  function play() {
    if (playing) return stopPlay();
    if (crashT >= end) setCrash(0);
    const span = view.t1 - view.t0;
    playing = { last: performance.now(), frame: 0 };
    $('play').textContent = 'Pause';
    const tick = (now) => {
      if (!playing) return;
      // The visible range in 8 s.
      const t = crashT + ((now - playing.last) / 8000) * span;
      playing.last = now;
      if (t >= end) { setCrash(end); return stopPlay(); }
      if (t > view.t1) { view.t0 = t; view.t1 = t + span; }
      setCrash(t, true);
      playing.frame = requestAnimationFrame(tick);
    };
    playing.frame = requestAnimationFrame(tick);
  }

  // ---- wiring ---------------------------------------------------------------------------
  const notes = tl.cut_items > 0
    ? `The timeline was cut at ${tl.limit} items: ${tl.cut_items} later item(s), from ${tl.cut_from_s.toFixed(3)} s on, are not shown.`
    : '';
  $('subtitle').textContent = `${data.tier || ''} tier, ${end.toFixed(3)} s from ${data.started}`;
  $('crash-slider').max = String(end);
  $('filter').addEventListener('input', applyFilter);
  $('topn').addEventListener('change', applyFilter);
  $('zoom-in').addEventListener('click', () => zoom(0.5));
  $('zoom-out').addEventListener('click', () => zoom(2));
  $('zoom-reset').addEventListener('click', () => { view = fit(); draw(); });
  $('play').addEventListener('click', play);
  $('step').addEventListener('click', () => { stopPlay(); setCrash(nextStep(crashT)); });
  $('worst').addEventListener('click', () => {
    stopPlay();
    if (data.exposure_peak) setCrash(data.exposure_peak.offset_s);
  });
  $('worst').disabled = !data.exposure_peak;
  $('crash-slider').addEventListener('input', (e) => { stopPlay(); setCrash(Number(e.target.value), true); });
  canvas.addEventListener('click', (e) => {
    const r = canvas.getBoundingClientRect();
    const x = e.clientX - r.left;
    if (x >= LABEL) { stopPlay(); setCrash(tOf(x, r.width), true); }
  });
  canvas.addEventListener('wheel', (e) => {
    if (!e.ctrlKey && !e.shiftKey) return;
    e.preventDefault();
    if (e.ctrlKey) zoom(e.deltaY > 0 ? 1.25 : 0.8);
    else {
      const span = view.t1 - view.t0;
      view.t0 = Math.max(0, Math.min(end - span, view.t0 + (e.deltaY / 500) * span));
      view.t1 = view.t0 + span;
      draw();
    }
  }, { passive: false });
  scroller.addEventListener('scroll', draw);
  window.addEventListener('resize', applyFilter);
  window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => { readColors(); draw(); });
  readColors();
  applyFilter();
  setCrash(0);
  document.body.dataset.ready = '1';
})();
