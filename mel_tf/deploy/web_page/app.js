// The page: loads the batch-1 generator with LiteRT.js (WebAssembly, on this
// device) and draws a seed's icon, its variations, a grid of consecutive seeds
// and an interpolation between two seeds, all under one truncation. The
// address (#seed=S&t=T&var=K&s=X) names the large icon, so a link reproduces it.
import { Tensor, loadAndCompile, loadLiteRt } from "@litertjs/core";
import {
  interpolationT, latentsForSeed, parseCount, parseSeed, parseStrength, parseTruncation, slerp,
  variationLatent,
} from "./seed.js";

const MODEL_FILE = "generator_batch1.tflite";
const META_FILE = "generator_batch1.json";
// The truncation slider's stops, "off" first.
const TRUNCATIONS = [Infinity, 2, 1.5, 1, 0.7, 0.5];
const VARIATIONS = 6;           // icons in the variations row
const DEFAULT_STRENGTH = 0.3;
const MAX_VARIATION = 999999;
const MAX_LARGE_PX = 512;
// The controls' least width beside the icon and the gap: style.css's #viewer.
const CONTROLS_REM = 18, GAP_REM = 1;
const $ = (id) => document.getElementById(id);

let model = null;
let meta = null;
// The large icon: a seed under a truncation, or variation {k, s} of it.
let state = { seed: 0n, t: Infinity, variation: null };
let strength = DEFAULT_STRENGTH;   // of the variations row
let shown = null;                  // {rgb, name} of the icon in the large view
let gridShown = null;              // {first, count, t} of the grid drawn

// ---- model calls ------------------------------------------------------------------

// Model calls run one at a time. A request for a view that is still waiting
// replaces the waiting one, so dragging a slider does not pile up work.
let queue = Promise.resolve();
const waiting = new Map();
function schedule(view, job) {
  const queued = waiting.has(view);
  waiting.set(view, job);
  if (!queued) {
    queue = queue.then(async () => {
      const next = waiting.get(view);
      waiting.delete(view);
      try {
        await next();
      } catch (e) {
        showStatus(`Could not make the icon: ${e && e.message ? e.message : e}`, true);
      }
    });
  }
  return queue;
}
async function whenIdle() {
  let seen;
  do {
    seen = queue;
    await seen;
  } while (seen !== queue);
}

// One icon (uint8 RGB, resolution^2 * 3 bytes) for a latent vector.
async function iconFor(z) {
  const input = new Tensor(z, [1, meta.latent_dim]);
  let outputs = [];
  try {
    outputs = await model.run([input]);
    return outputs[0].toTypedArray();
  } finally {
    input.delete();
    for (const t of outputs) t.delete();
  }
}

function stateLatent(s) {
  return s.variation
    ? variationLatent(s.seed, s.variation.k, meta.latent_dim, s.variation.s, s.t)
    : latentsForSeed(s.seed, 1, meta.latent_dim, s.t);
}

// ---- messages ---------------------------------------------------------------------

function showStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.hidden = !text;
  status.classList.toggle("error", isError);
}

function showMessage(id, text) {
  const el = $(id);
  el.textContent = text || "";
  el.hidden = !text;
}

// ---- drawing ------------------------------------------------------------------------

// The icon enlarged `scale` times, each pixel a scale x scale block (nearest neighbour).
function enlarged(rgb, scale) {
  const r = meta.resolution, n = r * scale;
  const image = new ImageData(n, n);
  for (let y = 0; y < n; y++) {
    const row = Math.floor(y / scale) * r;
    for (let x = 0; x < n; x++) {
      const i = (row + Math.floor(x / scale)) * 3, j = (y * n + x) * 4;
      image.data[j] = rgb[i];
      image.data[j + 1] = rgb[i + 1];
      image.data[j + 2] = rgb[i + 2];
      image.data[j + 3] = 255;
    }
  }
  return image;
}

function draw(canvas, rgb, scale = 1) {
  canvas.width = canvas.height = meta.resolution * scale;
  canvas.getContext("2d").putImageData(enlarged(rgb, scale), 0, 0);
}

