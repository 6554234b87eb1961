// llmos dashboard charts: small SVG line charts drawn in plain JS (no library, no network).
//
// A chart container is <div class="chart" data-panel="loss" data-run="RUN"></div>
// inside <section id="charts" data-src="/api/runs/RUN/series" data-live="1">.
// Every poll fetches the run's series and redraws; the SVG carries
// data-points (number of points drawn) and each point is a <circle class="pt">
// with data-step / data-value, so tests and people can read exactly what is shown.
"use strict";

(function () {
  const SVGNS = "http://www.w3.org/2000/svg";
  const COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#be185d", "#4b5563"];
  const MAX_CIRCLES = 400;

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVGNS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function fmt(v) {
    if (!isFinite(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
    return Number(v.toPrecision(4)).toString();
  }

  function niceTicks(lo, hi, n) {
    if (hi === lo) { hi = lo + 1; lo = lo - 1; }
    const span = hi - lo;
    const step0 = Math.pow(10, Math.floor(Math.log10(span / n)));
    const err = (n * step0) / span;
    const step = step0 * (err <= 0.15 ? 10 : err <= 0.35 ? 5 : err <= 0.75 ? 2 : 1);
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(t);
    return ticks;
  }

  // series: [{label, xs:[], ys:[]}]
  function draw(container, title, series) {
    const W = 640, H = 250, L = 60, R = 12, T = 36, B = 34;
    container.textContent = "";
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": title }, container);
    let npts = 0;
    const xs = [], ys = [];
    for (const s of series) {
      for (let i = 0; i < s.xs.length; i++) {
        if (isFinite(s.ys[i])) { xs.push(s.xs[i]); ys.push(s.ys[i]); }
      }
    }
    el("text", { x: L, y: 16, class: "chart-title" }, svg).textContent = title;
    if (xs.length === 0) {
      svg.setAttribute("data-points", "0");
      el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "chart-empty" }, svg).textContent = "no points yet";
      return 0;
    }
    let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    if (y0 === y1) { const d = Math.abs(y0) * 0.1 || 1; y0 -= d; y1 += d; }
    const px = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
    const py = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
    const axes = el("g", { class: "axes" }, svg);
    for (const t of niceTicks(y0, y1, 4)) {
      el("line", { x1: L, x2: W - R, y1: py(t), y2: py(t), class: "grid" }, axes);
      el("text", { x: L - 6, y: py(t) + 4, "text-anchor": "end" }, axes).textContent = fmt(t);
    }
    for (const t of niceTicks(x0, x1, 6)) {
      el("text", { x: px(t), y: H - B + 16, "text-anchor": "middle" }, axes).textContent = fmt(t);
    }
    el("text", { x: W - R, y: H - 4, "text-anchor": "end" }, axes).textContent = "step";
    series.forEach((s, k) => {
      const color = COLORS[k % COLORS.length];
      const g = el("g", { class: "series", "data-label": s.label, "data-count": s.xs.length }, svg);
      const pts = [];
      for (let i = 0; i < s.xs.length; i++) if (isFinite(s.ys[i])) pts.push([s.xs[i], s.ys[i]]);
      el("polyline", {
        points: pts.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" "),
        fill: "none", stroke: color, "stroke-width": 1.6,
      }, g);
      if (pts.length <= MAX_CIRCLES) {
        for (const [x, y] of pts) {
          const c = el("circle", { cx: px(x).toFixed(1), cy: py(y).toFixed(1), r: 2.4, fill: color, class: "pt",
            "data-step": x, "data-value": y }, g);
          el("title", {}, c).textContent = `${s.label} step ${x}: ${fmt(y)}`;
        }
      }
      const lx = L + 8 + k * 150;  // legend row under the title
      el("rect", { x: lx, y: 23, width: 10, height: 3, fill: color }, g);
      el("text", { x: lx + 14, y: 28, class: "legend" }, g).textContent = s.short || s.label;
      npts += pts.length;
    });
    svg.setAttribute("data-points", String(npts));
    return npts;
  }

  const PANELS = {
    loss: (n) => n.endsWith("loss"),
    perplexity: (n) => n === "ppl" || n === "perplexity" || n.endsWith("_ppl") || n.endsWith("perplexity"),
    lr: (n) => n === "lr" || n === "learning_rate" || n.endsWith("_lr"),
    throughput: (n) => n.endsWith("_per_s") || n === "throughput",
    // per-request names, and the serve run's 10 s aggregates (latency_s.p95[tiny:2 /v1/completions])
    latency: (n) => n.endsWith("latency_s") || n.endsWith("time_to_first_token_s") ||
      /^(latency_s|time_to_first_token_s)\.(p50|p95|max)\[/.test(n),
    cpu: (n) => n === "cpu_percent" || n === "proc_cpu_percent",
    rss: (n) => n === "proc_rss_bytes",
  };
  const SYSTEM_PANELS = new Set(["cpu", "rss"]);

  function seriesFor(panel, data) {
    const match = PANELS[panel];
    const out = [];
    // one-off values (step null, e.g. a final evaluation) are drawn at the run's last step
    let lastStep = 0;
    for (const s of data.series) {
      if (s.kind === "system") continue;  // a system step is a sample number, not a training step
      for (const st of s.steps) if (st !== null && st > lastStep) lastStep = st;
    }
    for (const s of data.series) {
      const isSystem = s.kind === "system";
      if (SYSTEM_PANELS.has(panel) !== isSystem || s.kind === "stage") continue;
      if (!match(s.name)) continue;
      const pts = s.steps.map((st, i) => [st === null ? lastStep : st, s.timestamps[i] || 0, s.values[i]]);
      pts.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      out.push({ label: `${s.kind}/${s.name}`, xs: pts.map((p) => p[0]), ys: pts.map((p) => p[2]) });
    }
    return out;
  }

  async function refresh(section) {
    const resp = await fetch(section.dataset.src, { cache: "no-store" });
    if (!resp.ok) throw new Error(`GET ${section.dataset.src}: ${resp.status}`);
    const data = await resp.json();
    let total = 0;
    for (const box of section.querySelectorAll(".chart")) {
      const panel = box.dataset.panel;
      const s = seriesFor(panel, data);
      box.hidden = s.length === 0 && box.dataset.optional === "1";
      total += draw(box, box.dataset.title || panel, s);
    }
    section.dataset.total = String(total);
    section.dataset.status = data.run.status || "";
    const status = document.getElementById("run-status");
    if (status) status.textContent = data.run.status || "";
    const stamp = document.getElementById("updated");
    if (stamp) stamp.textContent = new Date().toLocaleTimeString();
    section.dataset.polls = String(Number(section.dataset.polls || "0") + 1);
    return data;
  }

  function start(section) {
    const every = Number(section.dataset.interval || "2000");
    const tick = () => {
      refresh(section).then((data) => {
        const live = section.dataset.live === "1" && (data.run.status === "running" || !data.run.status);
        if (live) setTimeout(tick, every);
      }).catch((err) => {
        const box = document.getElementById("chart-error");
        if (box) { box.hidden = false; box.textContent = String(err); }
        setTimeout(tick, every * 3);
      });
    };
    tick();
  }

  // compare view: the same panels, every run's series overlaid (labels prefixed by run id)
  async function compare(section) {
    const ids = section.dataset.compare.split(",").filter((x) => x);
    const all = await Promise.all(ids.map(async (id) => {
      const resp = await fetch(`/api/runs/${encodeURIComponent(id)}/series`, { cache: "no-store" });
      if (!resp.ok) throw new Error(`GET /api/runs/${id}/series: ${resp.status}`);
      return [id, await resp.json()];
    }));
    let total = 0;
    for (const box of section.querySelectorAll(".chart")) {
      const panel = box.dataset.panel;
      const s = [];
      for (const [id, data] of all) {
        for (const one of seriesFor(panel, data)) {
          s.push({ ...one, label: `${id} ${one.label}`, short: `${id.slice(-6)} ${one.label}` });
        }
      }
      box.hidden = s.length === 0 && box.dataset.optional === "1";
      total += draw(box, box.dataset.title || panel, s);
    }
    section.dataset.total = String(total);
    section.dataset.drawn = "1";
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const section of document.querySelectorAll("section.charts[data-src]")) start(section);
    for (const section of document.querySelectorAll("section.charts[data-compare]")) {
      compare(section).catch((err) => {
        const box = document.getElementById("chart-error");
        if (box) { box.hidden = false; box.textContent = String(err); }
      });
    }
  });
  window.llmosCharts = { draw: draw, refresh: refresh };
})();
