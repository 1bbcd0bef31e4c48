// traincost's page: the form <-> the address bar <-> /api/compare, a table, an SVG chart of time against cost
// and the heaviest layers of one GPU. Hand-written, no library: everything the page needs ships with it.
"use strict";

const DEFAULTS = {model: "resnet50", gpus: "A100,H100 SXM,L4", batch_size: "64"};
// Form fields that are query parameters of /api/compare under the same name (defaults left out of the URL).
const FIELDS = ["model", "input_shape", "batch_size", "precision", "optimizer", "channels_last", "epochs",
  "dataset_size", "num_gpus", "nodes", "network", "provider", "sort"];
const OMIT = {precision: "fp32", optimizer: "sgd", channels_last: "false", sort: "time"};
const PAGE_ONLY = ["layers"];        // state of the page alone: the GPU whose layers are shown
const LAYER_ROWS = 12;
const SHOWN_PRICES = 3;

const state = {families: {}, catalog: [], chosen: [], spec: null, familyValues: {}, rows: null, seq: 0,
  layers: null, timer: null};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "cls") node.setAttribute("class", v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined && c !== false) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// ---------------------------------------------------------------------------------------------- formats
function num(x, digits = 0) {
  return Number(x).toLocaleString("en-US", {minimumFractionDigits: digits, maximumFractionDigits: digits});
}
function ms(x) { return x >= 100 ? num(x, 0) : x >= 10 ? num(x, 1) : num(x, 2); }
function duration(s) {
  if (s === null || s === undefined) return "-";
  if (s < 120) return num(s, 1) + " s";
  if (s < 2 * 3600) return num(s / 60, 1) + " min";
  if (s < 72 * 3600) return num(s / 3600, 1) + " h";
  return num(s / 86400, 1) + " d";
}
function usd(x) {
  if (x === null || x === undefined) return "-";
  if (x === 0) return "$0";
  return x >= 100 ? "$" + num(x, 0) : x >= 1 ? "$" + num(x, 2) : "$" + String(Number(x.toPrecision(2)));
}
function si(x, unit = "", base = 1000) {
  const p = ["", "K", "M", "G", "T", "P", "E"];
  let i = 0;
  while (Math.abs(x) >= base && i < p.length - 1) { x /= base; i++; }
  return i ? `${x.toFixed(2)} ${p[i]}${base === 1024 ? "i" : ""}${unit}` : `${Math.round(x)} ${unit}`.trim();
}
const gib = (b) => si(b, "B", 1024);

// ---------------------------------------------------------------------------------------------- the form
function familyOf(name) { return state.families[(name || "").trim()] || null; }

function renderFamilyFields() {
  const fam = familyOf($("model").value);
  const box = $("family-params");
  box.replaceChildren();
  $("family-doc").textContent = fam ? fam.doc : "";
  if (!fam) return;
  for (const p of fam.params) {
    const id = "param-" + p.name;
    const shown = Array.isArray(p.default) ? p.default.join(",") : String(p.default);
    const input = el("input", {id, name: p.name, placeholder: shown, spellcheck: "false", title: p.help,
      inputmode: p.kind === "int" ? "numeric" : null});
    input.value = state.familyValues[p.name] || "";
    input.addEventListener("input", () => { state.familyValues[p.name] = input.value.trim(); later(); });
    box.append(el("div", {cls: "field", "data-field": p.name},
      el("label", {for: id}, p.name.replaceAll("_", " "), " ", el("small", {text: p.help})),
      input, el("p", {cls: "error", id: p.name + "-error", role: "alert"})));
  }
}

function renderChips() {
  const box = $("gpu-chips");
  box.replaceChildren(...state.chosen.map((name) => el("span", {cls: "chip"}, name,
    el("button", {type: "button", "aria-label": "remove " + name, "data-gpu": name, text: "×"}))));
  if (!state.chosen.length) box.append(el("span", {cls: "hint", text: "no GPU chosen: tick some below"}));
  for (const box of $("gpu-list").querySelectorAll("input")) box.checked = state.chosen.includes(box.value);
}

