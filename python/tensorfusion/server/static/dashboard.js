// The dashboard: polls the read API (docs/api.md) and draws pools, nodes, GPUs and workers.
// Plain DOM, no dependencies, so the page works offline and needs no build step.
"use strict";

const REFRESH_MS = 2000;
const REQUEST_TIMEOUT_MS = 5000;
// Pools with more GPUs than this start with their nodes folded: a summary line each.
const COLLAPSE_ABOVE_GPUS = 32;
// Nodes listed per pool before a "show all" button, so a large fleet stays responsive.
const NODES_PER_PAGE = 50;
// Node details are asked for in requests whose address stays within this many characters
// (servers and proxies refuse long request lines, some above 4 KB).
const MAX_URL_LENGTH = 4096;
// How long the filter waits for typing to pause before it asks the server again.
const FILTER_DEBOUNCE_MS = 200;
// GPUs that no pool names are listed under this name (no pool's name can hold a space).
const NO_POOL = "(no pool)";
const BYTE_UNITS = ["MiB", "GiB", "TiB", "PiB"];
const FIGURES = ["capacity", "virtualCapacity", "allocated", "allocatedLimits"];
const METRICS = [
  { key: "tflops", label: "TFLOPS", format: fmtNumber },
  { key: "vram", label: "VRAM", format: fmtBytes },
];

// Relative URLs throughout, so the page works behind a port-forward or a path prefix. The
// folded view reads pools and a page of node summaries; only open nodes' GPUs and workers
// are asked for, and a listing that did not change comes back as 304 with no body.
const state = {
  pools: null, // the last good answer: the pools, and per pool its page of nodes
  pages: new Map(), // pool name -> {nodes, total}
  pending: [], // workers waiting for a GPU
  details: new Map(), // node name -> its GPUs, each with the workers on it
  signature: null, // the answers' ETags, to skip redrawing (and losing the reader's selection)
  updatedAt: null,
  open: new Map(), // node key -> whether the reader left it open
  expanded: new Set(), // pools whose whole node list the reader asked for
  filter: "",
};
// url -> {etag, body}: what each listing answered last, sent back as If-None-Match.
let answers = new Map();

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

