/* rollgate dashboard: progressive enhancement only.
 *
 * Every page works without this file. With it:
 *   - <time class="ts" datetime="RFC3339"> shows the viewer's local time;
 *   - figure.chart draws its JSON (script.chart-data) with uPlot;
 *   - form[data-confirm] asks window.confirm() before submitting;
 *   - button#theme-toggle switches html[data-theme] and remembers it.
 * After htmx swaps in new content, times and charts are done again.
 * Plain ES2020, no build step; load with <script defer src="/static/app.js">.
 * Contract: docs/dashboard-style.md.
 */
(() => {
  "use strict";

  const root = document.documentElement;
  root.classList.add("js");

  const THEME_KEY = "rollgate-theme";

  /* ------------------------------------------------------------ helpers */

  const pad2 = (n) => String(n).padStart(2, "0");

  function zoneName(d) {
    try {
      const part = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" })
        .formatToParts(d)
        .find((p) => p.type === "timeZoneName");
      return part ? part.value : "";
    } catch (_) {
      return "";
    }
  }

  /** "YYYY-MM-DD HH:MM:SS" in the viewer's zone, plus the short zone name. */
  function formatLocal(d, withZone = true) {
    const s =
      `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ` +
      `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
    const z = withZone ? zoneName(d) : "";
    return z ? `${s} ${z}` : s;
  }

  /** RFC 3339 → Date; tolerant of a space separator, lower-case t/z and
   *  more than three fractional digits (Rust writes nanoseconds). */
  function parseRfc3339(text) {
    if (!text) return null;
    let s = text.trim().replace(/^(\d{4}-\d{2}-\d{2})[ tT]/, "$1T").replace(/z$/, "Z");
    s = s.replace(/(\.\d{3})\d+/, "$1");
    const d = new Date(s);
    return Number.isNaN(d.getTime()) ? null : d;
  }

  function cssVar(el, name, fallback) {
    const v = getComputedStyle(el).getPropertyValue(name).trim();
    return v || fallback;
  }

  /* --------------------------------------------------------- local time */

  function localizeTimes(scope) {
    for (const el of scope.querySelectorAll("time.ts[datetime]")) {
      const dt = el.getAttribute("datetime");
      if (el.dataset.localized === dt) continue;
      const d = parseRfc3339(dt);
      if (!d) continue;
      // First time: remember what the server wrote (the UTC string).
      if (el.dataset.utc === undefined) el.dataset.utc = el.textContent.trim() || dt;
      else el.dataset.utc = dt; // datetime changed in place: the attribute is the truth
      el.title = el.dataset.utc;
      el.textContent = formatLocal(d);
      el.dataset.localized = dt;
    }
  }

  /* ------------------------------------------------------------- charts */

  /** figure -> { u, ro, json } for every chart drawn. */
  const charts = new Map();
  /** ids of figures whose data table the user opened: kept open on refresh. */
  const tablesOpened = new Set();

  const MARKER_VARS = {
    phase: "--chart-marker-phase",
    breach: "--chart-marker-breach",
    rollback: "--chart-marker-rollback",
  };

  function fmtNum(v) {
    if (v == null || !Number.isFinite(v)) return "\u2014";
    const a = Math.abs(v);
    if (a >= 1000) return Math.round(v).toLocaleString("en-US");
    if (a >= 100) return v.toFixed(0);
    if (a >= 1 || a === 0) return String(+v.toFixed(2));
    return String(+v.toPrecision(3));
  }

  function withUnit(s, unit) {
    if (!unit) return s;
    return unit === "%" ? s + "%" : `${s} ${unit}`;
  }

  /** Read and check a chart's JSON; returns null when it is unusable. */
  function readChartData(fig) {
    const script = fig.querySelector("script.chart-data");
    if (!script) return null;
    let data;
    try {
      data = JSON.parse(script.textContent);
    } catch (e) {
      console.warn("rollgate: chart data is not JSON", fig, e);
      return null;
    }
    if (!data || !Array.isArray(data.x) || !Array.isArray(data.series)) {
      console.warn("rollgate: chart data needs x and series arrays", fig);
      return null;
    }
    const n = data.x.length;
    const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);
    let x = data.x.map(num);
    let series = data.series
      .filter((s) => s && Array.isArray(s.values))
      .map((s, i) => ({
        label: String(s.label ?? s.kind ?? `series ${i + 1}`),
        kind: String(s.kind || "observed"),
        values: Array.from({ length: n }, (_, j) => num(s.values[j])),
      }));
    // Drop points without a time, and sort by time (uPlot needs ascending x).
    let idx = x.map((_, i) => i).filter((i) => x[i] !== null);
    idx.sort((a, b) => x[a] - x[b]);
    x = idx.map((i) => x[i]);
    series = series.map((s) => ({ ...s, values: idx.map((i) => s.values[i]) }));
    const markers = (Array.isArray(data.markers) ? data.markers : [])
      .filter((m) => m && num(m.at) !== null)
      .map((m) => ({ at: m.at, label: String(m.label ?? ""), kind: String(m.kind || "other") }))
      .sort((a, b) => a.at - b.at);
    return {
      title: String(data.title ?? ""),
      unit: String(data.unit ?? ""),
      x,
      series,
      markers,
    };
  }

  /** Points that have a value: the observed series decide, or any series if none is observed. */
  function countPoints(d) {
    const observed = d.series.filter((s) => s.kind === "observed");
    const judged = observed.length ? observed : d.series;
    let count = 0;
    for (let i = 0; i < d.x.length; i++) {
      if (judged.some((s) => s.values[i] !== null)) count++;
    }
    return count;
  }

  function figcaptionOf(fig) {
    let cap = fig.querySelector(":scope > figcaption");
    if (!cap) {
      cap = document.createElement("figcaption");
      fig.appendChild(cap);
    }
    return cap;
  }

  function setEmpty(fig, empty) {
    fig.classList.toggle("is-empty", empty);
    const old = fig.querySelector(":scope > figcaption .chart-empty");
    if (old) old.remove();
    if (empty) {
      const span = document.createElement("span");
      span.className = "chart-empty";
      span.textContent = "not enough data yet";
      figcaptionOf(fig).appendChild(span);
    }
  }

  function showTableInstead(fig) {
    fig.classList.add("is-nochart");
    const details = fig.querySelector("details.chart-table");
    if (details) details.open = true;
  }

  function destroyChart(fig) {
    const c = charts.get(fig);
    if (!c) return;
    if (c.ro) c.ro.disconnect();
    if (c.u) c.u.destroy();
    charts.delete(fig);
    const canvas = fig.querySelector(".chart-canvas");
    if (canvas) canvas.replaceChildren();
  }

  // 24-hour local-time axis labels (uPlot's defaults are 12-hour).
  // [min tick incr, default, year, month, day, hour, min, sec, mode]
  const AXIS_STAMPS = [
    [3600 * 24 * 365, "{YYYY}", null, null, null, null, null, null, 1],
    [3600 * 24 * 28, "{MMM}", "\n{YYYY}", null, null, null, null, null, 1],
    [3600 * 24, "{MM}-{DD}", "\n{YYYY}", null, null, null, null, null, 1],
    [3600, "{HH}:{mm}", "\n{YYYY}-{MM}-{DD}", null, "\n{MM}-{DD}", null, null, null, 1],
    [60, "{HH}:{mm}", "\n{YYYY}-{MM}-{DD}", null, "\n{MM}-{DD}", null, null, null, 1],
    [1, ":{ss}", "\n{MM}-{DD} {HH}:{mm}", null, "\n{MM}-{DD} {HH}:{mm}", null, "\n{HH}:{mm}", null, 1],
  ];

  function drawChart(fig) {
    const canvas = fig.querySelector(".chart-canvas");
    const script = fig.querySelector("script.chart-data");
    if (!canvas || !script) return;
    const json = script.textContent;
    const prev = charts.get(fig);
    if (prev && prev.json === json) return; // already drawn from this data
    destroyChart(fig);

    const d = readChartData(fig);
    if (!d) {
      setEmpty(fig, false);
      showTableInstead(fig);
      return;
    }
    if (countPoints(d) < 2) {
      setEmpty(fig, true);
      charts.set(fig, { u: null, ro: null, json });
      return;
    }
    setEmpty(fig, false);
    if (typeof window.uPlot !== "function") {
      showTableInstead(fig);
      return;
    }

    const cap = fig.querySelector(":scope > figcaption");
    if (cap && !cap.textContent.trim() && d.title) cap.textContent = d.title;

    const color = (name, fallback) => cssVar(fig, name, fallback);
    const axisColor = color("--chart-axis", "#59636e");
    const gridColor = color("--chart-grid", "#e4e8ec");
    const font = `12px ${cssVar(root, "--font-sans", "system-ui, sans-serif")}`;
    const unit = d.unit;
    const markerColor = (kind) => color(MARKER_VARS[kind] || "--chart-marker-other", "#6e7781");

    let observedSeen = 0;
    const seriesOpts = d.series.map((s) => {
      const common = {
        label: s.label,
        scale: "y",
        spanGaps: false,
        value: (u, v) => withUnit(fmtNum(v), v == null ? "" : unit),
      };
      if (s.kind === "threshold") {
        return { ...common, stroke: color("--chart-threshold", "#cf222e"), width: 1.5, dash: [7, 5], points: { show: false } };
      }
      if (s.kind === "stable") {
        // the stable version over the same minutes, next to the canary's line
        const c = color("--chart-observed-2", "#8250df");
        return { ...common, stroke: c, width: 2, points: { show: d.x.length <= 400, size: 4, width: 1, fill: c, stroke: c } };
      }
      if (s.kind === "baseline") {
        return { ...common, stroke: color("--chart-baseline", "#6e7781"), width: 2, dash: [1, 5], cap: "round", points: { show: false } };
      }
      // observed, and any kind this file does not know: solid with points
      const c = observedSeen++ === 0 ? color("--chart-observed", "#0969da") : color("--chart-observed-2", "#8250df");
      return {
        ...common,
        stroke: c,
        width: 2,
        points: { show: d.x.length <= 400, size: 5, width: 1.5, fill: c, stroke: c },
      };
    });

    const xMin = Math.min(d.x[0], ...(d.markers.length ? [d.markers[0].at] : []));
    const xMax = Math.max(d.x[d.x.length - 1], ...(d.markers.length ? [d.markers[d.markers.length - 1].at] : []));

    const tip = document.createElement("div");
    tip.className = "chart-tip";
    tip.hidden = true;

    const heightOf = () => {
      const h = parseFloat(cssVar(fig, "--chart-height", "240"));
      return Number.isFinite(h) && h > 80 ? h : 240;
    };
    const widthOf = () => Math.max(200, Math.floor(canvas.clientWidth || fig.clientWidth || 600));

    const opts = {
      width: widthOf(),
      height: heightOf(),
      pxAlign: 1,
      cursor: { drag: { x: false, y: false }, points: { size: 7 } },
      legend: {
        live: true,
        // legend swatches drawn as short lines in the series' own style
        markers: {
          width: 3,
          dash: (u, i) => {
            const kind = i > 0 ? d.series[i - 1].kind : "";
            return kind === "threshold" ? "dashed" : kind === "baseline" ? "dotted" : "solid";
          },
        },
      },
      scales: {
        x: { time: true, range: () => (xMin === xMax ? [xMin - 60, xMax + 60] : [xMin, xMax]) },
        y: {
          range: (u, min, max) => {
            if (min == null || max == null) return [0, 1];
            let [lo, hi] = window.uPlot.rangeNum(min, max, 0.1, true);
            if (min >= 0 && lo < 0) lo = 0;
            if (hi === lo) hi = lo + 1;
            return [lo, hi];
          },
        },
      },
      axes: [
        {
          stroke: axisColor,
          font,
          grid: { stroke: gridColor, width: 1 },
          ticks: { stroke: gridColor, width: 1 },
          values: AXIS_STAMPS,
        },
        {
          stroke: axisColor,
          font,
          grid: { stroke: gridColor, width: 1 },
          ticks: { stroke: gridColor, width: 1 },
          values: (u, splits) => splits.map((v) => withUnit(fmtNum(v), unit)),
          size: (u, values) => {
            if (!values || !values.length) return 56;
            const longest = Math.max(...values.map((s) => String(s).length));
            // room for the value, and for half of the first time label below it
            return Math.max(56, Math.ceil(longest * 7.2 + 18));
          },
        },
      ],
      series: [
        { label: "time", value: (u, ts) => (ts == null ? "\u2014" : formatLocal(new Date(ts * 1000), false)) },
        ...seriesOpts,
      ],
      hooks: {
        draw: [
          (u) => {
            const ctx = u.ctx;
            const { left, top, width, height } = u.bbox;
            const r = window.devicePixelRatio || 1;
            for (const m of d.markers) {
              const x = Math.round(u.valToPos(m.at, "x", true));
              if (x < left - 1 || x > left + width + 1) continue;
              ctx.save();
              ctx.strokeStyle = markerColor(m.kind);
              ctx.fillStyle = ctx.strokeStyle;
              ctx.lineWidth = (m.kind === "rollback" ? 3 : m.kind === "breach" ? 2 : 1.5) * r;
              ctx.setLineDash(m.kind === "breach" ? [5 * r, 3 * r] : []);
              ctx.beginPath();
              ctx.moveTo(x, top);
              ctx.lineTo(x, top + height);
              ctx.stroke();
              // a small flag at the top, so markers read as events
              const f = 5 * r;
              ctx.setLineDash([]);
              ctx.beginPath();
              ctx.moveTo(x - f, top);
              ctx.lineTo(x + f, top);
              ctx.lineTo(x, top + f * 1.4);
              ctx.closePath();
              ctx.fill();
              ctx.restore();
            }
          },
        ],
        setCursor: [
          (u) => {
            const left = u.cursor.left;
            if (left == null || left < 0 || !d.markers.length) {
              tip.hidden = true;
              return;
            }
            let best = null;
            let bestDist = 8; // css px
            for (const m of d.markers) {
              const pos = u.valToPos(m.at, "x");
              const dist = Math.abs(pos - left);
              if (dist <= bestDist) {
                best = { m, pos };
                bestDist = dist;
              }
            }
            if (!best) {
              tip.hidden = true;
              return;
            }
            tip.textContent = `${best.m.label} \u00b7 ${formatLocal(new Date(best.m.at * 1000), false)}`;
            const overW = u.over.clientWidth;
            tip.style.left = `${Math.min(Math.max(best.pos, 60), Math.max(60, overW - 60))}px`;
            tip.style.top = "4px";
            tip.hidden = false;
          },
        ],
      },
    };

    const data = [d.x, ...d.series.map((s) => s.values)];
    let u;
    try {
      u = new window.uPlot(opts, data, canvas);
    } catch (e) {
      console.warn("rollgate: chart failed", fig, e);
      canvas.replaceChildren();
      showTableInstead(fig);
      return;
    }
    u.over.appendChild(tip);
    u.over.addEventListener("mouseleave", () => { tip.hidden = true; });
    const cv = u.root.querySelector("canvas");
    if (cv) {
      cv.setAttribute("role", "img");
      cv.setAttribute("aria-label", `${d.title || "chart"}; the data is in the table below`);
    }

    if (d.markers.length) {
      const list = document.createElement("ul");
      list.className = "chart-markers";
      list.setAttribute("aria-label", "events");
      for (const m of d.markers) {
        const li = document.createElement("li");
        li.className = `kind-${m.kind}`;
        const sw = document.createElement("span");
        sw.className = "swatch";
        sw.style.setProperty("--c", markerColor(m.kind));
        if (m.kind === "breach") sw.style.borderLeftStyle = "dashed";
        const t = document.createElement("span");
        t.textContent = `${formatLocal(new Date(m.at * 1000), false).slice(5, 16)} ${m.label}`;
        li.append(sw, t);
        list.appendChild(li);
      }
      canvas.appendChild(list);
    }

    // Close a table the server rendered open for readers without JS,
    // unless this reader opened it on an earlier refresh.
    const details = fig.querySelector("details.chart-table");
    if (details && details.hasAttribute("open") && !(fig.id && tablesOpened.has(fig.id))) {
      details.dataset.autoClosed = "1";
      details.open = false;
    } else if (details && fig.id && tablesOpened.has(fig.id)) {
      details.open = true;
    }

    let lastW = widthOf();
    let ro = null;
    if (typeof ResizeObserver === "function") {
      let frame = 0;
      ro = new ResizeObserver(() => {
        cancelAnimationFrame(frame);
        frame = requestAnimationFrame(() => {
          const w = widthOf();
          const h = heightOf();
          if (w !== lastW || h !== u.height) {
            lastW = w;
            u.setSize({ width: w, height: h });
          }
        });
      });
      ro.observe(canvas);
    }
    charts.set(fig, { u, ro, json });
  }

  function drawCharts(scope) {
    for (const [fig] of charts) {
      if (!fig.isConnected) destroyChart(fig);
    }
    for (const fig of scope.querySelectorAll("figure.chart")) {
      try {
        drawChart(fig);
      } catch (e) {
        console.warn("rollgate: chart failed", fig, e);
        showTableInstead(fig);
      }
    }
  }

  function redrawAllCharts() {
    for (const [fig] of Array.from(charts)) destroyChart(fig);
    drawCharts(document);
  }

  document.addEventListener(
    "toggle",
    (e) => {
      const details = e.target;
      if (!(details instanceof HTMLDetailsElement) || !details.classList.contains("chart-table")) return;
      const fig = details.closest("figure.chart");
      if (!fig || !fig.id) return;
      if (details.open) tablesOpened.add(fig.id);
      else tablesOpened.delete(fig.id);
    },
    true,
  );

  /* ------------------------------------------------------------ confirm */

  document.addEventListener(
    "submit",
    (e) => {
      const form = e.target;
      if (!(form instanceof HTMLFormElement)) return;
      const by = e.submitter && e.submitter.dataset ? e.submitter.dataset.confirm : undefined;
      const question = by || form.dataset.confirm;
      if (!question) return;
      if (!window.confirm(question)) {
        e.preventDefault();
        e.stopImmediatePropagation();
      }
    },
    true,
  );

  /* -------------------------------------------------------------- theme */

  const darkQuery = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

  function storedTheme() {
    try {
      const t = localStorage.getItem(THEME_KEY);
      return t === "dark" || t === "light" ? t : null;
    } catch (_) {
      return null;
    }
  }

  function currentTheme() {
    const t = root.getAttribute("data-theme");
    if (t === "dark" || t === "light") return t;
    return darkQuery && darkQuery.matches ? "dark" : "light";
  }

  function syncToggle() {
    const btn = document.getElementById("theme-toggle");
    if (!btn) return;
    const dark = currentTheme() === "dark";
    btn.setAttribute("aria-pressed", String(dark));
    btn.title = dark ? "Switch to light theme" : "Switch to dark theme";
    // An empty button (or one marked data-autolabel) gets a label that follows the theme.
    if (!btn.textContent.trim()) btn.dataset.autolabel = "";
    if (btn.dataset.autolabel !== undefined) btn.textContent = dark ? "\u263E Dark" : "\u2600 Light";
  }

  function setTheme(t, remember) {
    const before = currentTheme();
    root.setAttribute("data-theme", t);
    if (remember) {
      try {
        localStorage.setItem(THEME_KEY, t);
      } catch (_) {
        /* private mode: the choice lasts for this page only */
      }
    }
    syncToggle();
    if (currentTheme() !== before) redrawAllCharts();
  }

  const saved = storedTheme();
  if (saved && root.getAttribute("data-theme") !== saved) root.setAttribute("data-theme", saved);

  document.addEventListener("click", (e) => {
    const btn = e.target instanceof Element ? e.target.closest("#theme-toggle") : null;
    if (!btn) return;
    e.preventDefault();
    setTheme(currentTheme() === "dark" ? "light" : "dark", true);
  });

  if (darkQuery) {
    const onOsChange = () => {
      if (!root.hasAttribute("data-theme")) redrawAllCharts();
      syncToggle();
    };
    if (darkQuery.addEventListener) darkQuery.addEventListener("change", onOsChange);
    else if (darkQuery.addListener) darkQuery.addListener(onOsChange);
  }

  window.addEventListener("storage", (e) => {
    if (e.key === THEME_KEY && (e.newValue === "dark" || e.newValue === "light")) setTheme(e.newValue, false);
  });

  /* ------------------------------------------------------- run & re-run */

  function enhance(scope) {
    const s = scope && scope.querySelectorAll ? scope : document;
    localizeTimes(s);
    drawCharts(s);
    syncToggle();
  }

  // htmx: new content arrives with htmx:load (per new element) and
  // htmx:afterSwap; one pass over the document after each burst.
  let queued = false;
  function enhanceSoon() {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      enhance(document);
    });
  }
  document.addEventListener("htmx:load", enhanceSoon);
  document.addEventListener("htmx:afterSwap", enhanceSoon);
  document.addEventListener("htmx:afterSettle", enhanceSoon);

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => enhance(document), { once: true });
  } else {
    enhance(document);
  }

  // A small surface for tests and the console.
  window.rollgate = Object.freeze({ enhance, formatLocal, parseRfc3339, redrawAllCharts });
})();
