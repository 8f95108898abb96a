// The dashboard: polls the read API (docs/api.md) and draws pools, nodes, GPUs and workers.
// Plain DOM, no dependencies, so the page works offline and needs no build step.
"use strict";

const REFRESH_MS = 2000;
const REQUEST_TIMEOUT_MS = 5000;
// Pools with more GPUs than this start with their nodes folded: a summary line each.
const COLLAPSE_ABOVE_GPUS = 32;
// Nodes listed per pool before a "show all" button, so a large fleet stays responsive.
const NODES_PER_PAGE = 50;
// Relative, so the page works behind a port-forward or a path prefix.
const ENDPOINTS = ["api/pools", "api/gpus", "api/workers"];
const BYTE_UNITS = ["MiB", "GiB", "TiB", "PiB"];
const FIGURES = ["capacity", "virtualCapacity", "allocated", "allocatedLimits"];
const METRICS = [
  { key: "tflops", label: "TFLOPS", format: fmtNumber },
  { key: "vram", label: "VRAM", format: fmtBytes },
];

const state = {
  data: null, // the last good answer: {pools, gpus, workers}
  signature: "", // its JSON, to skip redrawing (and losing the reader's selection) when unchanged
  updatedAt: null,
  open: new Map(), // node key -> whether the reader left it open
  expanded: new Set(), // pools whose whole node list the reader asked for
  filter: "",
};

const collator = new Intl.Collator("en", { numeric: true });
const decimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });

function fmtNumber(value) {
  return decimal.format(Math.round(value * 10) / 10);
}