// Whole-number enlargement keeps every pixel the same size; beside the
// controls on a wide screen, above them on a narrow one.
function fitLarge() {
  if (!meta) return;
  const viewer = $("viewer");
  const rem = parseFloat(getComputedStyle(document.documentElement).fontSize);
  const beside = getComputedStyle(viewer).display === "grid";
  const room = Math.min(viewer.clientWidth - (beside ? (CONTROLS_REM + GAP_REM) * rem : 0),
                        MAX_LARGE_PX);
  const scale = Math.max(1, Math.floor(room / meta.resolution));
  $("icon").style.width = $("icon").style.height = `${scale * meta.resolution}px`;
}

function showLarge(rgb, label, name) {
  draw($("icon"), rgb);
  $("icon-label").textContent = label;
  $("icon").setAttribute("aria-label", `Icon: ${label}`);
  shown = { rgb, name };
}

function truncationText(t) {
  return t === Infinity ? "off" : String(t);
}

// {label, name} of the large icon for a state.
function describe(s) {
  const tLabel = s.t === Infinity ? "" : `, truncation ${s.t}`;
  const tName = s.t === Infinity ? "" : `_t${s.t}`;
  if (!s.variation) return { label: `seed ${s.seed}${tLabel}`, name: `seed_${s.seed}${tName}` };
  const { k, s: x } = s.variation;
  return { label: `seed ${s.seed}, variation ${k} (strength ${x})${tLabel}`,
           name: `seed_${s.seed}${tName}_var${k}_s${x}` };
}

function drawState() {
  const s = state;
  return schedule("large", async () => {
    const rgb = await iconFor(stateLatent(s));
    const { label, name } = describe(s);
    showLarge(rgb, label, name);
  });
}

// A button holding a small icon, for the grid and the variations row.
function cell(rgb, label, onPick) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "cell";
  button.setAttribute("aria-label", label);
  button.title = label;
  const canvas = document.createElement("canvas");
  draw(canvas, rgb);
  button.append(canvas);
  button.addEventListener("click", onPick);
  return button;
}

// ---- the address ------------------------------------------------------------------

function stateToHash(s) {
  let hash = `#seed=${s.seed}`;
  if (s.t !== Infinity) hash += `&t=${s.t}`;
  if (s.variation) hash += `&var=${s.variation.k}&s=${s.variation.s}`;
  return hash;
}

// {state} or {error} for an address's #seed=...&t=...&var=...&s=...
function stateFromHash(hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const seed = parseSeed(params.get("seed") ?? "0");
  const t = parseTruncation(params.get("t") ?? "off");
  const k = params.has("var")
    ? parseCount(params.get("var"), 0, MAX_VARIATION, "The variation (var)") : null;
  const s = parseStrength(params.get("s") ?? String(DEFAULT_STRENGTH));
  const error = seed.error || t.error || (k && k.error) || (k && s.error);
  if (error) return { error: `The address: ${error}` };
  return { state: { seed: seed.seed, t: t.value,
                    variation: k ? { k: k.value, s: s.value } : null } };
}

function setAddress(push) {
  const hash = stateToHash(state);
  if (location.hash === hash) return;
  if (push) history.pushState(null, "", hash);
  else history.replaceState(null, "", hash);
}

// Back, forward, or an address edited by hand.
function addressChanged() {
  if (!model) return;
  const parsed = stateFromHash(location.hash);
  showMessage("seed-message", parsed.error);
  if (parsed.error || stateToHash(parsed.state) === stateToHash(state)) return;
  go(parsed.state, "none");
}

// ---- the shown state ----------------------------------------------------------------

// Shows `next` large; how: "push" (a new entry in the history), "replace" or "none".
function go(next, how) {
  state = next;
  if (next.variation) strength = next.variation.s;
  showControls();
  if (how !== "none") setAddress(how === "push");
  drawState();
  if (variationsShown !== rowKey()) drawVariations();
  if (gridShown && gridShown.t !== next.t) drawGrid(gridShown.first, gridShown.count);
  markSelected();
}

