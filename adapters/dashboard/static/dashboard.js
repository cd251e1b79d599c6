// The course creator's dashboard: plain JavaScript over the JSON API (no build step, no CDN).
// The token is kept in sessionStorage (this tab only) and sent as an Authorization header, never in a URL.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "trm-dashboard-token";
  const state = { modules: [], module: null, report: null, trend: null, me: null };

  // ------------------------------------------------------------------------------------ API
  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  async function api(path, options) {
    const response = await fetch(path, { ...(options || {}), headers: { Authorization: `Bearer ${token()}`,
      Accept: "application/json", ...((options && options.headers) || {}) } });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const error = new Error((body && (body.detail || body.title)) || `HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function say(text, bad) {
    $("status").textContent = text;
    $("status").className = bad ? "bad" : "";
  }

  // ------------------------------------------------------------------------------- formatting
  const pct = (x) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(1)} %`);
  const num = (x, digits) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits === undefined ? 0 : digits));
  const pts = (x) => (x === null || x === undefined ? "–" : `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)} points`);

  function intervalBar(value, low, high) {
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.setAttribute("aria-hidden", "true");
    if (value === null || value === undefined) return bar;
    const range = document.createElement("span");
    range.className = "range";
    range.style.left = `${100 * (low || 0)}%`;
    range.style.width = `${100 * ((high || 0) - (low || 0))}%`;
    const point = document.createElement("span");
    point.className = "point";
    point.style.left = `calc(${100 * value}% - 1px)`;
    bar.append(range, point);
    return bar;
  }

  // A table with a caption and a CSV download of exactly its rows. columns: [{ key, label, format?, num?, cell? }]
  function table(containerId, caption, columns, rows, filename) {
    const container = $(containerId);
    container.innerHTML = "";
    const download = document.createElement("button");
    download.type = "button";
    download.className = "csv secondary";
    download.textContent = `Download “${caption}” as CSV`;
    download.addEventListener("click", () => downloadCsv(filename, columns, rows));
    const t = document.createElement("table");
    const cap = document.createElement("caption");
    cap.textContent = caption;
    t.appendChild(cap);
    const head = t.createTHead().insertRow();
    columns.forEach((c) => { const th = document.createElement("th"); th.scope = "col"; th.textContent = c.label; head.appendChild(th); });
    const body = t.createTBody();
    if (!rows.length) {
      const cell = body.insertRow().insertCell();
      cell.colSpan = columns.length;
      cell.textContent = "Nothing recorded yet.";
    }
    rows.forEach((row) => {
      const tr = body.insertRow();
      columns.forEach((c) => {
        const td = tr.insertCell();
        if (c.num) td.className = "num";
        if (c.cell) c.cell(td, row); else td.textContent = c.format ? c.format(row[c.key], row) : (row[c.key] ?? "–");
      });
    });
    container.append(download, t);
  }

  function csvValue(value) {
    if (value === null || value === undefined) return "";
    const text = typeof value === "object" ? JSON.stringify(value) : String(value);
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  }

  function downloadCsv(filename, columns, rows) {
    const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
    const ordered = [...columns.map((c) => c.key).filter((k) => keys.includes(k)), ...keys.filter((k) => !columns.some((c) => c.key === k))];
    const lines = [ordered.join(","), ...rows.map((r) => ordered.map((k) => csvValue(r[k])).join(","))];
    const blob = new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = filename;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  // ---------------------------------------------------------------------------------- sign in
  async function signIn(value) {
    sessionStorage.setItem(TOKEN_KEY, value);
    try {
      [state.me, state.modules] = await Promise.all([api("/v1/me"), api("/v1/modules")]);
    } catch (error) {
      sessionStorage.removeItem(TOKEN_KEY);
      say(error.status === 401 ? "That token is unknown or revoked." : `Cannot sign in: ${error.message}`, true);
      return;
    }
    document.body.dataset.state = "signed-in";
    $("signin").hidden = true;
    $("session").hidden = false;
    $("who").textContent = `Signed in as ${state.me.name}` + (state.me.courses ? ` (${state.me.courses.join(", ")})` : "");
    renderModules();
    say(`${state.modules.length} module(s). Pick one.`);
  }

  function signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    window.location.reload();
  }

  function renderModules() {
    const list = $("modules");
    list.innerHTML = "";
    state.modules.forEach((m) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = m.title ? `${m.name} — ${m.title}` : m.name;
      button.addEventListener("click", () => openModule(m.name));
      const versions = document.createElement("p");
      versions.className = "versions";
      versions.textContent = `active ${m.active || "–"}${m.canary ? `, canary ${m.canary} (${Math.round(100 * m.canary_share)} %)` : ""}`;
      li.append(button, versions);
      list.appendChild(li);
    });
    $("modules-nav").hidden = false;
  }

  // ----------------------------------------------------------------------------------- report
  function query(extra) {
    const params = new URLSearchParams();
    const course = $("course").value;
    if (course) params.set("course", course);
    if ($("since").value) params.set("since", `${$("since").value}T00:00:00Z`);
    if ($("until").value) params.set("until", `${$("until").value}T23:59:59Z`);
    Object.entries(extra || {}).forEach(([k, v]) => (Array.isArray(v) ? v.forEach((x) => params.append(k, x)) : params.set(k, v)));
    return params.toString();
  }

  async function openModule(name) {
    state.module = state.modules.find((m) => m.name === name);
    document.querySelectorAll("#modules button").forEach((b) => b.setAttribute("aria-current", String(b.textContent.startsWith(name))));
    $("module-title").textContent = name;
    const m = state.module;
    $("module-summary").textContent = `Active version ${m.active || "–"}; published ${m.available.join(", ") || "–"}` +
      (m.canary ? `; canary ${m.canary} for ${Math.round(100 * m.canary_share)} % of learners` : "") +
      (Object.keys(m.pins || {}).length ? `; pinned: ${Object.entries(m.pins).map(([c, v]) => `${c} → ${v}`).join(", ")}` : "");
    $("filters-section").hidden = false;
    // a token limited to courses reports on one of them at a time; any other token may see every course
    $("course").innerHTML = state.me.courses ? "" : '<option value="">All courses</option>';
    (state.me.courses || []).forEach((c) => $("course").add(new Option(c, c)));
    await loadReport(true);
    $("main").focus();
  }

  async function loadReport(firstTime) {
    const name = encodeURIComponent(state.module.name);
    say("Loading…");
    document.body.dataset.state = "loading";
    try {
      const [report, trend] = await Promise.all([
        api(`/v1/modules/${name}/stats?${query()}`),
        api(`/v1/modules/${name}/stats?${query({ by: ["version", $("period").value], sections: "" })}`),
      ]);
      state.report = report;
      state.trend = trend;
    } catch (error) {
      say(error.status === 404 ? "No solves of this module are recorded yet." : `Cannot load the report: ${error.message}`, error.status !== 404);
      document.body.dataset.state = "empty";
      return;
    }
    if (firstTime) {
      const courses = state.me.courses || [...new Set(state.report.groups.map((g) => g.course).filter(Boolean))].sort();
      if (!state.me.courses) courses.forEach((c) => $("course").add(new Option(c, c)));
      $("trial-course").innerHTML = "";
      courses.forEach((c) => $("trial-course").add(new Option(c, c)));
      const versions = [...new Set([...state.module.available, ...state.report.groups.map((g) => g.version)])];
      for (const id of ["baseline", "candidate"]) {
        $(id).innerHTML = "";
        versions.forEach((v) => $(id).add(new Option(v, v)));
      }
      $("baseline").value = state.module.active || versions[0];
      $("candidate").value = state.module.canary || versions.filter((v) => v !== $("baseline").value).pop() || versions[0];
    }
    renderReport();
    say(`Report of ${state.module.name}${$("course").value ? ` in ${$("course").value}` : ""}.`);
    document.body.dataset.state = "report";
  }

  function renderReport() {
    const r = state.report;
    const file = (part) => `${state.module.name}-${part}.csv`;
    $("groups-section").hidden = false;
    table("groups", "Versions by course", [
      { key: "version", label: "Version" }, { key: "course", label: "Course" },
      { key: "solves", label: "Solves", num: true }, { key: "learners", label: "Learners", num: true },
      { key: "verdicts", label: "Verdicts", num: true },
      { key: "accuracy", label: "Accuracy (95 % interval)", cell: (td, g) => {
        td.textContent = `${pct(g.accuracy)} [${pct(g.accuracy_low)} – ${pct(g.accuracy_high)}]`;
        td.appendChild(intervalBar(g.accuracy, g.accuracy_low, g.accuracy_high)); } },
      { key: "ratings", label: "Ratings", num: true }, { key: "rating_mean", label: "Mean rating", num: true, format: (x) => num(x, 2) },
      { key: "latency_p99_ms", label: "Latency p99 (ms)", num: true, format: (x) => num(x, 1) },
    ], r.groups.filter((g) => !g.period), file("groups"));

    $("trend-section").hidden = false;
    const trend = (state.trend.groups || []).filter((g) => g.period).sort((a, b) => String(a.period).localeCompare(String(b.period)));
    drawTrend(trend);
    table("trend", `Accuracy by ${$("period").value}`, [
      { key: "period", label: $("period").value === "day" ? "Day" : "Week" }, { key: "version", label: "Version" },
      { key: "verdicts", label: "Verdicts", num: true },
      { key: "accuracy", label: "Accuracy (95 % interval)", format: (x, g) => `${pct(x)} [${pct(g.accuracy_low)} – ${pct(g.accuracy_high)}]` },
    ], trend, file("trend"));

    $("trial-section").hidden = false;
    $("calibration-section").hidden = false;
    table("calibration", "Expected calibration error by version", [
      { key: "version", label: "Version" }, { key: "verdicts", label: "Verdicts", num: true },
      { key: "ece", label: "Expected calibration error", num: true, format: (x) => pct(x) },
    ], r.calibration || [], file("calibration"));
    table("reliability", "Reliability: confidence against accuracy", [
      { key: "version", label: "Version" },
      { key: "bin_low", label: "Confidence from", num: true, format: (x) => pct(x) },
      { key: "bin_high", label: "to", num: true, format: (x) => pct(x) },
      { key: "verdicts", label: "Verdicts", num: true },
      { key: "mean_confidence", label: "Mean confidence", num: true, format: (x) => pct(x) },
      { key: "accuracy", label: "Accuracy", num: true, format: (x) => pct(x) },
    ], r.reliability || [], file("reliability"));

    $("ratings-section").hidden = false;
    table("ratings", "Ratings by value", [
      { key: "version", label: "Version" }, { key: "course", label: "Course" },
      { key: "value", label: "Rating", num: true }, { key: "count", label: "Count", num: true },
    ], r.ratings || [], file("ratings"));

    $("outcomes-section").hidden = false;
    table("outcomes", "Learner outcomes", [
      { key: "course", label: "Course" }, { key: "asked", label: "Asked the module", format: (x) => (x ? "yes" : "no") },
      { key: "version", label: "Version that answered", format: (x) => x || "–" },
      { key: "learners", label: "Learners", num: true }, { key: "outcomes", label: "Results", num: true },
      { key: "score_mean", label: "Mean score (95 % interval)", format: (x, o) => `${pct(x)} [${pct(o.score_low)} – ${pct(o.score_high)}]` },
      { key: "success_rate", label: "Passed (95 % interval)", format: (x, o) => `${pct(x)} [${pct(o.success_low)} – ${pct(o.success_high)}]` },
    ], r.outcomes || [], file("outcomes"));

    $("failures-section").hidden = false;
    const failures = r.failures || [];
    table("failures", "Failing inputs, most failed first", [
      { key: "version", label: "Version" }, { key: "failures", label: "Failures", num: true },
      { key: "incorrect", label: "Marked incorrect", num: true }, { key: "invalid", label: "Broke the rules", num: true },
      { key: "solves", label: "Asked", num: true }, { key: "input_digest", label: "Input", format: (x) => String(x).slice(0, 12) },
    ], failures, file("failures"));
    drawBoards(failures.slice(0, 12));
  }

  // Accuracy over time: one line per version, its interval as a band (inline SVG, no library).
  function drawTrend(rows) {
    const chart = $("trend-chart");
    chart.innerHTML = "";
    const periods = [...new Set(rows.map((g) => String(g.period)))];
    const versions = [...new Set(rows.map((g) => g.version))];
    if (!periods.length) { chart.textContent = "No verdicts over time yet."; return; }
    const W = 640, H = 220, L = 44, R = 44, T = 10, B = 28;
    const x = (i) => L + (periods.length === 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (periods.length - 1));
    const y = (v) => T + (1 - v) * (H - T - B);
    const colours = ["#1d4ed8", "#b45309", "#047857", "#9d174d", "#4338ca"];
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("role", "img");
    const summary = versions.map((v) => `${v}: ` + rows.filter((g) => g.version === v).map((g) => `${g.period} ${pct(g.accuracy)}`).join(", "));
    svg.setAttribute("aria-label", `Accuracy over time by version. ${summary.join(". ")}`);
    const add = (tag, attrs, text) => { const e = document.createElementNS(ns, tag); Object.entries(attrs).forEach(([k, v]) => e.setAttribute(k, v)); if (text !== undefined) e.textContent = text; svg.appendChild(e); return e; };
    [0, 0.25, 0.5, 0.75, 1].forEach((v) => { add("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#e4e7eb" }); add("text", { x: 4, y: y(v) + 4 }, `${v * 100} %`); });
    periods.forEach((p, i) => { if (periods.length <= 12 || i % Math.ceil(periods.length / 12) === 0) add("text", { x: x(i) - 20, y: H - 8 }, p.slice(0, 10)); });
    versions.forEach((v, k) => {
      const colour = colours[k % colours.length];
      const points = rows.filter((g) => g.version === v && g.accuracy !== null && g.accuracy !== undefined)
        .map((g) => ({ i: periods.indexOf(String(g.period)), g }));
      points.forEach(({ i, g }) => add("line", { x1: x(i), x2: x(i), y1: y(g.accuracy_low), y2: y(g.accuracy_high), stroke: colour, "stroke-width": 6, "stroke-opacity": 0.25 }));
      if (points.length > 1) add("polyline", { points: points.map(({ i, g }) => `${x(i)},${y(g.accuracy)}`).join(" "), fill: "none", stroke: colour, "stroke-width": 2 });
      points.forEach(({ i, g }) => add("circle", { cx: x(i), cy: y(g.accuracy), r: 3.5, fill: colour }));
    });
    chart.appendChild(svg);
    const legend = document.createElement("p");
    legend.className = "legend";
    versions.forEach((v, k) => { const s = document.createElement("span"); s.style.setProperty("--swatch", colours[k % colours.length]); s.textContent = `version ${v}`; legend.appendChild(s); });
    chart.appendChild(legend);
  }

  // Failing inputs drawn as the activities draw their boards (board.js), JSON where the task has no board.
  async function drawBoards(failures) {
    const list = $("boards");
    list.innerHTML = "";
    const withInput = failures.filter((f) => f.input);
    if (!withInput.length) return;
    let drawn = { view: null, boards: [] };
    try {
      drawn = await api(`/v1/modules/${encodeURIComponent(state.module.name)}/boards`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ inputs: withInput.map((f) => f.input) }) });
    } catch (error) { /* shown as JSON below */ }
    withInput.forEach((f, i) => {
      const li = document.createElement("li");
      const label = document.createElement("p");
      label.className = "muted";
      label.textContent = `${f.version}: failed ${f.failures} of ${f.solves} time(s)`;
      li.appendChild(label);
      const board = drawn.boards && drawn.boards[i];
      if (drawn.view && board) {
        const grid = document.createElement("div");
        window.trmBoard.render(grid, drawn.view, board.tokens);
        li.appendChild(grid);
      } else {
        const pre = document.createElement("pre");
        pre.textContent = JSON.stringify(f.input);
        li.appendChild(pre);
      }
      list.appendChild(li);
    });
    document.body.dataset.boards = String(list.querySelectorAll(".trm-board").length);
  }

  // ------------------------------------------------------------------------------------ trial
  const DECISIONS = { "candidate-better": ["better", "The candidate is better"], "candidate-worse": ["worse", "The candidate is worse"],
                      inconclusive: ["inconclusive", "Not decided yet"] };

  async function compare() {
    const params = new URLSearchParams({ baseline: $("baseline").value, candidate: $("candidate").value });
    if ($("trial-course").value) params.set("course", $("trial-course").value);
    const box = $("verdict");
    try {
      const c = await api(`/v1/modules/${encodeURIComponent(state.module.name)}/compare?${params}`);
      const [kind, title] = DECISIONS[c.decision] || ["inconclusive", c.decision];
      box.className = `verdict ${kind}`;
      box.innerHTML = "";
      const strong = document.createElement("strong");
      strong.textContent = title;
      const detail = document.createElement("p");
      detail.textContent = `${c.candidate.version} against ${c.baseline.version}${c.course ? ` in ${c.course}` : ""}` +
        `${c.since ? ` since ${new Date(c.since).toLocaleString()}` : ""}: ` +
        `${pts(c.difference)} accuracy (95 % interval ${pts(c.difference_low)} to ${pts(c.difference_high)}; ` +
        `interval valid under continuous monitoring ${pts(c.sequential_low)} to ${pts(c.sequential_high)}), p = ${num(c.p_value, 3)}.` +
        (c.decision === "inconclusive" && c.verdicts_needed ? ` About ${c.verdicts_needed} more verdicts should decide it.` : "") +
        (c.sample_ratio && c.sample_ratio.mismatch ? " Warning: the learners are not split as the canary says (sample ratio mismatch)." : "") +
        (c.outcome ? ` Learner results: ${pts(c.outcome.difference)} (${pts(c.outcome.low)} to ${pts(c.outcome.high)}).` : "");
      box.append(strong, detail);
      box.hidden = false;
      document.body.dataset.decision = c.decision;
      const evidence = ["baseline", "candidate"].map((side) => ({ arm: side, ...c[side] }));
      table("evidence", "Evidence by arm", [
        { key: "arm", label: "Arm" }, { key: "version", label: "Version" },
        { key: "learners", label: "Learners", num: true }, { key: "solves", label: "Solves", num: true },
        { key: "verdicts", label: "Verdicts", num: true }, { key: "correct", label: "Correct", num: true },
        { key: "accuracy", label: "Accuracy (95 % interval)", format: (x, a) => `${pct(x)} [${pct(a.accuracy_low)} – ${pct(a.accuracy_high)}]` },
      ], evidence, `${state.module.name}-trial.csv`);
      say(`Trial: ${title.toLowerCase()}.`);
    } catch (error) {
      box.hidden = true;
      say(`Cannot compare: ${error.message}`, true);
    }
  }

  // ------------------------------------------------------------------------------------- wiring
  document.addEventListener("DOMContentLoaded", () => {
    $("signin").addEventListener("submit", (event) => { event.preventDefault(); signIn($("token").value.trim()); $("token").value = ""; });
    $("signout").addEventListener("click", signOut);
    $("filters").addEventListener("submit", (event) => { event.preventDefault(); loadReport(false); });
    $("trial").addEventListener("submit", (event) => { event.preventDefault(); compare(); });
    if (token()) signIn(token());
  });
})();
