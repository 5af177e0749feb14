// The graph page in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; no browser download). Run by services/local/tests/graph_page.rs:
//
//   node tests/browser/graph.mjs <page url> <read key> <series> <expected json>
//
// <expected json> is {"points": [[time, value], …], "write_only_key"?: "…"}: what the test
// posted (and a key without the read scope). The script enters a wrong key (the 401
// message must show), a write-only key (403), asks for an unknown series (404), then the
// key, searches, picks the
// series and the 1h preset, and checks what the page DREW against the posted points:
// the line's vertices at the pixels the points map to (with the axes the chart wrote),
// one break per gap, the tick labels, the legend, the hover readout; then drags to zoom
// (a new fetch, only the points inside drawn), resets, and opens the shared link in a
// fresh page. Saves target/test-artifacts/graph-page.png. Exits 1 naming the first
// mismatch.
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const [url, key, series, expectedJson] = process.argv.slice(2);
if (!url || !key || !series || !expectedJson) {
  console.error('usage: node tests/browser/graph.mjs <page url> <read key> <series> <expected json>');
  process.exit(2);
}
const { points: expected, write_only_key: writeOnlyKey } = JSON.parse(expectedJson);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const artifacts = path.join(root, 'target/test-artifacts');
const shot = path.join(artifacts, 'graph-page.png');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
// 0.1 px: the chart writes coordinates rounded to 0.1 px.
const PX = 0.051;

// Bounded whatever hangs (a browser that does not start, a page that never draws).
const WATCHDOG_MS = 120000;
setTimeout(() => {
  console.error(`graph page test FAILED: no result within ${WATCHDOG_MS / 1000} s`);
  process.exit(1);
}, WATCHDOG_MS).unref();

class Mismatch extends Error {}
function check(cond, what) {
  if (!cond) throw new Mismatch(what);
}
const step = (s) => console.log(`graph page: ${s}`);

/** The vertices of a path's `d` (`M x,y L x,y … M …`), one array per sub-path. */
function runsOf(d) {
  return d.split('M').filter(Boolean).map((run) => run.split('L').map((xy) => xy.split(',').map(Number)));
}

/** What the chart says it drew, and the path of `name`. */
async function chartOf(page, name) {
  return page.evaluate((name) => {
    const c = document.getElementById('chart');
    const p = c.querySelector(`path.series[data-series="${name}"]`);
    const [left, top, w, h] = c.dataset.plot.split(',').map(Number);
    const box = c.getBoundingClientRect();
    return {
      from: Number(c.dataset.from), to: Number(c.dataset.to),
      ymin: Number(c.dataset.ymin), ymax: Number(c.dataset.ymax),
      left, top, w, h,
      // The viewBox is the SVG's content box, px for px (inside its border).
      origin: { x: box.x + c.clientLeft, y: box.y + c.clientTop },
      viewWidth: c.viewBox.baseVal.width, clientWidth: c.clientWidth,
      d: p ? p.getAttribute('d') : null,
      xTicks: [...c.querySelectorAll('.axis.x text')].map((t) => ({
        time: Number(t.dataset.time), x: Number(t.getAttribute('x')), text: t.textContent })),
      yTicks: [...c.querySelectorAll('.axis.y text')].map((t) => ({
        value: Number(t.dataset.value), y: Number(t.getAttribute('y')), text: t.textContent })),
    };
  }, name);
}

const xOf = (c, t) => c.left + ((t - c.from) / (c.to - c.from)) * c.w;
const yOf = (c, v) => c.top + c.h - ((v - c.ymin) / (c.ymax - c.ymin)) * c.h;
/** Screen coordinates of an SVG x (px of the viewBox) at the plot's middle height. */
const screen = (c, x) => ({ x: c.origin.x + x, y: c.origin.y + c.top + c.h / 2 });

/** Runs of `points` split where the page must break the line (gaps of > 2.5 × the median step). */
function expectedRuns(points) {
  const dts = points.slice(1).map((p, i) => p[0] - points[i][0]).sort((a, b) => a - b);
  const limit = 2.5 * dts[Math.floor(dts.length / 2)];
  const runs = [];
  let run = [];
  points.forEach((p, i) => {
    if (i && p[0] - points[i - 1][0] > limit) { runs.push(run); run = []; }
    run.push(p);
  });
  if (run.length) runs.push(run);
  return runs;
}

