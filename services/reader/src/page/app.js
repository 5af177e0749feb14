// The graph page (docs/graph-page.md). No framework and no outside resources: the page
// must work offline. It keeps no data of its own: series come from GET /api/v1/names,
// points from GET /api/v1/points, both with the key the person entered (localStorage,
// never the URL). What the graph shows — series, range, zoom — lives in the URL's hash,
// so a link reopens the same graph; every change goes through the hash.
'use strict';

(() => {
  const KEY_STORE = 'carat.apiKey';
  const PRESETS = { '1h': 3600, '6h': 6 * 3600, '24h': 86400, '7d': 7 * 86400, '30d': 30 * 86400 };
  const DEFAULT_PRESET = '1h';
  // Series listed per search: more is a 413 from the API and a hint to type more.
  const SEARCH_LIMIT = 200;
  // Dotted segments a prefix search reaches below what was typed (the API's `*` stays
  // within one segment, so `app.q` asks for `app.q*`, `app.q*.*`, … in one pattern).
  const SEARCH_DEPTH = 10;
  const SERIES_NAME = /^[A-Za-z0-9._-]{1,255}$/;
  // The API's own guess for `auto` (one point a minute): raw when that fits the width.
  const ASSUMED_RAW_INTERVAL = 60;
  // Bucket sizes the page asks for when raw points would not fit the width; whole hours
  // and days let the reader use the archive's rollups.
  const STEPS = [120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  const COLORS = ['#2b6cb0', '#d9480f', '#2f9e44', '#ae3ec9', '#e8590c', '#1098ad',
    '#c2255c', '#5c940d', '#6741d9', '#a61e4d'];
  const MARGIN = { left: 64, right: 16, top: 12, bottom: 28 };
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const MIN_DRAG_PX = 4;

  const $ = (id) => document.getElementById(id);
  const el = {
    keyForm: $('key-form'), key: $('key'), keyForget: $('key-forget'), keyStatus: $('key-status'),
    search: $('search'), searchStatus: $('search-status'), results: $('results'),
    error: $('error'), selected: $('selected'), ranges: $('ranges'), custom: $('custom'),
    from: $('from'), to: $('to'), reset: $('reset'), refresh: $('refresh'),
    chartBox: $('chart-box'), chart: $('chart'), readout: $('readout'), legend: $('legend'), chartStatus: $('chart-status'),
  };

  // What the hash says: {series: [names], range: {preset} | {from, to}, zoom: null | {from, to}}.
  let view = readHash();
  // What was drawn last (for the readout and the zoom): {win, plot, series: [...], ymin, ymax}.
  let drawn = null;
  let fetchGen = 0;
  let fetchAbort = null;
  let searchGen = 0;
  let searchTimer = 0;
  let lastResults = [];
  let sessionKey = storedKey();

  // --- the key -------------------------------------------------------------------

  function storedKey() {
    try { return localStorage.getItem(KEY_STORE) || ''; } catch (_) { return ''; }
  }

  function setKey(key) {
    try {
      if (key) localStorage.setItem(KEY_STORE, key); else localStorage.removeItem(KEY_STORE);
    } catch (_) { /* storage disabled: the key lasts for this page only */ }
    sessionKey = key;
  }

  // --- the hash ------------------------------------------------------------------

  function int(s) {
    return /^-?\d{1,12}$/.test(s || '') ? Number(s) : null;
  }

  function readHash() {
    const p = new URLSearchParams(location.hash.replace(/^#/, ''));
    const series = [];
    for (const s of (p.get('series') || '').split(',')) {
      if (SERIES_NAME.test(s) && !series.includes(s)) series.push(s);
    }
    let range = { preset: DEFAULT_PRESET };
    const preset = p.get('range');
    const from = int(p.get('from'));
    const to = int(p.get('to'));
    if (preset && PRESETS[preset]) range = { preset };
    else if (from !== null && to !== null && to > from) range = { from, to };
    let zoom = null;
    const z = (p.get('zoom') || '').split('-').map(int);
    if (z.length === 2 && z[0] !== null && z[1] !== null && z[1] > z[0]) zoom = { from: z[0], to: z[1] };
    return { series, range, zoom };
  }

  function hashOf(v) {
    const parts = [];
    if (v.series.length) parts.push('series=' + v.series.join(','));
    if (v.range.preset) parts.push('range=' + v.range.preset);
    else parts.push('from=' + v.range.from, 'to=' + v.range.to);
    if (v.zoom) parts.push('zoom=' + v.zoom.from + '-' + v.zoom.to);
    return '#' + parts.join('&');
  }

  /** Shows `next`: through the hash (a history entry, so Back undoes a zoom). */
  function go(next) {
    const h = hashOf(next);
    if (h === location.hash) {
      view = next;
      update();
    } else {
      location.hash = h; // → hashchange → update
    }
  }

  window.addEventListener('hashchange', () => {
    view = readHash();
    update();
  });

  /** The time window on screen, epoch seconds. */
  function windowOf(v) {
    if (v.zoom) return { from: v.zoom.from, to: v.zoom.to };
    if (v.range.preset) {
      const to = Math.floor(Date.now() / 1000);
      return { from: to - PRESETS[v.range.preset], to };
    }
    return { from: v.range.from, to: v.range.to };
  }

  // --- the API -------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message, retryAfter, requestId) {
      super(message);
      this.status = status;
      this.retryAfter = retryAfter;
      this.requestId = requestId;
    }
  }

  async function api(path, signal) {
    let res;
    try {
      res = await fetch(path, {
        headers: { 'X-Api-Key': sessionKey, Accept: 'application/json' },
        cache: 'no-store',
        signal,
      });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new ApiError(0, String(e.message || e));
    }
    let body = null;
    try { body = await res.json(); } catch (_) { body = null; }
    if (!res.ok) {
      const err = body && body.error ? body.error : {};
      throw new ApiError(res.status, err.message || res.statusText || '',
        res.headers.get('Retry-After'), err.request_id || res.headers.get('x-request-id'));
    }
    return body;
  }

  /** An API failure in plain words. */
  function plain(e, what) {
    const said = e.message ? e.message.replace(/\.$/, '') : '';
    switch (e.status) {
      case 0: return `Cannot reach carat (${what}): the network or the server is down.`;
      case 400: return `carat refused the request (${what}, 400): ${said}.`;
      case 401: return 'The API key was not accepted (401). Enter a valid key above.';
      case 403: return 'This key may not read (403): use a key with the read scope.';
      case 404: return `Not found (${what}, 404): ${said}.`;
      case 413: return `Too much data for one graph (${what}, 413): ${said}. Pick a shorter range or fewer series.`;
      case 503: return `carat is unavailable for a moment (${what}, 503). Try again in ${e.retryAfter || 'a few'} s (Refresh).`;
      default:
        return `Reading ${what} failed (${e.status})${said ? ': ' + said : ''}` +
          (e.requestId ? ` — request id ${e.requestId}.` : '.');
    }
  }

  function showErrors(messages) {
    const unique = [...new Set(messages)];
    el.error.textContent = unique.join('\n');
    el.error.hidden = unique.length === 0;
  }

  // --- search --------------------------------------------------------------------

  /** The pattern a search box text asks for: a glob as typed, else a name prefix. */
  function searchPattern(text) {
    if (/[*?[{]/.test(text)) return text;
    const deeper = [''];
    for (let d = 1; d <= SEARCH_DEPTH; d++) deeper.push('.*'.repeat(d));
    return text + '*{' + deeper.join(',') + '}';
  }

  async function search() {
    const gen = ++searchGen;
    if (!sessionKey) {
      lastResults = [];
      renderResults();
      el.searchStatus.textContent = 'Enter a key to list series.';
      return;
    }
    const text = el.search.value.trim();
    el.searchStatus.textContent = 'Searching…';
    try {
      const q = new URLSearchParams({ match: searchPattern(text), limit: String(SEARCH_LIMIT) });
      const body = await api('/api/v1/names?' + q);
      if (gen !== searchGen) return;
      lastResults = (body.names || []).map((n) => n.name);
      el.searchStatus.textContent = lastResults.length
        ? `${lastResults.length} series: click one to add or remove it.`
        : 'No series match.';
    } catch (e) {
      if (gen !== searchGen || e.name === 'AbortError') return;
      lastResults = [];
      el.searchStatus.textContent = e.status === 413
        ? `More than ${SEARCH_LIMIT} series match: type more of the name.`
        : plain(e, 'the series list');
    }
    renderResults();
  }

  function renderResults() {
    el.results.replaceChildren(...lastResults.map((name) => {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = name;
      b.dataset.series = name;
      b.setAttribute('aria-pressed', String(view.series.includes(name)));
      b.addEventListener('click', () => toggleSeries(name));
      li.append(b);
      return li;
    }));
  }

  function toggleSeries(name) {
    const series = view.series.includes(name)
      ? view.series.filter((s) => s !== name)
      : [...view.series, name];
    go({ ...view, series });
  }

  // --- controls ------------------------------------------------------------------

  function pad(n, w = 2) { return String(n).padStart(w, '0'); }

  function localInput(t) {
    const d = new Date(t * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function fromInput(s) {
    const ms = new Date(s).getTime(); // a datetime-local value is local time
    return Number.isFinite(ms) ? Math.floor(ms / 1000) : null;
  }

  function renderControls(win) {
    el.selected.replaceChildren(...view.series.map((name, i) => {
      const li = document.createElement('li');
      li.dataset.series = name;
      const sw = document.createElement('span');
      sw.className = 'swatch';
      sw.style.background = COLORS[i % COLORS.length];
      const label = document.createElement('span');
      label.textContent = name;
      const rm = document.createElement('button');
      rm.type = 'button';
      rm.textContent = '×';
      rm.title = `Remove ${name}`;
      rm.setAttribute('aria-label', `Remove ${name}`);
      rm.addEventListener('click', () => toggleSeries(name));
      li.append(sw, label, rm);
      return li;
    }));
    for (const b of el.ranges.querySelectorAll('button[data-range]')) {
      b.setAttribute('aria-pressed', String(!view.zoom && view.range.preset === b.dataset.range));
    }
    if (document.activeElement !== el.from && document.activeElement !== el.to) {
      el.from.value = localInput(win.from);
      el.to.value = localInput(win.to);
    }
    el.reset.disabled = !view.zoom;
    for (const b of el.results.querySelectorAll('button[data-series]')) {
      b.setAttribute('aria-pressed', String(view.series.includes(b.dataset.series)));
    }
  }

  // --- reading and drawing ---------------------------------------------------------

  /** The plot area inside the SVG, in px. */
  function plotRect() {
    const w = Math.max(200, Math.round(el.chart.clientWidth || 800));
    const h = Math.max(160, Math.round(el.chart.clientHeight || 380));
    return {
      width: w, height: h,
      left: MARGIN.left, top: MARGIN.top,
      w: w - MARGIN.left - MARGIN.right, h: h - MARGIN.top - MARGIN.bottom,
    };
  }

  /** `resolution` to ask for (null: raw) so that about one point per px is drawn. */
  function resolutionFor(span, px) {
    if (Math.floor(span / ASSUMED_RAW_INTERVAL) + 1 <= px) return null;
    return STEPS.find((s) => Math.floor(span / s) + 1 <= px) || 86400;
  }

  async function update() {
    const win = windowOf(view);
    renderControls(win);
    const gen = ++fetchGen;
    if (fetchAbort) fetchAbort.abort();
    fetchAbort = null;
    const plot = plotRect();
    if (!sessionKey) {
      showErrors([]);
      draw(plot, win, [], 'Enter an API key with the read scope above.');
      return;
    }
    if (!view.series.length) {
      showErrors([]);
      draw(plot, win, [], 'Pick a series on the left.');
      return;
    }
    const abort = new AbortController();
    fetchAbort = abort;
    const maxPoints = Math.max(1, Math.round(plot.w));
    const resolution = resolutionFor(win.to - win.from, maxPoints);
    el.chart.dataset.state = 'loading';
    el.chartStatus.textContent = 'Loading…';
    const results = await Promise.all(view.series.map(async (name, i) => {
      const q = new URLSearchParams({
        series: name, from: String(win.from), to: String(win.to), max_points: String(maxPoints),
      });
      if (resolution) q.set('resolution', String(resolution));
      try {
        const body = await api('/api/v1/points?' + q, abort.signal);
        const s = (body.series || [])[0] || { points: [], resolution: resolution || 0 };
        return { name, color: COLORS[i % COLORS.length], resolution: s.resolution,
          aggregate: body.aggregate, points: s.points || [] };
      } catch (e) {
        if (e.name === 'AbortError') return null;
        return { name, color: COLORS[i % COLORS.length], error: plain(e, name) };
      }
    }));
    if (gen !== fetchGen) return;
    fetchAbort = null;
    const errors = results.filter((r) => r && r.error).map((r) => r.error);
    showErrors(errors);
    const ok = results.filter((r) => r && !r.error);
    draw(plot, win, ok, ok.length ? '' : 'Nothing to draw.');
  }

  /** A value the chart can place: JSON numbers; "NaN", "+Inf", "-Inf" are gaps. */
  function num(v) {
    return typeof v === 'number' && Number.isFinite(v) ? v : null;
  }

  /** Runs of points to join with lines: a gap at a non-number and where points are
   *  missing (a bucket skipped; for raw points, more than 2.5 × the usual interval). */
  function segments(points, resolution) {
    const times = points.map((p) => p[0]);
    let limit;
    if (resolution > 0) {
      limit = resolution;
    } else {
      const dts = [];
      for (let i = 1; i < times.length; i++) dts.push(times[i] - times[i - 1]);
      dts.sort((a, b) => a - b);
      limit = dts.length ? 2.5 * dts[Math.floor(dts.length / 2)] : Infinity;
    }
    const out = [];
    let run = [];
    let prev = null;
    for (const [t, raw] of points) {
      const v = num(raw);
      if (v === null || (prev !== null && t - prev > limit)) {
        if (run.length) out.push(run);
        run = [];
      }
      if (v !== null) run.push([t, v]);
      prev = t;
    }
    if (run.length) out.push(run);
    return out;
  }

  function niceStep(raw) {
    if (!(raw > 0)) return 1;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * mag;
  }

  function valueTicks(min, max, px) {
    if (!(max > min)) {
      const d = min === 0 ? 1 : Math.abs(min) * 0.1;
      min -= d;
      max += d;
    }
    const step = niceStep((max - min) / Math.max(2, Math.floor(px / 50)));
    const lo = Math.floor(min / step) * step;
    const hi = Math.ceil(max / step) * step;
    const ticks = [];
    for (let i = 0; lo + i * step <= hi + step / 1e6; i++) ticks.push(lo + i * step);
    return { lo, hi, step, ticks };
  }

  function formatTick(v, step) {
    const a = Math.max(Math.abs(v), step);
    for (const [div, unit] of [[1e12, 'T'], [1e9, 'G'], [1e6, 'M']]) {
      if (a >= div) return trim((v / div).toFixed(decimals(step / div))) + unit;
    }
    return trim(v.toFixed(decimals(step)));
  }

  function decimals(step) {
    return Math.min(10, Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
  }

  function trim(s) {
    return s === '-0' ? '0' : s;
  }

  function formatValue(v) {
    if (v === 0) return '0';
    const a = Math.abs(v);
    if (a >= 1e15 || a < 1e-6) return v.toExponential(4);
    return String(Number(v.toPrecision(7)));
  }

  const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
    21600, 43200, 86400, 2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400];

  function offsetAt(t) {
    return -new Date(t * 1000).getTimezoneOffset() * 60;
  }

  /** Ticks on whole local minutes, hours, days (DST moves day ticks by its hour). */
  function timeTicks(from, to, px) {
    const span = to - from;
    const step = TIME_STEPS.find((s) => span / s <= px / 90) || 365 * 86400;
    const off = offsetAt(from);
    const ticks = [];
    for (let t = Math.ceil((from + off) / step) * step - off; t <= to; t += step) ticks.push(t);
    return { step, ticks };
  }

  function formatTime(t, step, span) {
    const d = new Date(t * 1000);
    const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    const md = `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    if (step < 60) return `${hm}:${pad(d.getSeconds())}`;
    if (step >= 86400) return md;
    return span > 86400 ? `${md} ${hm}` : hm;
  }

  function formatFull(t) {
    const d = new Date(t * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function svg(name, attrs, parent) {
    const n = document.createElementNS(SVG_NS, name);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
    if (parent) parent.append(n);
    return n;
  }

  function px(x) {
    return Math.round(x * 10) / 10;
  }

  function resolutionLabel(r) {
    if (!r) return 'raw';
    if (r % 86400 === 0) return `${r / 86400} d avg`;
    if (r % 3600 === 0) return `${r / 3600} h avg`;
    if (r % 60 === 0) return `${r / 60} min avg`;
    return `${r} s avg`;
  }

  function draw(plot, win, series, message) {
    const c = el.chart;
    c.replaceChildren();
    c.setAttribute('viewBox', `0 0 ${plot.width} ${plot.height}`);
    const span = Math.max(1, win.to - win.from);
    let min = Infinity;
    let max = -Infinity;
    for (const s of series) {
      s.runs = segments(s.points, s.resolution);
      for (const run of s.runs) {
        for (const [t, v] of run) {
          if (t < win.from || t > win.to) continue;
          if (v < min) min = v;
          if (v > max) max = v;
        }
      }
    }
    if (min === Infinity) { min = 0; max = 1; }
    const y = valueTicks(min, max, plot.h);
    const xOf = (t) => plot.left + ((t - win.from) / span) * plot.w;
    const yOf = (v) => plot.top + plot.h - ((v - y.lo) / (y.hi - y.lo)) * plot.h;

    const clipId = 'plot-clip';
    const defs = svg('defs', {}, c);
    svg('rect', { x: plot.left, y: plot.top, width: plot.w, height: plot.h }, svg('clipPath', { id: clipId }, defs));

    const grid = svg('g', { class: 'grid' }, c);
    const xAxis = svg('g', { class: 'axis x' }, c);
    const yAxis = svg('g', { class: 'axis y' }, c);
    const tx = timeTicks(win.from, win.to, plot.w);
    for (const t of tx.ticks) {
      const x = px(xOf(t));
      svg('line', { x1: x, x2: x, y1: plot.top, y2: plot.top + plot.h }, grid);
      const label = svg('text', { x, y: plot.top + plot.h + 18, 'text-anchor': 'middle', 'data-time': t }, xAxis);
      label.textContent = formatTime(t, tx.step, span);
    }
    for (const v of y.ticks) {
      const yy = px(yOf(v));
      svg('line', { x1: plot.left, x2: plot.left + plot.w, y1: yy, y2: yy }, grid);
      const label = svg('text', { x: plot.left - 6, y: yy + 4, 'text-anchor': 'end', 'data-value': v }, yAxis);
      label.textContent = formatTick(v, y.step);
    }
    svg('rect', { class: 'frame', x: plot.left, y: plot.top, width: plot.w, height: plot.h }, c);

    const lines = svg('g', { class: 'lines', 'clip-path': `url(#${clipId})` }, c);
    for (const s of series) {
      const d = s.runs
        .map((run) => run.map(([t, v], i) => `${i ? 'L' : 'M'}${px(xOf(t))},${px(yOf(v))}`).join(''))
        .join('');
      svg('path', { class: 'series', d, stroke: s.color, 'data-series': s.name }, lines);
      for (const run of s.runs) {
        if (run.length === 1) { // a lone point between gaps: a dot, else it would not show
          svg('circle', { class: 'lone', cx: px(xOf(run[0][0])), cy: px(yOf(run[0][1])), r: 2,
            fill: s.color, 'data-series': s.name }, lines);
        }
      }
    }
    if (message) {
      const m = svg('text', { class: 'empty', x: plot.left + plot.w / 2, y: plot.top + plot.h / 2, 'text-anchor': 'middle' }, c);
      m.textContent = message;
    }
    const cursor = svg('g', { class: 'hover' }, c);
    const selection = svg('rect', { class: 'selection', x: 0, y: plot.top, width: 0, height: plot.h, visibility: 'hidden' }, c);
    const overlay = svg('rect', { class: 'overlay', x: plot.left, y: plot.top, width: plot.w, height: plot.h }, c);

    // What the chart drew, for whoever checks it (the browser test) and for the readout.
    Object.assign(c.dataset, {
      state: 'ready', from: win.from, to: win.to, ymin: y.lo, ymax: y.hi,
      plot: [plot.left, plot.top, plot.w, plot.h].join(','),
    });
    drawn = { win, plot, series, xOf, yOf, cursor, selection, overlay };
    bindPointer(overlay);

    el.legend.replaceChildren(...series.map((s) => {
      const li = document.createElement('li');
      li.dataset.series = s.name;
      const sw = document.createElement('span');
      sw.className = 'swatch';
      sw.style.background = s.color;
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = s.name;
      const info = document.createElement('span');
      info.className = 'info';
      const last = lastPoint(s);
      info.textContent = `${resolutionLabel(s.resolution)} · ${s.points.length} points` +
        (last ? ` · last ${formatValue(last[1])}` : '');
      li.append(sw, name, info);
      return li;
    }));
    el.chartStatus.textContent = series.length
      ? `${formatFull(win.from)} – ${formatFull(win.to)} · drag across the graph to zoom`
      : '';
    el.readout.hidden = true;
  }

  function lastPoint(s) {
    for (let i = s.runs.length - 1; i >= 0; i--) {
      const run = s.runs[i];
      if (run.length) return run[run.length - 1];
    }
    return null;
  }

  // --- hover readout and drag-to-zoom ---------------------------------------------

  /** The SVG x (its viewBox is its content box, px for px) and time under `clientX`. */
  function timeAt(clientX) {
    const r = el.chart.getBoundingClientRect();
    const p = drawn.plot;
    const x = Math.min(p.left + p.w, Math.max(p.left, clientX - r.left - el.chart.clientLeft));
    return { x, t: drawn.win.from + ((x - p.left) / p.w) * (drawn.win.to - drawn.win.from) };
  }

  /** The point of `s` nearest to `t` (within its runs), or null. */
  function nearest(s, t) {
    let best = null;
    for (const run of s.runs) {
      let lo = 0;
      let hi = run.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (run[mid][0] < t) lo = mid + 1; else hi = mid;
      }
      for (const i of [lo - 1, lo]) {
        const p = run[i];
        if (p && (!best || Math.abs(p[0] - t) < Math.abs(best[0] - t))) best = p;
      }
    }
    return best;
  }

  function showReadout(clientX) {
    const { x, t } = timeAt(clientX);
    const d = drawn;
    d.cursor.replaceChildren();
    svg('line', { class: 'cursor', x1: px(x), x2: px(x), y1: d.plot.top, y2: d.plot.top + d.plot.h }, d.cursor);
    const rows = [];
    let at = null;
    const pxPerSec = d.plot.w / Math.max(1, d.win.to - d.win.from);
    for (const s of d.series) {
      const p = nearest(s, t);
      // Only points near the cursor: 24 px, or one bucket.
      if (!p || Math.abs(p[0] - t) * pxPerSec > Math.max(24, (s.resolution || 0) * pxPerSec)) continue;
      if (at === null || Math.abs(p[0] - t) < Math.abs(at - t)) at = p[0];
      svg('circle', { cx: px(d.xOf(p[0])), cy: px(d.yOf(p[1])), r: 3.5, fill: s.color }, d.cursor);
      rows.push([s, p]);
    }
    if (!rows.length) {
      el.readout.hidden = true;
      return;
    }
    const head = document.createElement('div');
    head.className = 'time';
    head.textContent = formatFull(at);
    el.readout.replaceChildren(head, ...rows.map(([s, p]) => {
      const row = document.createElement('div');
      row.className = 'row';
      row.dataset.series = s.name;
      row.dataset.time = String(p[0]);
      row.dataset.value = String(p[1]);
      const sw = document.createElement('span');
      sw.className = 'swatch';
      sw.style.background = s.color;
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = s.name;
      const value = document.createElement('span');
      value.className = 'value';
      value.textContent = formatValue(p[1]);
      row.append(sw, name, value);
      return row;
    }));
    el.readout.dataset.time = String(at);
    el.readout.hidden = false;
    // Beside the cursor, on the side with room.
    el.readout.style.left = '0px'; // measured with the whole box to grow in
    const w = el.readout.offsetWidth;
    const cx = x + el.chart.clientLeft;
    const room = el.chartBox.clientWidth;
    el.readout.style.left = `${cx + 12 + w > room ? Math.max(0, cx - 12 - w) : cx + 12}px`;
  }

  function hideReadout() {
    if (!drawn) return;
    drawn.cursor.replaceChildren();
    el.readout.hidden = true;
  }

  let drag = null;

  function bindPointer(overlay) {
    overlay.addEventListener('mousemove', (e) => {
      if (drag) {
        const { x } = timeAt(e.clientX);
        drag.x = x;
        const sel = drawn.selection;
        sel.setAttribute('x', String(px(Math.min(drag.x0, x))));
        sel.setAttribute('width', String(px(Math.abs(x - drag.x0))));
        sel.setAttribute('visibility', 'visible');
      }
      showReadout(e.clientX);
    });
    overlay.addEventListener('mouseleave', () => { if (!drag) hideReadout(); });
    overlay.addEventListener('mousedown', (e) => {
      if (e.button !== 0 || !drawn.series.length) return;
      e.preventDefault();
      const { x, t } = timeAt(e.clientX);
      drag = { x0: x, t0: t, x };
    });
  }

  window.addEventListener('mouseup', (e) => {
    if (!drag) return;
    const d = drag;
    drag = null;
    drawn.selection.setAttribute('visibility', 'hidden');
    const { x, t } = timeAt(e.clientX);
    if (Math.abs(x - d.x0) < MIN_DRAG_PX) return; // a click, not a drag
    const from = Math.floor(Math.min(d.t0, t));
    const to = Math.ceil(Math.max(d.t0, t));
    if (to > from) go({ ...view, zoom: { from, to } });
  });

  window.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && drag) {
      drag = null;
      drawn.selection.setAttribute('visibility', 'hidden');
    }
  });

  // --- wiring --------------------------------------------------------------------

  el.key.value = sessionKey;
  el.keyStatus.textContent = sessionKey ? 'Key saved in this browser.' : '';
  el.keyForm.addEventListener('submit', (e) => {
    e.preventDefault();
    setKey(el.key.value.trim());
    el.keyStatus.textContent = sessionKey ? 'Key saved in this browser.' : 'No key.';
    search();
    update();
  });
  el.keyForget.addEventListener('click', () => {
    setKey('');
    el.key.value = '';
    el.keyStatus.textContent = 'Key forgotten.';
    search();
    update();
  });
  el.search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(search, 250);
  });
  el.search.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      clearTimeout(searchTimer);
      search();
    }
  });
  for (const b of el.ranges.querySelectorAll('button[data-range]')) {
    b.addEventListener('click', () => go({ ...view, range: { preset: b.dataset.range }, zoom: null }));
  }
  el.custom.addEventListener('submit', (e) => {
    e.preventDefault();
    const from = fromInput(el.from.value);
    const to = fromInput(el.to.value);
    if (from === null || to === null || to <= from) {
      showErrors(['The custom range needs a "from" before its "to".']);
      return;
    }
    go({ ...view, range: { from, to }, zoom: null });
  });
  el.reset.addEventListener('click', () => go({ ...view, zoom: null }));
  el.refresh.addEventListener('click', () => update());
  let resizeTimer = 0;
  let lastWidth = el.chart.clientWidth;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      if (el.chart.clientWidth !== lastWidth) {
        lastWidth = el.chart.clientWidth;
        update();
      }
    }, 200);
  });

  search();
  update();
})();