// The inputs follow the state (the sliders stop at their nearest step).
function showControls() {
  $("seed").value = String(state.seed);
  showMessage("seed-message", "");
  const slider = $("truncation");
  slider.value = String(nearestStop(state.t));
  $("truncation-value").textContent = truncationText(state.t);
  slider.setAttribute("aria-valuetext", truncationText(state.t));
  $("strength").value = String(strength);
  $("strength-value").textContent = String(strength);
}

// The slider's stop nearest to t ("off" counts as 10, above every number stop).
function nearestStop(t) {
  const distance = (stop) => Math.abs(Math.min(stop, 10) - Math.min(t, 10));
  let best = 0;
  TRUNCATIONS.forEach((stop, i) => { if (distance(stop) < distance(TRUNCATIONS[best])) best = i; });
  return best;
}

function markSelected() {
  for (const b of $("grid").children) {
    b.setAttribute("aria-current", String(!state.variation && b.dataset.seed === String(state.seed)));
  }
  for (const b of $("variations").children) {
    b.setAttribute("aria-current",
                   String(!!state.variation && b.dataset.k === String(state.variation.k)));
  }
}

// ---- variations ---------------------------------------------------------------------

let variationsShown = null;
function rowKey() {
  return `${state.seed}|${state.t}|${strength}`;
}

function drawVariations() {
  const s = state, x = strength, key = rowKey();
  return schedule("variations", async () => {
    const cells = [];
    for (let k = 0; k < VARIATIONS; k++) {
      const rgb = await iconFor(variationLatent(s.seed, k, meta.latent_dim, x, s.t));
      const pick = () => go({ seed: s.seed, t: s.t, variation: { k, s: x } }, "push");
      const button = cell(rgb, `variation ${k} of seed ${s.seed}`, pick);
      button.dataset.k = String(k);
      cells.push(button);
    }
    $("variations").replaceChildren(...cells);
    variationsShown = key;
    markSelected();
  });
}

function strengthMoved() {
  // Two decimals, so the address shows 0.35 whatever the slider's arithmetic.
  strength = Number(Number($("strength").value).toFixed(2));
  if (state.variation) {
    go({ ...state, variation: { k: state.variation.k, s: strength } }, "replace");
  } else {
    $("strength-value").textContent = String(strength);
    drawVariations();
  }
}

// ---- the grid -----------------------------------------------------------------------

function drawGrid(first, count) {
  const t = state.t;
  return schedule("grid", async () => {
    const cells = [];
    for (let k = 0; k < count; k++) {
      const seed = first + BigInt(k);
      if (seed > (1n << 64n) - 1n) break;
      const rgb = await iconFor(latentsForSeed(seed, 1, meta.latent_dim, t));
      const button = cell(rgb, `seed ${seed}`, () => go({ seed, t, variation: null }, "push"));
      button.dataset.seed = String(seed);
      cells.push(button);
    }
    $("grid").replaceChildren(...cells);
    gridShown = { first, count, t };
    markSelected();
    const selected = cells.findIndex((c) => c.getAttribute("aria-current") === "true");
    rovingFocus(cells, Math.max(0, selected), false);
  });
}

// One tab stop in the grid; the arrow keys move between its icons.
function rovingFocus(cells, j, focus) {
  cells.forEach((c, n) => { c.tabIndex = n === j ? 0 : -1; });
  if (focus && cells[j]) cells[j].focus();
}

function columns(cells) {
  let n = 0;
  while (n < cells.length && cells[n].offsetTop === cells[0].offsetTop) n++;
  return Math.max(1, n);
}

function gridKey(event) {
  const cells = [...$("grid").children];
  const i = cells.indexOf(document.activeElement);
  if (i < 0) return;
  const cols = columns(cells);
  const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols,
                 Home: -i, End: cells.length - 1 - i }[event.key];
  if (step === undefined) return;
  event.preventDefault();
  rovingFocus(cells, Math.min(cells.length - 1, Math.max(0, i + step)), true);
}