/** The drawn line of `name` equals `points` mapped through the chart's axes. */
function checkLine(c, points, what) {
  check(c.d !== null, `${what}: no line drawn for ${series}`);
  const runs = runsOf(c.d);
  const want = expectedRuns(points);
  check(runs.length === want.length,
    `${what}: the line has ${runs.length} runs, want ${want.length} (one break per gap): d=${c.d.slice(0, 200)}…`);
  want.forEach((run, r) => {
    check(runs[r].length === run.length, `${what}: run ${r} has ${runs[r].length} vertices, want ${run.length}`);
    run.forEach(([t, v], i) => {
      const [x, y] = runs[r][i];
      const [wx, wy] = [xOf(c, t), yOf(c, v)];
      check(Math.abs(x - wx) <= PX && Math.abs(y - wy) <= PX,
        `${what}: point (${t}, ${v}) drawn at (${x}, ${y}), want (${wx.toFixed(2)}, ${wy.toFixed(2)})`);
    });
  });
}

/** The axes are labelled where the chart puts their values, with the values' text. */
function checkAxes(c, what) {
  check(c.xTicks.length >= 3 && c.yTicks.length >= 3,
    `${what}: ${c.xTicks.length} time and ${c.yTicks.length} value ticks, want at least 3 each`);
  for (const t of c.xTicks) {
    check(t.time >= c.from && t.time <= c.to, `${what}: time tick ${t.time} outside ${c.from}..${c.to}`);
    check(Math.abs(t.x - xOf(c, t.time)) <= PX, `${what}: time tick ${t.time} at x=${t.x}, want ${xOf(c, t.time)}`);
    // The context runs in UTC: an hour's ticks read HH:MM of the tick's time.
    const hm = new Date(t.time * 1000).toISOString().slice(11, 16);
    check(t.text === hm, `${what}: time tick ${t.time} reads ${JSON.stringify(t.text)}, want ${hm}`);
  }
  for (const t of c.yTicks) {
    check(t.value >= c.ymin - 1e-9 && t.value <= c.ymax + 1e-9, `${what}: value tick ${t.value} outside the axis`);
    check(Math.abs(t.y - 4 - yOf(c, t.value)) <= PX, `${what}: value tick ${t.value} at y=${t.y}`);
    check(Math.abs(Number(t.text) - t.value) < 1e-9, `${what}: value tick ${t.value} reads ${JSON.stringify(t.text)}`);
  }
}

/** The readout sits inside the chart's box, and nothing widens the page. */
async function checkReadoutInside(page) {
  const r = await page.evaluate(() => {
    const box = document.getElementById('chart-box').getBoundingClientRect();
    const ro = document.getElementById('readout').getBoundingClientRect();
    return { box: [box.left, box.right], readout: [ro.left, ro.right],
      scroll: document.documentElement.scrollWidth, width: window.innerWidth };
  });
  check(r.readout[0] >= r.box[0] - 0.5 && r.readout[1] <= r.box[1] + 0.5,
    `the readout (${r.readout}) is outside the chart (${r.box})`);
  check(r.scroll <= r.width, `the page is ${r.scroll} px wide in a ${r.width} px window`);
}