function renderCatalog() {
  const words = $("gpu-filter").value.toLowerCase().split(/\s+/).filter(Boolean);
  const list = $("gpu-list");
  list.replaceChildren();
  for (const g of state.catalog) {
    const text = `${g.name} ${g.memory_gb} GB ${g.key}`.toLowerCase();
    if (!words.every((w) => text.includes(w))) continue;
    const price = g.cheapest ? ` · from $${g.cheapest.usd_per_gpu_hour.toFixed(2)}/h` : "";
    const box = el("input", {type: "checkbox", value: g.name});
    box.checked = state.chosen.includes(g.name);
    list.append(el("label", {cls: "gpu"}, box, " ", el("span", {cls: "gpu-name", text: g.name}),
      el("small", {text: ` ${g.memory_gb} GB${price}${g.profile === "calibrated" ? " · calibrated" : ""}`})));
  }
  if (!list.children.length) list.append(el("p", {cls: "hint", text: "no GPU matches; Enter adds the text as a name"}));
}

function formParams() {
  const q = new URLSearchParams();
  for (const name of FIELDS) {
    const input = $(name);
    let value = input.type === "checkbox" ? String(input.checked) : input.value.trim();
    if (name === "model" && state.spec) continue;
    if (value === "" || OMIT[name] === value) continue;
    q.set(name, value);
  }
  if (state.spec) q.set("spec", state.spec);
  const fam = state.spec ? null : familyOf($("model").value);
  if (fam) {
    for (const p of fam.params) if (state.familyValues[p.name]) q.set(p.name, state.familyValues[p.name]);
  }
  q.set("gpus", state.chosen.join(","));
  // keep "gpus" right after "model" for a readable address
  const out = new URLSearchParams();
  for (const k of ["model", "spec", "gpus"]) if (q.has(k)) out.set(k, q.get(k));
  for (const [k, v] of q) if (!out.has(k)) out.set(k, v);
  return out;
}

function fillForm(q) {
  const given = [...q.keys()].some((k) => !PAGE_ONLY.includes(k));
  const get = (k) => (q.has(k) ? q.get(k) : (given ? "" : (DEFAULTS[k] || "")));
  for (const name of FIELDS) {
    const input = $(name);
    if (input.type === "checkbox") input.checked = ["true", "1", "yes", "on"].includes(get(name).toLowerCase());
    else if (input.tagName === "SELECT") input.value = get(name) || input.options[0].value;
    else input.value = get(name);
  }
  state.spec = q.get("spec") || null;
  state.chosen = get("gpus").split(",").map((s) => s.trim()).filter(Boolean);
  state.familyValues = {};
  for (const fam of Object.values(state.families)) {
    for (const p of fam.params) if (q.has(p.name)) state.familyValues[p.name] = q.get(p.name);
  }
  state.layers = q.get("layers");
  showSpec();
  renderFamilyFields();
  renderChips();
}

function showSpec() {
  const on = Boolean(state.spec);
  $("model").disabled = on;
  $("spec-label").hidden = !on;
  $("spec-clear").hidden = !on;
  if (on) {
    let label = "a spec";
    try { label = JSON.parse(state.spec).model; } catch (e) { /* shown as is: the server says what is wrong */ }
    $("spec-label").textContent = "using the uploaded spec: " + label;
  }
}

// ---------------------------------------------------------------------------------------------- errors
function clearErrors() {
  for (const p of document.querySelectorAll(".error")) p.textContent = "";
  for (const f of document.querySelectorAll(".field.invalid")) f.classList.remove("invalid");
  for (const i of document.querySelectorAll("[aria-invalid]")) i.removeAttribute("aria-invalid");
}

function showError(message, field) {
  const name = field === "device" ? "gpus" : field;
  const box = name ? document.querySelector(`.field[data-field="${CSS.escape(name)}"]`) : null;
  if (box) {
    box.classList.add("invalid");
    box.querySelector(".error").textContent = message;
    const input = box.querySelector("input, select");
    if (input) input.setAttribute("aria-invalid", "true");
    $("form-error").textContent = "Fix the field marked in the form: " + message;
  } else {
    $("form-error").textContent = message;
  }
}