function fmtBytes(bytes) {
  if (bytes === 0) return "0 GiB";
  let value = bytes / 2 ** 20;
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${fmtNumber(value)} ${BYTE_UNITS[unit]}`;
}

// Where a worker's VRAM lives now: "3 GiB GPU · 1.2 GiB host · 0 disk".
function fmtTiers(tiers) {
  const part = (bytes, where) => `${bytes ? fmtBytes(bytes) : "0"} ${where}`;
  return [part(tiers.device, "GPU"), part(tiers.host, "host"), part(tiers.disk, "disk")].join(" · ");
}

function fmtShare(part, whole) {
  if (whole <= 0) return "–";
  const percent = (100 * part) / whole;
  return percent > 0 && percent < 1 ? "<1%" : `${Math.round(percent)}%`;
}

// Builds an element; strings become text nodes, so API values never become markup.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null && value !== false) {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null && child !== false) node.append(child);
  }
  return node;
}

// ---- data ----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(message, reachable) {
    super(message);
    this.reachable = reachable; // the server answered, with an error
  }
}

async function fetchJson(url) {
  let response;
  try {
    response = await fetch(url, {
      cache: "no-store",
      headers: { Accept: "application/json" },
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (err) {
    const timedOut = err && err.name === "TimeoutError";
    const why = timedOut ? `no answer within ${REQUEST_TIMEOUT_MS / 1000} s` : "connection failed";
    throw new ApiError(`${url}: ${why}`, false);
  }
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const body = await response.json();
      detail = `${body.error}: ${body.message}`;
    } catch {
      // Not our JSON error shape (a proxy's page, say): the status line is all there is.
    }
    throw new ApiError(`${url}: HTTP ${response.status} ${detail}`, true);
  }
  try {
    return await response.json();
  } catch {
    throw new ApiError(`${url}: the answer is not JSON`, true);
  }
}

function listOf(body, key, url) {
  if (!body || !Array.isArray(body[key])) {
    throw new ApiError(`${url}: the answer has no "${key}" list`, true);
  }
  return body[key];
}

function sumFigures(items) {
  const total = {};
  for (const figure of FIGURES) {
    total[figure] = { tflops: 0, vram: 0 };
    for (const item of items) {
      for (const metric of METRICS) {
        total[figure][metric.key] += (item[figure] && item[figure][metric.key]) || 0;
      }
    }
  }
  return total;
}

function workerKey(worker) {
  return `${worker.namespace}/${worker.name}`;
}

// Pools -> nodes -> GPUs, each GPU with the workers on it.
function buildModel({ pools, gpus, workers }) {
  const byKey = new Map(workers.map((worker) => [workerKey(worker), worker]));
  const onGpu = new Map();
  for (const worker of workers) {
    for (const gpu of worker.gpus || []) {
      if (!onGpu.has(gpu)) onGpu.set(gpu, new Map());
      onGpu.get(gpu).set(workerKey(worker), worker);
    }
  }
  const groups = new Map();
  for (const pool of pools) groups.set(pool.name, { pool, gpus: [] });
  for (const gpu of gpus) {
    const name = gpu.pool || "";
    if (!groups.has(name)) groups.set(name, { pool: null, gpus: [] });
    const listed = onGpu.get(gpu.name) || new Map();
    // A pod the API lists on the GPU but not among workers still shows, by name.
    for (const key of gpu.workers || []) {
      if (!listed.has(key)) listed.set(key, byKey.get(key) || { key });
    }
    groups.get(name).gpus.push({ ...gpu, workerList: [...listed.values()] });
  }
  const model = [];
  for (const [name, group] of groups) {
    const pool = group.pool || syntheticPool(name, group.gpus);
    model.push({ pool, nodes: groupByNode(group.gpus) });
  }
  // The default pool first, then by name.
  model.sort(
    (a, b) =>
      Number(!!b.pool.default) - Number(!!a.pool.default) ||
      collator.compare(a.pool.name, b.pool.name),
  );
  const placed = new Set(gpus.map((gpu) => gpu.name));
  const pending = workers.filter(
    (worker) => worker.phase === "Pending" || !(worker.gpus || []).some((g) => placed.has(g)),
  );
  return { pools: model, pending };
}

// GPUs whose pool the API does not list (not yet registered, say) get a pool of their own.
function syntheticPool(name, gpus) {
  const nodes = new Set(gpus.map((gpu) => gpu.node));
  const workers = new Set(gpus.flatMap((gpu) => gpu.workerList.map(workerLabel)));
  return {
    name: name || "(no pool)",
    synthetic: true,
    nodes: nodes.size,
    gpus: gpus.length,
    workers: workers.size,
    ...sumFigures(gpus),
  };
}

function groupByNode(gpus) {
  const nodes = new Map();
  for (const gpu of gpus) {
    if (!nodes.has(gpu.node)) nodes.set(gpu.node, []);
    nodes.get(gpu.node).push(gpu);
  }
  return [...nodes.entries()]
    .sort(([a], [b]) => collator.compare(a, b))
    .map(([name, list]) => ({
      name,
      gpus: list.sort((a, b) => a.index - b.index || collator.compare(a.name, b.name)),
      ...sumFigures(list),
    }));
}

function workerLabel(worker) {
  return worker.key || workerKey(worker);
}

// ---- filter --------------------------------------------------------------------------------

function gpuMatches(gpu, needle) {
  const words = [gpu.name, gpu.model, gpu.uuid, gpu.node, ...gpu.workerList.map(workerLabel)];
  return words.some((word) => String(word || "").toLowerCase().includes(needle));
}

// The nodes to show and, for each, its GPUs to show.
function filterNodes(nodes, needle) {
  if (!needle) return nodes.map((node) => ({ node, gpus: node.gpus }));
  const shown = [];
  for (const node of nodes) {
    const gpus = node.name.toLowerCase().includes(needle)
      ? node.gpus
      : node.gpus.filter((gpu) => gpuMatches(gpu, needle));
    if (gpus.length) shown.push({ node, gpus });
  }
  return shown;
}

// ---- drawing -------------------------------------------------------------------------------

// One metric as a bar spanning the virtual capacity: requests over limits, with the
// physical capacity marked and the oversubscribed range beyond it shaded.
function bar(metric, figures, compact) {
  const get = (figure) => (figures[figure] && figures[figure][metric.key]) || 0;
  const physical = get("capacity");
  const virtual = get("virtualCapacity");
  const requested = get("allocated");
  const limits = get("allocatedLimits");
  const scale = Math.max(virtual, physical, limits, requested);
  const pct = (value) => (scale > 0 ? `${((100 * value) / scale).toFixed(2)}%` : "0%");
  const f = metric.format;
  const hot = requested > physical ? " hot" : "";
  const title =
    `${metric.label}: requested ${f(requested)}, limits ${f(limits)}, ` +
    `physical ${f(physical)}, virtual ${f(virtual)}`;
  const track = el(
    "div",
    { class: "track", title },
    el("div", { class: "over", style: `left:${pct(physical)};width:${pct(scale - physical)}` }),
    el("div", { class: "seg lim", style: `width:${pct(limits)}` }),
    el("div", { class: `seg req${hot}`, style: `width:${pct(requested)}` }),
    el("div", { class: "marker", style: `left:${pct(physical)}` }),
  );
  const figure = (name, value) => el("span", { "data-figure": name }, f(value));
  return el(
    "div",
    { class: compact ? "bar compact" : "bar", "data-metric": metric.key },
    el("span", { class: "bar-label" }, metric.label),
    track,
    el(
      "span",
      { class: "bar-main" },
      figure("requested", requested),
      " / ",
      figure("physical", physical),
      el("span", { class: "share" }, fmtShare(requested, physical)),
    ),
    compact
      ? null
      : el(
          "span",
          { class: "bar-sub" },
          "limits ",
          figure("limits", limits),
          " · virtual ",
          figure("virtual", virtual),
        ),
  );
}

function bars(figures, compact) {
  return el("div", { class: "bars" }, METRICS.map((metric) => bar(metric, figures, compact)));
}

function plural(count, word) {
  return `${fmtNumber(count)} ${word}${count === 1 ? "" : "s"}`;
}

function drawTotals(model) {
  const pools = model.pools.map((entry) => entry.pool);
  const total = sumFigures(pools);
  const count = (entry) => entry.pool.nodes ?? entry.nodes.length;
  const nodes = model.pools.reduce((sum, entry) => sum + count(entry), 0);
  const gpus = model.pools.reduce((sum, entry) => sum + entry.pool.gpus, 0);
  // Pods holding GPUs (the pools count them all, not only this control plane's workers).
  const workers = model.pools.reduce((sum, entry) => sum + entry.pool.workers, 0);
  const waiting = model.pending.length ? `${fmtNumber(model.pending.length)} waiting` : null;
  const tile = (label, value, sub, name) =>
    el(
      "div",
      { class: "tile", "data-total": name },
      el("dt", {}, label),
      el("dd", {}, value, sub ? el("small", {}, sub) : null),
    );
  const tflops = total.allocated.tflops;
  const vram = total.allocated.vram;
  document.getElementById("totals").replaceChildren(
    tile("Pools", fmtNumber(pools.length), null, "pools"),
    tile("Nodes", fmtNumber(nodes), null, "nodes"),
    tile("GPUs", fmtNumber(gpus), null, "gpus"),
    tile("Workers", fmtNumber(workers), waiting, "workers"),
    tile(
      "TFLOPS requested",
      `${fmtNumber(tflops)} / ${fmtNumber(total.capacity.tflops)}`,
      `${fmtShare(tflops, total.capacity.tflops)} of physical`,
      "tflops",
    ),
    tile(
      "VRAM requested",
      `${fmtBytes(vram)} / ${fmtBytes(total.capacity.vram)}`,
      `${fmtShare(vram, total.capacity.vram)} of physical`,
      "vram",
    ),
  );
}

function drawPool(entry) {
  const { pool, nodes } = entry;
  const over = pool.oversubscription;
  const facts = [
    plural(pool.nodes ?? nodes.length, "node"),
    plural(pool.gpus, "GPU"),
    plural(pool.workers, "worker"),
    pool.placementMode,
    over
      ? `TFLOPS limits up to ${over.tflopsOversellRatio}% of physical · VRAM spills to host ` +
        `memory ${over.vramExpandToHostMem}%, to disk ${over.vramExpandToHostDisk}%`
      : null,
  ].filter(Boolean);
  const section = el(
    "section",
    { class: "pool", "data-pool": pool.name },
    el(
      "header",
      { class: "pool-head" },
      el("h2", {}, pool.name),
      pool.default ? el("span", { class: "badge" }, "default") : null,
      pool.synthetic ? el("span", { class: "badge muted" }, "not a registered pool") : null,
      el("span", { class: "facts" }, facts.join(" · ")),
    ),
    bars(pool, false),
  );
  section.append(drawNodes(entry));
  return section;
}

function drawNodes({ pool, nodes }) {
  if (!nodes.length) return el("p", { class: "empty" }, "No GPUs in this pool yet.");
  const shown = filterNodes(nodes, state.filter);
  if (!shown.length) return el("p", { class: "empty" }, "Nothing here matches the filter.");
  const foldByDefault = pool.gpus > COLLAPSE_ABOVE_GPUS && !state.filter;
  const limit = state.expanded.has(pool.name) ? shown.length : NODES_PER_PAGE;
  const list = el(
    "div",
    { class: "nodes" },
    shown.slice(0, limit).map(({ node, gpus }) => drawNode(pool, node, gpus, foldByDefault)),
  );
  if (shown.length > limit) {
    const more = el(
      "button",
      { class: "more", type: "button" },
      `Show all ${fmtNumber(shown.length)} nodes (${fmtNumber(shown.length - limit)} more)`,
    );
    more.addEventListener("click", () => {
      state.expanded.add(pool.name);
      draw();
    });
    list.append(more);
  }
  return list;
}

function drawNode(pool, node, gpus, foldByDefault) {
  const key = `${pool.name}/${node.name}`;
  const open = state.open.has(key) ? state.open.get(key) : !foldByDefault;
  // The summary describes the whole node; the filter only narrows the GPU cards.
  const workers = new Set(node.gpus.flatMap((gpu) => gpu.workerList.map(workerLabel)));
  const models = [...new Set(node.gpus.map((gpu) => gpu.model))].join(", ");
  const narrowed = gpus.length < node.gpus.length ? ` · ${gpus.length} shown` : "";
  const details = el(
    "details",
    { class: "node", "data-node": node.name, open },
    el(
      "summary",
      {},
      el("span", { class: "node-name" }, node.name),
      el(
        "span",
        { class: "facts" },
        `${node.gpus.length} × ${models} · ${plural(workers.size, "worker")}${narrowed}`,
      ),
      bars(node, true),
    ),
  );
  // GPU cards are drawn only for open nodes: a folded fleet of thousands stays light.
  const body = () => el("div", { class: "gpus" }, gpus.map(drawGpu));
  if (open) details.append(body());
  details.addEventListener("toggle", () => {
    state.open.set(key, details.open);
    if (details.open && details.querySelector(".gpus") === null) details.append(body());
  });
  return details;
}

function drawGpu(gpu) {
  const plugin = gpu.usedBy && gpu.usedBy !== "tensor-fusion";
  return el(
    "article",
    { class: plugin ? "gpu plugin" : "gpu", "data-gpu": gpu.name },
    el(
      "header",
      {},
      el("h3", {}, gpu.name),
      el("span", { class: "model" }, gpu.model),
      el("span", { class: "muted", title: gpu.uuid }, `#${gpu.index}`),
      gpu.numaNode === null || gpu.numaNode === undefined
        ? null
        : el("span", { class: "muted" }, `NUMA ${gpu.numaNode}`),
      plugin ? el("span", { class: "badge muted" }, `used by ${gpu.usedBy}`) : null,
    ),
    bars(gpu, false),
    drawWorkers(gpu.workerList),
  );
}