async function waitDrawn(page, what, cond) {
  try {
    await page.waitForFunction(cond, series, { timeout: 15000 });
  } catch (_) {
    const state = await page.evaluate(() => ({
      chart: document.getElementById('chart').dataset.state,
      error: document.getElementById('error').textContent,
      status: document.getElementById('chart-status').textContent,
      search: document.getElementById('search-status').textContent,
    }));
    throw new Mismatch(`${what}: timed out; the page shows ${JSON.stringify(state)}`);
  }
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // Chromium's sandbox does not start as root (CI runs as root).
  args: process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [],
});
let page;
let failed = null;
try {
  const pw = JSON.parse(readFileSync(path.join(root, 'tests/browser/node_modules/playwright-core/package.json'), 'utf8'));
  step(`chromium ${browser.version()} (${executablePath}), playwright-core ${pw.version}, node ${process.version}`);
  const context = await browser.newContext({ viewport: { width: 1280, height: 760 }, timezoneId: 'UTC', locale: 'en-US' });
  context.setDefaultTimeout(15000);
  page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // A refused resource or a CSP violation is a console error; the 401/403/404 we cause are not.
    if (m.type() === 'error' && !/status of 40[134]/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  const fetches = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/api/')) {
      fetches.push({ path: u.pathname, params: u.searchParams, key: r.headers()['x-api-key'] });
      check(!r.url().includes(key), `the key is in a request URL: ${r.url()}`);
    }
  });

  // 1. No key yet: the page says so. A wrong key: the 401 message, for the search and the graph.
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById('chart').dataset.state === 'ready');
  const empty = await page.textContent('#chart .empty');
  check(/API key/.test(empty), `without a key the graph says ${JSON.stringify(empty)}`);
  await page.fill('#key', `wrong-${key}`);
  await page.click('#key-save');
  await page.waitForFunction(() => /401/.test(document.getElementById('search-status').textContent));
  const searchMsg = await page.textContent('#search-status');
  check(searchMsg.includes('The API key was not accepted (401)'), `wrong key, search says ${JSON.stringify(searchMsg)}`);
  await page.goto(`${url}#series=${series}&range=1h`);
  await page.waitForFunction(() => !document.getElementById('error').hidden);
  const errorMsg = await page.textContent('#error');
  check(errorMsg.includes('The API key was not accepted (401)'), `wrong key, graph says ${JSON.stringify(errorMsg)}`);
  check((await page.$$('#legend li')).length === 0, 'wrong key: a legend entry is shown');
  step('a wrong key shows the 401 message');
  if (writeOnlyKey) {
    await page.fill('#key', writeOnlyKey);
    await page.click('#key-save');
    await page.waitForFunction(() => /403/.test(document.getElementById('error').textContent));
    const msg = await page.textContent('#error');
    check(msg.includes('This key may not read (403)'), `a write-only key, the graph says ${JSON.stringify(msg)}`);
    step('a key without the read scope shows the 403 message');
  }
  await page.fill('#key', key);
  await page.click('#key-save');
  const unknown = `${series}.nope`;
  await page.goto(`${url}#series=${unknown}&range=1h`);
  await page.waitForFunction(() => /404/.test(document.getElementById('error').textContent));
  const notFound = await page.textContent('#error');
  check(notFound.includes(`Not found (${unknown}, 404)`) && notFound.includes('not found'),
    `an unknown series, the graph says ${JSON.stringify(notFound)}`);
  step('an unknown series shows the 404 message');

  // 2. The key, a search, a pick, the 1h preset.
  await page.goto(url); // no hash: nothing picked
  await page.fill('#key', key);
  await page.click('#key-save');
  check((await page.evaluate(() => localStorage.getItem('carat.apiKey'))) === key, 'the key is not in localStorage');
  const prefix = series.split('.')[0] + '.';
  await page.fill('#search', prefix);
  const pick = `#results button[data-series="${series}"]`;
  await page.waitForSelector(pick, { timeout: 15000 });
  const names = fetches.filter((f) => f.path === '/api/v1/names');
  check(names.length > 0 && names.every((f) => f.key), 'the series search did not send the key');
  await page.click(pick);
  await page.click('#ranges button[data-range="6h"]');
  await page.click('#ranges button[data-range="1h"]');
  await waitDrawn(page, 'the picked series', (s) => {
    const c = document.getElementById('chart');
    return c.dataset.state === 'ready' && c.dataset.to - c.dataset.from === 3600 &&
      c.querySelector(`path.series[data-series="${s}"]`);
  });
  check(!(await page.isVisible('#error')), `an error shows: ${await page.textContent('#error')}`);
  const hash = new URLSearchParams((await page.evaluate(() => location.hash)).slice(1));
  check(hash.get('series') === series && hash.get('range') === '1h', `the hash is ${hash}`);
  const points = fetches.filter((f) => f.path === '/api/v1/points');
  const last = points[points.length - 1];
  check(last && last.key === key && last.params.get('series') === series, 'the points call lacks the series or the key');
  const c = await chartOf(page, series);
  check(c.viewWidth === c.clientWidth, `the chart's viewBox is ${c.viewWidth} wide, the SVG ${c.clientWidth} px`);
  check(Number(last.params.get('max_points')) === Math.round(c.w),
    `max_points=${last.params.get('max_points')}, the plot is ${c.w} px wide`);
  check(Math.abs(c.to - Date.now() / 1000) < 60, `the 1h range ends at ${c.to}, not now`);
  const inRange = expected.filter(([t]) => t >= c.from && t <= c.to);
  check(inRange.length === expected.length, `only ${inRange.length} of ${expected.length} posted points are in the last hour`);
  const values = expected.map((p) => p[1]);
  const [vmin, vmax] = [Math.min(...values), Math.max(...values)];
  check(c.ymin <= vmin && c.ymax >= vmax && c.ymax - c.ymin < 2 * (vmax - vmin),
    `the value axis ${c.ymin}..${c.ymax} does not fit the points' ${vmin}..${vmax}`);
  checkLine(c, expected, '1h');
  checkAxes(c, '1h');
  const legend = await page.textContent(`#legend li[data-series="${series}"]`);
  check(legend.includes(series) && legend.includes('raw') && legend.includes(`${expected.length} points`),
    `the legend reads ${JSON.stringify(legend)}`);
  step(`drew ${expected.length} points in ${expectedRuns(expected).length} runs at the right pixels; axes and legend agree`);

  // 3. The hover readout at the spike.
  const spike = expected.reduce((a, b) => (b[1] > a[1] ? b : a));
  const at = screen(c, xOf(c, spike[0]));
  await page.mouse.move(at.x, at.y);
  await page.waitForSelector('#readout:not([hidden])');
  const row = await page.$eval(`#readout .row[data-series="${series}"]`,
    (r) => ({ time: Number(r.dataset.time), value: Number(r.dataset.value), text: r.textContent }));
  check(row.time === spike[0] && row.value === spike[1] && row.text.includes(String(spike[1])),
    `hovering at ${spike[0]} reads ${JSON.stringify(row)}, want ${spike}`);
  const readTime = await page.textContent('#readout .time');
  const wantTime = new Date(spike[0] * 1000).toISOString().replace('T', ' ').slice(0, 19);
  check(readTime === wantTime, `the readout's time is ${readTime}, want ${wantTime}`);
  await checkReadoutInside(page);
  step(`the readout at the spike reads ${row.value} at ${readTime}`);

  // 4. Drag across a third of the points: a zoom, a new fetch of that range, only those drawn.
  const [a, b] = [expected[25], expected[38]];
  const before = fetches.length;
  const [p0, p1] = [screen(c, xOf(c, a[0]) - 3), screen(c, xOf(c, b[0]) + 3)];
  await page.mouse.move(p0.x, p0.y);
  await page.mouse.down();
  await page.mouse.move((p0.x + p1.x) / 2, p0.y, { steps: 4 });
  await page.mouse.move(p1.x, p1.y, { steps: 4 });
  await page.mouse.up();
  await waitDrawn(page, 'the zoom', () => {
    const el = document.getElementById('chart');
    return el.dataset.state === 'ready' && el.dataset.to - el.dataset.from < 3600;
  });
  const z = await chartOf(page, series);
  const zoomFetch = fetches.slice(before).filter((f) => f.path === '/api/v1/points').pop();
  check(zoomFetch && Number(zoomFetch.params.get('from')) === z.from && Number(zoomFetch.params.get('to')) === z.to,
    `the zoom did not fetch its range ${z.from}..${z.to}`);
  check(z.from > a[0] - 60 && z.from <= a[0] && z.to >= b[0] && z.to < b[0] + 60,
    `zoomed to ${z.from}..${z.to}, dragged across ${a[0]}..${b[0]}`);
  const zoomed = expected.filter(([t]) => t >= z.from && t <= z.to);
  check(zoomed.length === 14, `${zoomed.length} points in the zoomed range, want 14`);
  checkLine(z, zoomed, 'zoomed');
  check(new URLSearchParams((await page.evaluate(() => location.hash)).slice(1)).get('zoom') === `${z.from}-${z.to}`,
    'the zoom is not in the hash');
  check(await page.isEnabled('#reset'), 'Reset zoom is not enabled');
  step(`zoomed to ${z.from}..${z.to}: fetched again, ${zoomed.length} points drawn where they belong`);

  // 5. A link to the zoomed graph opens it in a fresh page (the key comes from localStorage).
  const link = page.url();
  const other = await context.newPage();
  await other.goto(link);
  await waitDrawn(other, 'the shared link', (s) => document.querySelector(`#chart path.series[data-series="${s}"]`));
  const shared = await chartOf(other, series);
  check(shared.from === z.from && shared.to === z.to && shared.d === z.d, 'the shared link draws another graph');
  await other.close();
  step('the link reopens the same graph');

  // 6. Reset: back to the last hour.
  await page.click('#reset');
  await waitDrawn(page, 'the reset', () => {
    const el = document.getElementById('chart');
    return el.dataset.state === 'ready' && el.dataset.to - el.dataset.from === 3600;
  });
  checkLine(await chartOf(page, series), expected, 'after the reset');
  const r = await chartOf(page, series);
  const hover = screen(r, xOf(r, spike[0]));
  await page.mouse.move(hover.x, hover.y);
  await page.waitForSelector('#readout:not([hidden])');
  await checkReadoutInside(page);
  step('reset to the last hour');
  check(problems.length === 0, `the browser reported: ${problems.join('; ')}`);
} catch (e) {
  failed = e;
} finally {
  if (page) {
    mkdirSync(artifacts, { recursive: true });
    const file = failed ? path.join(artifacts, 'graph-page-failed.png') : shot;
    await page.screenshot({ path: file, fullPage: true }).catch(() => {});
    console.log(`graph page: screenshot ${file}`);
  }
  await browser.close();
}
if (failed) {
  console.error(`graph page test FAILED: ${failed instanceof Mismatch ? '' : 'error: '}${failed.message}`);
  process.exit(1);
}
console.log('graph page: all checks passed');