// ---------------------------------------------------------------------------------------------- running
function later() {
  clearTimeout(state.timer);
  state.timer = setTimeout(run, 450);
}

async function run() {
  clearTimeout(state.timer);
  const q = formParams();
  const page = new URLSearchParams(q);
  if (state.layers) page.set("layers", state.layers);
  history.replaceState(null, "", "?" + page.toString());
  const seq = ++state.seq;
  $("status").textContent = "Predicting...";
  $("results").setAttribute("aria-busy", "true");
  let response, body;
  try {
    response = await fetch("/api/compare?" + q.toString());
    body = await response.json();
  } catch (e) {
    body = {error: "no answer from the server: " + e.message};
  }
  if (seq !== state.seq) return;       // a newer question is on its way
  $("results").removeAttribute("aria-busy");
  clearErrors();
  if (!response || !response.ok) {
    $("status").textContent = "";
    showError(body.error || ("HTTP " + (response && response.status)), body.field);
    $("output").classList.add("stale");
    return;
  }
  $("output").classList.remove("stale");
  state.rows = body;
  render(body);
}

// ---------------------------------------------------------------------------------------------- results
function render(rows) {
  $("output").hidden = false;
  const e0 = rows[0];
  const isRun = e0.total_s !== null;
  $("status").textContent = `${rows.length} GPU${rows.length > 1 ? "s" : ""} compared`;
  const gpus = e0.gpus > 1 ? ` · ${e0.gpus} GPUs${e0.nodes > 1 ? " on " + e0.nodes + " nodes" : ""} (DDP)` : "";
  $("head").textContent = e0.model;
  $("subhead").textContent = `batch ${e0.batch_size}${e0.gpus > 1 ? " per GPU" : ""}${gpus} · ${e0.precision}` +
    `${e0.channels_last ? " · channels_last" : ""} · ${e0.optimizer}` +
    (isRun ? ` · ${e0.epochs} epoch${e0.epochs === 1 ? "" : "s"} of ${num(e0.dataset_size)} samples` : "");
  renderTable(rows, isRun);
  renderChart(rows, isRun);
  const names = rows.map((r) => r.device.name);
  const chosen = names.includes(state.layers) ? state.layers : names[0];
  $("layers-gpu").replaceChildren(...names.map((n) => el("option", {value: n, text: n})));
  $("layers-gpu").value = chosen;
  renderLayers(rows.find((r) => r.device.name === chosen));
  const providers = [...new Set(rows.flatMap((r) => r.prices.map((p) => p.provider)))].sort();
  $("provider-names").replaceChildren(...providers.map((p) => el("option", {value: p})));
}

function renderTable(rows, isRun) {
  const heads = ["#", "GPU", "step ms (80% interval)", "samples/s"]
    .concat(isRun ? ["epoch", "total"] : [])
    .concat(["peak memory / GPU", isRun ? "run cost per provider (price date)" : "$/1M samples per provider (price date)"]);
  const numeric = new Set(["#", "step ms (80% interval)", "samples/s", "epoch", "total"]);
  $("compare-table").tHead.replaceChildren(el("tr", {}, heads.map((h) => el("th", {cls: numeric.has(h) ? "num" : null, text: h}))));
  const body = $("compare-table").tBodies[0];
  body.replaceChildren();
  rows.forEach((r, i) => {
    const step = el("td", {cls: "num"}, el("strong", {text: ms(r.iteration_ms)}),
      r.interval ? el("small", {cls: "interval", text: ` ${ms(r.interval.low_ms)}–${ms(r.interval.high_ms)}`}) : null);
    const cells = [
      el("td", {cls: "num"}, String(i + 1), r.pareto ? el("span", {cls: "star", title: "on the Pareto front", text: " ★"}) : null),
      el("td", {cls: "gpu-cell"}, el("span", {text: r.device.name.replace(/ \((datasheet|calibrated)\)$/, "")}),
        el("small", {cls: "badge " + r.device.profile_source, text: r.device.profile_source})),
      step,
      el("td", {cls: "num", text: num(r.samples_per_s)}),
    ];
    if (isRun) cells.push(el("td", {cls: "num", text: duration(r.epoch_s)}), el("td", {cls: "num", text: duration(r.total_s)}));
    cells.push(memoryCell(r), costCell(r, isRun));
    cells.forEach((td, j) => td.setAttribute("data-label", heads[j]));
    body.append(el("tr", {"data-device": r.device.name, cls: (r.fits ? "" : "nofit") + (r.pareto ? " pareto" : "")}, cells));
  });
  const datasheet = rows.some((r) => r.device.profile_source === "datasheet");
  const table = e => (e.price_table || {}).newest_date;
  $("table-notes").textContent = "★ Pareto front: no other GPU and provider is both faster and cheaper. " +
    (isRun ? "" : "Give a dataset size for the run's time and dollars. ") +
    (datasheet ? "Datasheet profiles (GPUs never measured) are less certain than calibrated ones. " : "") +
    (table(rows[0]) ? `Prices: on-demand, each provider's newest (table up to ${table(rows[0])}).` : "");
}