// ---- interpolation --------------------------------------------------------------------

function readInterpolation() {
  const a = parseSeed($("from").value);
  const b = parseSeed($("to").value);
  const frames = parseCount($("frames").value, 2, 256, "Frames");
  const error = a.error ? `From: ${a.error}` : b.error ? `To: ${b.error}` : frames.error;
  showMessage("interp-message", error);
  if (error) return null;
  const slider = $("slider");
  slider.max = String(frames.value - 1);
  if (Number(slider.value) > frames.value - 1) slider.value = slider.max;
  return { a: a.seed, b: b.seed, frames: frames.value, frame: Number(slider.value) };
}

function drawFrame() {
  const p = readInterpolation();
  if (!p) return queue;
  const t = state.t;
  $("frame-value").textContent = `${p.frame}/${p.frames - 1}`;
  return schedule("large", async () => {
    // The path of `mel-generate --interpolate` (with --truncation):
    // latent 0 of each seed, slerp at numpy.linspace(0, 1, frames).
    const za = latentsForSeed(p.a, 1, meta.latent_dim, t);
    const zb = latentsForSeed(p.b, 1, meta.latent_dim, t);
    const rgb = await iconFor(slerp(za, zb, interpolationT(p.frame, p.frames)));
    const n = String(p.frames - 1).length;
    const frame = String(p.frame).padStart(n, "0");
    const tLabel = t === Infinity ? "" : `, truncation ${t}`;
    showLarge(rgb, `seed ${p.a} → ${p.b}, frame ${p.frame} of ${p.frames - 1}${tLabel}`,
              `seed_${p.a}_to_${p.b}${t === Infinity ? "" : `_t${t}`}_frame_${frame}`);
  });
}

// ---- downloads ------------------------------------------------------------------------

function download(scale) {
  if (!shown) return;
  const canvas = document.createElement("canvas");
  draw(canvas, shown.rgb, scale);
  const name = `${shown.name}${scale > 1 ? `@${scale}x` : ""}.png`;
  canvas.toBlob((blob) => {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }, "image/png");
}

// ---- the model's description ------------------------------------------------------------

function showMeta() {
  const dataset = meta.dataset || {};
  const rows = [
    ["Resolution", `${meta.resolution} × ${meta.resolution}`],
    ["Preset", meta.preset],
    ["Images trained", meta.images_trained == null ? "unknown"
      : Number(meta.images_trained).toLocaleString("en-US")],
    ["Data set", dataset.name || "unknown"],
    ["Data set credit", dataset.credit || "none given"],
    ["Model", `${MODEL_FILE}, ${(meta.bytes / 1e6).toFixed(2)} MB, latent ${meta.latent_dim}`],
  ];
  const dl = $("meta");
  dl.replaceChildren();
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    dl.append(dt, dd);
  }
}

// ---- form handlers ------------------------------------------------------------------------

function seedSubmitted(event) {
  event.preventDefault();
  const parsed = parseSeed($("seed").value);
  showMessage("seed-message", parsed.error);
  if (parsed.error) return;
  go({ seed: parsed.seed, t: state.t, variation: null }, "push");
  gridSubmitted();
}

function gridSubmitted(event) {
  if (event) event.preventDefault();
  const first = parseSeed($("seed").value);
  const count = parseCount($("count").value, 1, 64, "The number of icons");
  showMessage("grid-message", first.error ? `Grid: ${first.error}` : count.error);
  if (first.error || count.error) return;
  drawGrid(first.seed, count.value);
}

function randomSeed() {
  const words = crypto.getRandomValues(new Uint32Array(1));
  $("seed").value = String(words[0]);
  $("seed-form").requestSubmit();
}

function truncationMoved() {
  const t = TRUNCATIONS[Number($("truncation").value)];
  go({ ...state, t }, "replace");
}

// ---- loading ----------------------------------------------------------------------------

function megabytes(bytes) {
  return (bytes / 1e6).toFixed(1);
}

