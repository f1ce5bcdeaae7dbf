// The page: loads the batch-1 generator with LiteRT.js (WebAssembly, on this
// device) and draws icons for seeds, a grid of consecutive seeds and an
// interpolation between two seeds.
import { Tensor, loadAndCompile, loadLiteRt } from "@litertjs/core";
import { interpolationT, latentsForSeed, parseCount, parseSeed, slerp } from "./seed.js";

const MODEL_FILE = "generator_batch1.tflite";
const META_FILE = "generator_batch1.json";
const $ = (id) => document.getElementById(id);

let model = null;
let meta = null;
let shown = null;        // {rgb, name} of the icon in the large view

// Model calls run one at a time. A request for a view that is still waiting
// replaces the waiting one, so dragging the slider does not pile up work.
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

function draw(canvas, rgb) {
  const r = meta.resolution;
  canvas.width = r;
  canvas.height = r;
  const image = new ImageData(r, r);
  for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
    image.data[j] = rgb[i];
    image.data[j + 1] = rgb[i + 1];
    image.data[j + 2] = rgb[i + 2];
    image.data[j + 3] = 255;
  }
  canvas.getContext("2d").putImageData(image, 0, 0);
}

// Whole-number enlargement keeps every pixel the same size.
function fitLarge() {
  if (!meta) return;
  const canvas = $("icon");
  const room = Math.min(canvas.parentElement.clientWidth, 512);
  const scale = Math.max(1, Math.floor(room / meta.resolution));
  canvas.style.width = canvas.style.height = `${scale * meta.resolution}px`;
}

function showLarge(rgb, label, name) {
  draw($("icon"), rgb);
  $("icon-label").textContent = label;
  shown = { rgb, name };
  $("download").disabled = false;
}

function drawSeed(seed) {
  return schedule("large", async () => {
    const rgb = await iconFor(latentsForSeed(seed, 1, meta.latent_dim));
    showLarge(rgb, `seed ${seed}`, `seed_${seed}.png`);
  });
}

function drawGrid(first, count) {
  return schedule("grid", async () => {
    const grid = $("grid");
    const cells = [];
    for (let k = 0; k < count; k++) {
      const seed = first + BigInt(k);
      if (seed > (1n << 64n) - 1n) break;
      const rgb = await iconFor(latentsForSeed(seed, 1, meta.latent_dim));
      const canvas = document.createElement("canvas");
      draw(canvas, rgb);
      canvas.dataset.seed = String(seed);
      canvas.title = `seed ${seed}`;
      canvas.tabIndex = 0;
      const pick = () => {
        $("seed").value = String(seed);
        showMessage("seed-message", "");
        showLarge(rgb, `seed ${seed}`, `seed_${seed}.png`);
      };
      canvas.addEventListener("click", pick);
      canvas.addEventListener("keydown", (e) => { if (e.key === "Enter") pick(); });
      cells.push(canvas);
    }
    grid.replaceChildren(...cells);
  });
}

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
  return schedule("large", async () => {
    // The path of `python -m mel_tf.generate --interpolate`: latent 0 of each
    // seed, slerp at numpy.linspace(0, 1, frames).
    const za = latentsForSeed(p.a, 1, meta.latent_dim);
    const zb = latentsForSeed(p.b, 1, meta.latent_dim);
    const rgb = await iconFor(slerp(za, zb, interpolationT(p.frame, p.frames)));
    const n = String(p.frames - 1).length;
    const frame = String(p.frame).padStart(n, "0");
    showLarge(rgb, `seed ${p.a} → ${p.b}, frame ${p.frame} of ${p.frames - 1}`,
              `seed_${p.a}_to_${p.b}_frame_${frame}.png`);
  });
}

function download() {
  if (!shown) return;
  const canvas = document.createElement("canvas");
  draw(canvas, shown.rgb);
  canvas.toBlob((blob) => {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = shown.name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }, "image/png");
}

function showMeta() {
  const rows = [
    ["Resolution", `${meta.resolution} × ${meta.resolution}`],
    ["Preset", meta.preset],
    ["Images trained", meta.images_trained == null ? "unknown"
      : Number(meta.images_trained).toLocaleString("en-US")],
    ["Data set", (meta.dataset && meta.dataset.name) || "unknown"],
    ["Credit", (meta.dataset && meta.dataset.credit) || "none given"],
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

function initialSeed() {
  const m = /(?:^|[#&])seed=(\d+)/.exec(location.hash);
  return m && !parseSeed(m[1]).error ? m[1] : "0";
}

function seedSubmitted(event) {
  event.preventDefault();
  const parsed = parseSeed($("seed").value);
  showMessage("seed-message", parsed.error);
  if (parsed.error) return;
  history.replaceState(null, "", `#seed=${parsed.seed}`);
  drawSeed(parsed.seed);
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

async function start() {
  showStatus("Loading the model…");
  const response = await fetch(META_FILE);
  if (!response.ok) throw new Error(`${META_FILE}: HTTP ${response.status}`);
  meta = await response.json();
  showMeta();
  await loadLiteRt(new URL("litert/wasm/", location.href).href);
  model = await loadAndCompile(new URL(MODEL_FILE, location.href).href, { accelerator: "wasm" });
  fitLarge();
  $("seed").value = initialSeed();
  const seed = parseSeed($("seed").value).seed;
  await drawSeed(seed);
  page.firstIconMs = performance.now();
  showStatus("");
  for (const el of document.querySelectorAll("[data-needs-model]")) el.disabled = false;
  drawGrid(seed, parseCount($("count").value, 1, 64, "").value);
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
$("download").addEventListener("click", download);
for (const id of ["from", "to", "frames"]) $(id).addEventListener("change", drawFrame);
$("interp-form").addEventListener("submit", (e) => { e.preventDefault(); drawFrame(); });
$("slider").addEventListener("input", drawFrame);
window.addEventListener("resize", fitLarge);
page.ready = start().catch((e) => {
  showStatus(`This page could not start: ${e && e.message ? e.message : e}`, true);
  throw e;
});
page.ready.catch(() => {});