function memoryCell(r) {
  const used = r.peak_memory_bytes + r.context_bytes;
  const share = Math.min(1, used / r.device_memory_bytes);
  const bar = el("span", {cls: "bar"}, el("span", {cls: "fill"}));
  bar.firstChild.style.width = (100 * share).toFixed(1) + "%";
  const text = `${gib(r.peak_memory_bytes)} / ${gib(r.device_memory_bytes)}`;
  const fits = r.fits ? el("small", {text: ` max batch ${r.max_batch_size_exact ? "" : "≈"}${num(r.max_batch_size)}`})
    : el("small", {cls: "warn", text: ` does not fit (max batch ${r.max_batch_size})`});
  return el("td", {cls: "mem" + (r.fits ? "" : " over")}, bar, el("span", {text}), fits);
}

function costCell(r, isRun) {
  const ranked = [...r.ranking].sort((a, b) => a.rank - b.rank).filter((c) => c.provider !== null);
  if (!ranked.length) return el("td", {cls: "cost", text: "no price"});
  const item = (c) => el("li", {cls: c.pareto ? "pareto" : null},
    el("strong", {text: isRun ? usd(c.usd) : usd(c.usd_per_million_samples)}), " ",
    el("span", {text: c.provider, title: `${usd(c.usd_per_gpu_hour)} per GPU-hour, price of ${c.price_date}`}), " ",
    el("small", {text: c.price_date}),
    c.pareto ? el("span", {cls: "star", title: "on the Pareto front", text: " ★"}) : null);
  const list = el("ul", {cls: "prices"}, ranked.slice(0, SHOWN_PRICES).map(item));
  const cell = el("td", {cls: "cost"}, list);
  if (ranked.length > SHOWN_PRICES) {
    cell.append(el("details", {}, el("summary", {text: `${ranked.length - SHOWN_PRICES} more`}),
      el("ul", {cls: "prices"}, ranked.slice(SHOWN_PRICES).map(item))));
  }
  return cell;
}

function renderLayers(r) {
  const body = $("layers-table").tBodies[0];
  body.replaceChildren(...r.breakdown.slice(0, LAYER_ROWS).map((row) => el("tr", {},
    el("td", {cls: "module", text: row.module, title: row.module}), el("td", {cls: "num", text: ms(row.ms)}),
    el("td", {cls: "num", text: (100 * row.share).toFixed(1)}), el("td", {text: row.bound}),
    el("td", {cls: "num", text: si(row.flops)}), el("td", {cls: "num", text: gib(row.bytes)}))));
  $("notes").replaceChildren(...r.notes.map((n) => el("li", {text: n})));
}