function drawWorkers(workers) {
  if (!workers.length) return el("p", { class: "empty small" }, "No workers.");
  const head = [
    "Worker",
    "TFLOPS req/lim",
    "VRAM req/lim",
    "VRAM used",
    "VRAM tiers",
    "Launches",
    "Throttled",
  ];
  return el(
    "table",
    { class: "workers" },
    el("thead", {}, el("tr", {}, head.map((label) => el("th", {}, label)))),
    el("tbody", {}, workers.map(drawWorker)),
  );
}

// "request / limit" of one metric; a dash for a figure the worker does not have.
function requestAndLimit(worker, metric) {
  const text = (figures) => {
    const value = figures && figures[metric.key];
    return typeof value === "number" ? metric.format(value) : "–";
  };
  return `${text(worker.request)} / ${text(worker.limit)}`;
}

function drawWorker(worker) {
  const label = workerLabel(worker);
  const cut = label.indexOf("/") + 1;
  const phase = worker.phase || "";
  const name = el(
    "td",
    { class: "worker-name", title: (worker.command || []).join(" ") || null },
    el("i", { class: `phase ${phase.toLowerCase()}`, title: phase || "allocation only" }),
    el("span", { class: "namespace" }, label.slice(0, cut)),
    label.slice(cut),
    (worker.gpus || []).length > 1 ? el("small", {}, ` · ${worker.gpus.length} GPUs`) : null,
    phase && phase !== "Running" ? el("small", {}, ` · ${phase}`) : null,
  );
  if (worker.key) {
    // A pod holding part of the GPU that is not a worker of this control plane (a pod of
    // the declared fleet, say): the API gives its name only.
    const note = "allocation only: not a process of this control plane";
    return el("tr", { "data-worker": label }, name, el("td", { class: "muted", colspan: 6 }, note));
  }
  const cells = [name, ...METRICS.map((metric) => el("td", {}, requestAndLimit(worker, metric)))];
  const usage = worker.usage;
  if (usage) {
    // Usage sums the worker's GPUs; its limit is per GPU.
    const perGpu = (worker.limit && worker.limit.vram) || 0;
    const budget = perGpu * Math.max(1, (worker.gpus || []).length);
    const used = budget > 0 ? Math.min(100, (100 * usage.vram) / budget) : 0;
    cells.push(
      el(
        "td",
        { "data-usage": "vram" },
        fmtBytes(usage.vram),
        el("span", { class: "meter" }, el("span", { style: `width:${used.toFixed(1)}%` })),
      ),
      el("td", { "data-usage": "tiers" }, worker.vramTiers ? fmtTiers(worker.vramTiers) : "–"),
      el("td", { "data-usage": "launches" }, fmtNumber(usage.launches)),
      el(
        "td",
        { "data-usage": "throttled", class: usage.throttledLaunches ? "throttled" : null },
        fmtNumber(usage.throttledLaunches),
        el("small", {}, ` ${fmtShare(usage.throttledLaunches, usage.launches)}`),
      ),
    );
  } else {
    const note = "no usage yet";
    cells.push(el("td", { class: "muted", colspan: 4, title: "the agent has not read it" }, note));
  }
  return el("tr", { "data-worker": label }, cells);
}