// The model's bytes, read as they arrive so the page can say how far it is.
async function fetchModel() {
  const response = await fetch(MODEL_FILE);
  if (!response.ok) throw new Error(`${MODEL_FILE}: HTTP ${response.status}`);
  // The JSON's size, not Content-Length: a server may send the file compressed.
  const total = meta.bytes;
  const progress = $("progress");
  progress.max = total;
  progress.hidden = false;
  const reader = response.body.getReader();
  const chunks = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.length;
    progress.value = Math.min(received, total);
    showStatus(`Downloading the model: ${megabytes(received)} of ${megabytes(total)} MB`);
  }
  progress.hidden = true;
  const bytes = new Uint8Array(received);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  return bytes;
}

async function start() {
  if (window.melTfUnsupported) return { unsupported: window.melTfUnsupported };
  showStatus("Loading the model…");
  const response = await fetch(META_FILE);
  if (!response.ok) throw new Error(`${META_FILE}: HTTP ${response.status}`);
  meta = await response.json();
  showMeta();
  const [bytes] = await Promise.all([
    fetchModel(), loadLiteRt(new URL("litert/wasm/", location.href).href)]);
  showStatus("Starting the generator…");
  model = await loadAndCompile(bytes, { accelerator: "wasm" });
  fitLarge();
  const parsed = stateFromHash(location.hash);
  state = parsed.state || state;
  if (state.variation) strength = state.variation.s;
  showControls();
  showMessage("seed-message", parsed.error);
  await drawState();
  page.firstIconMs = performance.now();
  showStatus("");
  for (const el of document.querySelectorAll("[data-needs-model]")) el.disabled = false;
  drawFrameLabel();
  drawVariations();
  gridSubmitted();
  return { unsupported: null };
}

function drawFrameLabel() {
  const p = readInterpolation();
  if (p) $("frame-value").textContent = `${p.frame}/${p.frames - 1}`;
}

// For tests and benchmarks: when the page is ready and idle, and timing.
const page = {
  firstIconMs: null,
  whenIdle,
  // Medians over `calls`: milliseconds of one model call (input tensor, run,
  // read-back) and of one seed's latent vector. The first `warmup` calls, and
  // any in the first `warmupMs`, are not counted: V8 starts WebAssembly in its
  // baseline compiler and swaps in optimised code while it runs.
  async timeIcon(calls = 30, warmup = 5, warmupMs = 3000) {
    await whenIdle();
    const median = (xs) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)];
    const runs = [], latents = [];
    const start = performance.now();
    for (let i = 0; i < warmup || performance.now() - start < warmupMs; i++) {
      await iconFor(latentsForSeed(BigInt(i), 1, meta.latent_dim));
    }
    for (let i = 0; i < calls; i++) {
      const t0 = performance.now();
      const z = latentsForSeed(BigInt(i), 1, meta.latent_dim);
      const t1 = performance.now();
      await iconFor(z);
      const t2 = performance.now();
      latents.push(t1 - t0);
      runs.push(t2 - t1);
    }
    return { iconMs: median(runs), latentsMs: median(latents) };
  },
};
window.melTfPage = page;

$("seed-form").addEventListener("submit", seedSubmitted);
$("grid-form").addEventListener("submit", gridSubmitted);
$("random").addEventListener("click", randomSeed);
for (const button of document.querySelectorAll(".downloads button")) {
  button.addEventListener("click", () => download(Number(button.dataset.scale)));
}
for (const id of ["from", "to", "frames"]) $(id).addEventListener("change", drawFrame);
$("interp-form").addEventListener("submit", (e) => { e.preventDefault(); drawFrame(); });
$("slider").addEventListener("input", drawFrame);
$("truncation").addEventListener("input", truncationMoved);
$("strength").addEventListener("input", strengthMoved);
$("grid").addEventListener("keydown", gridKey);
window.addEventListener("resize", fitLarge);
window.addEventListener("popstate", addressChanged);
window.addEventListener("hashchange", addressChanged);
page.ready = start().catch((e) => {
  showStatus(`This page could not start: ${e && e.message ? e.message : e}`, true);
  throw e;
});
page.ready.catch(() => {});