// The body of `url`: the one kept from the last answer when the server says it has not
// changed (304), else the new one (kept, with its ETag, in `seen` for the next refresh).
async function fetchJson(url, seen) {
  const known = answers.get(url);
  const headers = { Accept: "application/json" };
  if (known && known.etag) headers["If-None-Match"] = known.etag;
  let response;
  try {
    response = await fetch(url, {
      cache: "no-store",
      headers,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (err) {
    const timedOut = err && err.name === "TimeoutError";
    const why = timedOut ? `no answer within ${REQUEST_TIMEOUT_MS / 1000} s` : "connection failed";
    throw new ApiError(`${url}: ${why}`, false);
  }
  if (response.status === 304 && known && known.etag) {
    seen.set(url, known);
    return known.body;
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
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`${url}: the answer is not JSON`, true);
  }
  seen.set(url, { etag: response.headers.get("ETag"), body });
  return body;
}

function listOf(body, key, url) {
  if (!body || !Array.isArray(body[key])) {
    throw new ApiError(`${url}: the answer has no "${key}" list`, true);
  }
  return body[key];
}

function query(path, params) {
  const search = new URLSearchParams();
  for (const [name, value] of params) search.append(name, String(value));
  const text = search.toString();
  return text ? `${path}?${text}` : path;
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

// One pool's page of nodes: the first NODES_PER_PAGE by name (all once the reader asked),
// those the filter finds when there is one.
async function fetchPage(pool, seen) {
  const params = [["pool", pool.name]];
  if (state.filter) params.push(["match", state.filter]);
  if (!state.expanded.has(pool.name)) params.push(["limit", NODES_PER_PAGE]);
  const url = query("api/nodes", params);
  const body = await fetchJson(url, seen);
  const nodes = listOf(body, "nodes", url);
  return { nodes, total: typeof body.total === "number" ? body.total : nodes.length };
}

function nodeKey(pool, node) {
  return `${pool.name}/${node.name}`;
}

function foldsByDefault(pool) {
  return pool.gpus > COLLAPSE_ABOVE_GPUS && !state.filter;
}

function isOpen(pool, node) {
  const key = nodeKey(pool, node);
  return state.open.has(key) ? state.open.get(key) : !foldsByDefault(pool);
}

// `node` parameters for `nodes`, split so that each request's address (the longer of
// api/gpus and api/workers) stays within MAX_URL_LENGTH; a node is never left out.
function nodeBatches(nodes) {
  const batches = [];
  let batch = [];
  let length = "api/workers".length;
  for (const name of nodes) {
    const more = 1 + new URLSearchParams([["node", name]]).toString().length; // "?" or "&"
    if (batch.length && length + more > MAX_URL_LENGTH) {
      batches.push(batch);
      batch = [];
      length = "api/workers".length;
    }
    batch.push(["node", name]);
    length += more;
  }
  if (batch.length) batches.push(batch);
  return batches;
}

// The GPUs of `nodes`, each with the workers on it, by node name.
async function fetchDetails(nodes, seen) {
  const details = new Map(nodes.map((name) => [name, []]));
  const requests = [];
  for (const params of nodeBatches(nodes)) {
    const urls = [query("api/gpus", params), query("api/workers", params)];
    requests.push(
      Promise.all(urls.map((url) => fetchJson(url, seen))).then(([gpus, workers]) => [
        listOf(gpus, "gpus", urls[0]),
        listOf(workers, "workers", urls[1]),
      ]),
    );
  }
  for (const [gpus, workers] of await Promise.all(requests)) {
    const byKey = new Map(workers.map((worker) => [workerKey(worker), worker]));
    const onGpu = new Map();
    for (const worker of workers) {
      for (const gpu of worker.gpus || []) {
        if (!onGpu.has(gpu)) onGpu.set(gpu, new Map());
        onGpu.get(gpu).set(workerKey(worker), worker);
      }
    }
    for (const gpu of gpus) {
      const listed = onGpu.get(gpu.name) || new Map();
      // A pod the API lists on the GPU but not among workers still shows, by name.
      for (const key of gpu.workers || []) {
        if (!listed.has(key)) listed.set(key, byKey.get(key) || { key });
      }
      if (!details.has(gpu.node)) details.set(gpu.node, []);
      details.get(gpu.node).push({ ...gpu, workerList: [...listed.values()] });
    }
  }
  for (const list of details.values()) {
    list.sort((a, b) => a.index - b.index || collator.compare(a.name, b.name));
  }
  return details;
}

function workerLabel(worker) {
  return worker.key || workerKey(worker);
}

// ---- filter --------------------------------------------------------------------------------

function gpuMatches(gpu, needle) {
  const words = [gpu.name, gpu.model, gpu.uuid, gpu.node, ...gpu.workerList.map(workerLabel)];
  return words.some((word) => String(word || "").toLowerCase().includes(needle));
}

// The GPUs of a node to show: those the filter finds (the server found the node by them),
// or all of them when the node's own name matches or there is no filter.
function shownGpus(node, gpus) {
  const needle = state.filter;
  if (!needle || node.name.toLowerCase().includes(needle)) return gpus;
  return gpus.filter((gpu) => gpuMatches(gpu, needle));
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

function drawTotals(pools) {
  const total = sumFigures(pools);
  const nodes = pools.reduce((sum, pool) => sum + pool.nodes, 0);
  const gpus = pools.reduce((sum, pool) => sum + pool.gpus, 0);
  // Pods holding GPUs (the pools count them all, not only this control plane's workers).
  const workers = pools.reduce((sum, pool) => sum + pool.workers, 0);
  const waiting = state.pending.length ? `${fmtNumber(state.pending.length)} waiting` : null;
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

function drawPool(pool) {
  const over = pool.oversubscription;
  const facts = [
    plural(pool.nodes, "node"),
    plural(pool.gpus, "GPU"),
    plural(pool.workers, "worker"),
    pool.placementMode,
    over
      ? `TFLOPS limits up to ${over.tflopsOversellRatio}% of physical · VRAM spills to host ` +
        `memory ${over.vramExpandToHostMem}%, to disk ${over.vramExpandToHostDisk}%`
      : null,
  ].filter(Boolean);
  // GPUs name the pool, but no GPUPool object gives its placement and oversubscription.
  const unregistered = !pool.placementMode && !over;
  const section = el(
    "section",
    { class: "pool", "data-pool": pool.name },
    el(
      "header",
      { class: "pool-head" },
      el("h2", {}, pool.name),
      pool.default ? el("span", { class: "badge" }, "default") : null,
      unregistered ? el("span", { class: "badge muted" }, "not a registered pool") : null,
      el("span", { class: "facts" }, facts.join(" · ")),
    ),
    bars(pool, false),
  );
  section.append(drawNodes(pool));
  return section;
}

function drawNodes(pool) {
  const page = state.pages.get(pool.name) || { nodes: [], total: 0 };
  if (!page.nodes.length) {
    const why = state.filter ? "Nothing here matches the filter." : "No GPUs in this pool yet.";
    return el("p", { class: "empty" }, why);
  }
  const list = el("div", { class: "nodes" }, page.nodes.map((node) => drawNode(pool, node)));
  if (page.total > page.nodes.length) {
    const more = el(
      "button",
      { class: "more", type: "button" },
      `Show all ${fmtNumber(page.total)} nodes (${fmtNumber(page.total - page.nodes.length)} more)`,
    );
    more.addEventListener("click", () => {
      state.expanded.add(pool.name);
      refreshNow();
    });
    list.append(more);
  }
  return list;
}

function drawNode(pool, node) {
  const key = nodeKey(pool, node);
  const open = isOpen(pool, node);
  // Known once the node was open: its GPU cards, and the models in its summary.
  const gpus = state.details.get(node.name);
  const shown = gpus ? shownGpus(node, gpus) : null;
  const models = gpus ? [...new Set(gpus.map((gpu) => gpu.model))].join(", ") : "";
  const count = models ? `${node.gpus} × ${models}` : plural(node.gpus, "GPU");
  const narrowed = shown && shown.length < node.gpus ? ` · ${shown.length} shown` : "";
  const details = el(
    "details",
    { class: "node", "data-node": node.name, open },
    el(
      "summary",
      {},
      el("span", { class: "node-name" }, node.name),
      el("span", { class: "facts" }, `${count} · ${plural(node.workers, "worker")}${narrowed}`),
      bars(node, true),
    ),
  );
  const body = () =>
    shown
      ? el("div", { class: "gpus" }, shown.map(drawGpu))
      : el("p", { class: "empty small" }, "Loading…");
  if (open) details.append(body());
  details.addEventListener("toggle", () => {
    state.open.set(key, details.open);
    // A node opened for the first time has no GPUs here yet: ask for them now.
    if (details.open && !state.details.has(node.name)) refreshNow();
    else if (details.open && details.querySelector(".gpus") === null) details.append(body());
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
  const pools = [...state.pools].sort(
    // The default pool first, then by name.
    (a, b) => Number(!!b.default) - Number(!!a.default) || collator.compare(a.name, b.name),
  );
  drawTotals(pools);
  const parts = pools.map(drawPool);
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
  const pending = drawPending(state.pending);
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
  document.body.classList.toggle("stale", !!err && state.pools !== null);
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
  if (state.pools) since = ` Showing data from ${clock(state.updatedAt)}.`;
  else if (!reachable) since = " Is the control plane running (tensor-fusion up)?";
  alert.replaceChildren(
    el("strong", {}, headline),
    el("span", {}, ` — ${err.message}.${since} Retrying every ${REFRESH_MS / 1000} s.`),
  );
  alert.hidden = false;
  status.className = "status down";
  status.textContent = reachable ? "API error" : "API unreachable";
  if (!state.pools) {
    const waiting = el("p", { class: "empty big" }, "No data from the management API yet.");
    document.getElementById("content").replaceChildren(waiting);
  }
}

// The open nodes among those listed: the ones whose GPUs and workers to ask for.
function openNodes(pools, pages) {
  const names = [];
  for (const pool of pools) {
    for (const node of pages.get(pool.name).nodes) {
      if (isOpen(pool, node)) names.push(node.name);
    }
  }
  return names;
}

// GPUs in no pool, as a pool of their own (drawn only when there are some). Its figures
// are its nodes' (a node with GPUs in a pool too counts them all).
function unpooled(page) {
  return {
    name: NO_POOL,
    nodes: page.total,
    gpus: page.nodes.reduce((sum, node) => sum + node.gpus, 0),
    workers: page.nodes.reduce((sum, node) => sum + node.workers, 0),
    ...sumFigures(page.nodes),
  };
}

async function load() {
  const seen = new Map();
  const pendingUrl = "api/workers?pending=true";
  const [poolsBody, pendingBody, loose] = await Promise.all([
    fetchJson("api/pools", seen),
    fetchJson(pendingUrl, seen),
    fetchPage({ name: NO_POOL }, seen),
  ]);
  const pools = listOf(poolsBody, "pools", "api/pools");
  const pending = listOf(pendingBody, "workers", pendingUrl);
  const pages = new Map(
    await Promise.all(pools.map(async (pool) => [pool.name, await fetchPage(pool, seen)])),
  );
  if (loose.total) {
    pools.push(unpooled(loose));
    pages.set(NO_POOL, loose);
  }
  const details = await fetchDetails(openNodes(pools, pages), seen);
  return { pools, pages, pending, details, seen };
}

let timer = null;
let loading = null; // the refresh in flight, if any
let queued = null; // the one refresh waiting for it, if any

async function refresh() {
  clearTimeout(timer);
  try {
    const { pools, pages, pending, details, seen } = await load();
    // An answer without an ETag cannot tell that it is unchanged: then always redraw.
    const tagged = [...seen.values()].every((answer) => answer.etag);
    const signature = tagged
      ? [...seen].map(([url, answer]) => `${url} ${answer.etag}`).join("\n")
      : null;
    state.updatedAt = new Date();
    answers = seen; // only what this refresh asked for: closed nodes' answers are dropped
    if (signature === null || signature !== state.signature) {
      Object.assign(state, { pools, pages, pending, details });
      draw();
      // Only once drawn: an answer that failed to draw is tried again on the next refresh.
      state.signature = signature;
    }
    showProblem(null);
  } catch (err) {
    showProblem(err);
  } finally {
    timer = setTimeout(refreshNow, REFRESH_MS);
  }
}

// Refresh once any refresh in flight ends (the reader opened a node, asked for more, or
// changed the filter). Asked again meanwhile, it queues no second one: the one queued
// will read the state as it is then.
function refreshNow() {
  if (!queued) {
    queued = (loading || Promise.resolve()).then(() => {
      queued = null;
      loading = refresh();
      return loading;
    });
  }
  return queued;
}

let filterTimer = null;

// The filter lives in the address (?filter=...), so a filtered view can be shared.
function setFilter(text, input) {
  state.filter = text.trim().toLowerCase();
  input.value = text;
  const url = new URL(location.href);
  if (state.filter) url.searchParams.set("filter", text);
  else url.searchParams.delete("filter");
  history.replaceState(null, "", url);
  clearTimeout(filterTimer);
  // Once typing pauses: a refresh per keystroke would ask the server for every prefix.
  if (state.pools) filterTimer = setTimeout(refreshNow, FILTER_DEBOUNCE_MS);
}

const filterInput = document.getElementById("filter");
filterInput.addEventListener("input", () => setFilter(filterInput.value, filterInput));
setFilter(new URLSearchParams(location.search).get("filter") || "", filterInput);
refreshNow();