function drawPending(all) {
  const pending = all.filter((worker) => workerLabel(worker).toLowerCase().includes(state.filter));
  if (!pending.length) return null;
  return el(
    "section",
    { class: "pool pending" },
    el("header", { class: "pool-head" }, el("h2", {}, "Waiting for a GPU")),
    drawWorkers(pending),
  );
}

function draw() {
  const model = buildModel(state.data);
  drawTotals(model);
  const parts = model.pools.map(drawPool);
  if (!parts.length) {
    parts.push(
      el(
        "p",
        { class: "empty big" },
        "No GPUs registered. Start the control plane on a host with NVIDIA GPUs, or give it a " +
          "fleet file: tensor-fusion up --fleet FLEET.yaml",
      ),
    );
  }
  const pending = drawPending(model.pending);
  if (pending) parts.push(pending);
  document.getElementById("content").replaceChildren(...parts);
}

// ---- polling -------------------------------------------------------------------------------

function clock(date) {
  return date.toLocaleTimeString("en-GB", { hour12: false });
}

function showProblem(err) {
  const alert = document.getElementById("alert");
  const status = document.getElementById("status");
  document.body.classList.toggle("stale", !!err && state.data !== null);
  if (!err) {
    alert.hidden = true;
    status.className = "status ok";
    status.textContent = `live · updated ${clock(state.updatedAt)}`;
    return;
  }
  const fromApi = err instanceof ApiError;
  const reachable = !fromApi || err.reachable;
  let headline = "Cannot reach the management API";
  if (!fromApi) headline = "The dashboard could not draw the API's answer";
  else if (reachable) headline = "The management API answered with an error";
  let since = "";
  if (state.data) since = ` Showing data from ${clock(state.updatedAt)}.`;
  else if (!reachable) since = " Is the control plane running (tensor-fusion up)?";
  alert.replaceChildren(
    el("strong", {}, headline),
    el("span", {}, ` — ${err.message}.${since} Retrying every ${REFRESH_MS / 1000} s.`),
  );
  alert.hidden = false;
  status.className = "status down";
  status.textContent = reachable ? "API error" : "API unreachable";
  if (!state.data) {
    const waiting = el("p", { class: "empty big" }, "No data from the management API yet.");
    document.getElementById("content").replaceChildren(waiting);
  }
}

async function refresh() {
  try {
    const [pools, gpus, workers] = await Promise.all(ENDPOINTS.map(fetchJson));
    const data = {
      pools: listOf(pools, "pools", ENDPOINTS[0]),
      gpus: listOf(gpus, "gpus", ENDPOINTS[1]),
      workers: listOf(workers, "workers", ENDPOINTS[2]),
    };
    const signature = JSON.stringify(data);
    state.updatedAt = new Date();
    if (signature !== state.signature) {
      state.data = data;
      draw();
      // Only once drawn: an answer that failed to draw is tried again on the next refresh.
      state.signature = signature;
    }
    showProblem(null);
  } catch (err) {
    showProblem(err);
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

// The filter lives in the address (?filter=...), so a filtered view can be shared.
function setFilter(text, input) {
  state.filter = text.trim().toLowerCase();
  input.value = text;
  const url = new URL(location.href);
  if (state.filter) url.searchParams.set("filter", text);
  else url.searchParams.delete("filter");
  history.replaceState(null, "", url);
  if (state.data) draw();
}

const filterInput = document.getElementById("filter");
filterInput.addEventListener("input", () => setFilter(filterInput.value, filterInput));
setFilter(new URLSearchParams(location.search).get("filter") || "", filterInput);
refresh();