// ---------------------------------------------------------------------------------------------- the chart
function scale(values, lo, hi) {
  let min = Math.min(...values), max = Math.max(...values);
  const log = min > 0 && max / min > 20;
  if (min === max) { min = min * 0.8; max = max * 1.2 || 1; }
  if (log) {
    const a = Math.log10(min) - 0.08, b = Math.log10(max) + 0.08;
    return {log, at: (v) => lo + (Math.log10(v) - a) / (b - a) * (hi - lo), ticks: logTicks(10 ** a, 10 ** b)};
  }
  const pad = (max - min) * 0.08;
  const a = Math.max(0, min - pad), b = max + pad;
  return {log, at: (v) => lo + (v - a) / (b - a) * (hi - lo), ticks: linearTicks(a, b)};
}
function logTicks(a, b) {
  const out = [];
  for (let e = Math.floor(Math.log10(a)); e <= Math.ceil(Math.log10(b)); e++) {
    for (const m of [1, 2, 5]) { const v = m * 10 ** e; if (v >= a && v <= b) out.push(v); }
  }
  return out;
}
function linearTicks(a, b) {
  const raw = (b - a) / 5, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(a / step) * step; v <= b; v += step) out.push(v);
  return out;
}

function renderChart(rows, isRun) {
  const longest = Math.max(...rows.map((r) => (isRun ? r.total_s : r.iteration_ms / 1e3)));
  const [unit, per] = !isRun ? ["ms", 1e-3] : longest > 5 * 86400 ? ["days", 86400] : longest > 2 * 3600
    ? ["h", 3600] : longest > 120 ? ["min", 60] : ["s", 1];
  const pts = [];
  rows.forEach((r) => r.ranking.forEach((c) => {
    const y = isRun ? c.usd : c.usd_per_million_samples;
    if (y !== null && y !== undefined) pts.push({c, x: (isRun ? c.total_s : c.step_ms / 1e3) / per, y});
  }));
  const box = $("chart");
  box.replaceChildren();
  $("chart-caption").textContent = isRun ? "Run time against run cost, each GPU and provider"
    : "Step time against dollars per million samples, each GPU and provider";
  if (!pts.length) { box.append(el("p", {cls: "hint", text: "No prices for these GPUs: nothing to chart."})); return; }
  const W = Math.max(320, Math.min(720, box.clientWidth || 640)), H = W < 500 ? 300 : 380, L = 62, R = 14, T = 14, B = 44;
  const xs = scale(pts.map((p) => p.x), L, W - R), ys = scale(pts.map((p) => p.y), H - B, T);
  const svg = el("svg:svg", {viewBox: `0 0 ${W} ${H}`, role: "img", cls: "chart",
    "aria-label": "time against cost; the Pareto front in red"});
  for (const v of xs.ticks) {
    const x = xs.at(v);
    svg.append(el("svg:line", {x1: x, x2: x, y1: T, y2: H - B, cls: "grid"}),
      el("svg:text", {x, y: H - B + 16, "text-anchor": "middle", cls: "tick", text: num(v, v < 10 && v % 1 ? 1 : 0)}));
  }
  for (const v of ys.ticks) {
    const y = ys.at(v);
    svg.append(el("svg:line", {x1: L, x2: W - R, y1: y, y2: y, cls: "grid"}),
      el("svg:text", {x: L - 6, y: y + 4, "text-anchor": "end", cls: "tick", text: v >= 10 ? "$" + num(v) : usd(v)}));
  }
  svg.append(el("svg:text", {x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle", cls: "axis",
    text: `${isRun ? "total time" : "step time"} (${unit}${xs.log ? ", log scale" : ""})`}));
  svg.append(el("svg:text", {x: 12, y: (T + H - B) / 2, "text-anchor": "middle", cls: "axis",
    transform: `rotate(-90 12 ${(T + H - B) / 2})`, text: (isRun ? "run cost" : "$ per 1M samples") + (ys.log ? " (log)" : "")}));
  const front = pts.filter((p) => p.c.pareto).sort((a, b) => a.x - b.x);
  if (front.length > 1) {
    svg.append(el("svg:polyline", {cls: "front", points: front.map((p) => `${xs.at(p.x)},${ys.at(p.y)}`).join(" ")}));
  }
  for (const p of [...pts].sort((a, b) => a.c.pareto - b.c.pareto)) {
    const cls = p.c.pareto ? "pt pareto" : p.c.fits ? "pt" : "pt nofit";
    const dot = el("svg:circle", {cx: xs.at(p.x), cy: ys.at(p.y), r: p.c.pareto ? 5.5 : 4, cls});
    dot.append(el("svg:title", {text: `${p.c.device} · ${p.c.provider}: ${isRun ? duration(p.x * per) : ms(p.x) + " ms"}, ` +
      `${usd(p.y)}${p.c.fits ? "" : " (does not fit)"}`}));
    svg.append(dot);
  }
  for (const p of front) {
    const name = p.c.device.replace(/ \((datasheet|calibrated)\)$/, "");
    const x = xs.at(p.x), right = x < W * 0.6;
    svg.append(el("svg:text", {x: x + (right ? 8 : -8), y: ys.at(p.y) - 7, "text-anchor": right ? "start" : "end",
      cls: "label", text: `${name} · ${p.c.provider}`}));
  }
  box.append(svg, el("p", {cls: "legend"}, el("span", {cls: "key pareto"}), " Pareto front ",
    el("span", {cls: "key"}), " other ", el("span", {cls: "key nofit"}), " does not fit"));
}

// ---------------------------------------------------------------------------------------------- wiring
async function uploadSpec(file) {
  clearErrors();
  const text = await file.text();
  const response = await fetch("/api/spec", {method: "POST", body: text, headers: {"Content-Type": "text/plain"}});
  const body = await response.json();
  if (!response.ok) { showError(body.error, "spec"); return; }
  state.spec = JSON.stringify(body.spec);
  $("model").value = "";
  showSpec();
  renderFamilyFields();
  run();
}

function addChosen(name) {
  if (name && !state.chosen.includes(name)) state.chosen.push(name);
  renderChips();
}

function wire() {
  const form = $("form");
  form.addEventListener("submit", (e) => { e.preventDefault(); run(); });
  for (const name of FIELDS) {
    const input = $(name);
    const immediate = input.tagName === "SELECT" || input.type === "checkbox";
    input.addEventListener(immediate ? "change" : "input", immediate ? run : later);
    if (!immediate) input.addEventListener("change", run);
  }
  $("model").addEventListener("input", () => { state.familyValues = {}; renderFamilyFields(); });
  $("gpu-filter").addEventListener("input", renderCatalog);
  $("gpu-filter").addEventListener("keydown", (e) => {
    if (e.key !== "Enter") return;
    e.preventDefault();
    const shown = [...$("gpu-list").querySelectorAll("input")];
    addChosen(shown.length === 1 ? shown[0].value : $("gpu-filter").value.trim());
    $("gpu-filter").value = "";
    renderCatalog();
    run();
  });
  $("gpu-list").addEventListener("change", (e) => {
    const name = e.target.value;
    if (e.target.checked) addChosen(name);
    else { state.chosen = state.chosen.filter((n) => n !== name); renderChips(); }
    later();
  });
  $("gpu-chips").addEventListener("click", (e) => {
    const name = e.target.getAttribute && e.target.getAttribute("data-gpu");
    if (!name) return;
    state.chosen = state.chosen.filter((n) => n !== name);
    renderChips();
    later();
  });
  $("spec-file").addEventListener("change", (e) => { if (e.target.files[0]) uploadSpec(e.target.files[0]); });
  $("spec-clear").addEventListener("click", () => {
    state.spec = null; $("spec-file").value = ""; showSpec(); $("model").focus();
  });
  $("layers-gpu").addEventListener("change", () => {
    state.layers = $("layers-gpu").value;
    renderLayers(state.rows.find((r) => r.device.name === state.layers));
    const page = new URLSearchParams(location.search);
    page.set("layers", state.layers);
    history.replaceState(null, "", "?" + page.toString());
  });
}

async function init() {
  wire();
  let models, catalog;
  try {
    [models, catalog] = await Promise.all([fetch("/api/models").then((r) => r.json()), fetch("/api/gpus").then((r) => r.json())]);
  } catch (e) {
    $("status").textContent = "";
    showError("the server did not answer: " + e.message, null);
    return;
  }
  for (const fam of models.families) state.families[fam.name] = fam;
  state.catalog = catalog;
  const names = [...models.families.map((f) => f.name), ...models.torchvision, ...models.timm];
  $("model-names").replaceChildren(...names.map((n) => el("option", {value: n})));
  fillForm(new URLSearchParams(location.search));
  renderCatalog();
  run();
}

document.addEventListener("DOMContentLoaded", init);
