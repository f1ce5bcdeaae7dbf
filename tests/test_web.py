"""`export --web`: the page in headless Chromium draws, pixel for pixel, the icons
`python -m mel_tf.deploy.generate` writes, fetches nothing from outside 127.0.0.1,
and answers bad input with a message; a missing runtime is a one-line error.

Needs Chromium (Debian's `chromium`, or $MEL_TF_CHROMIUM), the Playwright
Python package (the test extra; it drives that Chromium and downloads no
browser) and the LiteRT.js npm packages (`npm ci`). Without them the browser
tests are skipped with the reason, except under CI (CI set), where they fail.
"""

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from conftest import IN_4X4_STABLE, PAST_16X16_FADE, REPO, make_run_dir
from mel_tf.deploy import convert, litertjs, web
from mel_tf.deploy.export import ExportError, export_generator
from mel_tf.deploy.seeds import interpolate_latents, latents_for_seed
from mel_tf.deploy.serving import load_model

CREDIT = "Twemoji graphics by Twitter, Inc. and other contributors, CC-BY 4.0"
GRID = 12                 # the page's default grid size
FRAMES = 16               # the page's default interpolation frames
# LiteRT.js's own log lines arrive through console.error: "INFO: [file.cc:N] ...".
LITERT_LOG = re.compile(r"^(INFO|WARNING): ")
# WebAssembly's XNNPACK kernels sum in another order than native ones, so a value
# near a rounding boundary may land one level away (web_bench.py counts them on
# full-size models). Seeds 0 and 7, the slider's ends and the download must be
# byte for byte; the other comparisons allow that one level.
ONE_LEVEL = 1


def _missing_or_skip(what):
    if os.environ.get("CI"):
        pytest.fail(f"{what}; CI must run the browser test (.ci/run installs it)")
    pytest.skip(what)


def _chromium():
    path = os.environ.get("MEL_TF_CHROMIUM") or shutil.which("chromium") or shutil.which(
        "chromium-browser")
    if not path:
        _missing_or_skip("Chromium not found (apt-get install chromium, or set MEL_TF_CHROMIUM)")
    return path


def _require_litertjs():
    try:
        web.check_litertjs()
    except ExportError as e:
        _missing_or_skip(str(e))


# ---- refusals (no browser needed) --------------------------------------------------------

def test_missing_runtime_is_one_line_error_and_writes_nothing(tmp_path, monkeypatch, make_run):
    logdir = make_run()
    monkeypatch.setenv(litertjs.NODE_MODULES_ENV, str(tmp_path / "no_node_modules"))
    out = tmp_path / "exports" / "out"
    with pytest.raises(ExportError, match=r"npm ci") as info:
        export_generator(logdir, str(out), web=True)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "exports").exists()
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "export.py"), f"--logdir={logdir}", f"--out={out}",
         "--web"], capture_output=True, text=True, cwd=REPO, timeout=120,
        env=dict(os.environ, **{litertjs.NODE_MODULES_ENV: str(tmp_path / "no_node_modules")}))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("export.py: error:")]
    assert len(errors) == 1 and "npm ci" in errors[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "exports").exists()
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []


@pytest.mark.parametrize("images_shown,message", [(None, "does not exist"),
                                                   (IN_4X4_STABLE, "not finished a stage")])
def test_unexportable_run_with_web_is_the_usual_error(tmp_path, images_shown, message):
    _require_litertjs()
    logdir = tmp_path / "run"
    if images_shown is not None:
        make_run_dir(logdir, images_shown)
    with pytest.raises(ExportError, match=message) as info:
        export_generator(str(logdir), str(tmp_path / "out"), web=True)
    assert "\n" not in str(info.value)
    assert sorted(os.listdir(tmp_path)) == (["run"] if images_shown is not None else [])


def test_failed_batch1_validation_leaves_nothing(tmp_path, monkeypatch, make_run):
    _require_litertjs()
    logdir = make_run()
    real = convert.run_tflite

    def corrupt_batch1(path, z, **kwargs):
        icons = real(path, z, **kwargs)
        return 255 - icons if path.endswith(web.MODEL_STEM + ".tflite") else icons
    monkeypatch.setattr(convert, "run_tflite", corrupt_batch1)
    with pytest.raises(ExportError, match="batch-1 .tflite differs"):
        export_generator(logdir, str(tmp_path / "out"), tflite=True, web=True)
    assert sorted(os.listdir(tmp_path)) == ["run"]


def test_wrong_runtime_version_is_refused(tmp_path, monkeypatch):
    _require_litertjs()
    fake = tmp_path / "node_modules"
    shutil.copytree(os.path.join(litertjs.CHECKOUT, "node_modules"), fake)
    meta = fake / "@litertjs" / "core" / "package.json"
    meta.write_text(json.dumps(dict(json.loads(meta.read_text()), version="0.0.1")))
    monkeypatch.setenv(litertjs.NODE_MODULES_ENV, str(fake))
    with pytest.raises(ExportError, match=r"0\.0\.1 is installed but package.json pins"):
        web.check_litertjs()


# ---- the exported page ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The tiny run exported with --web and served on 127.0.0.1, and what
    `python -m mel_tf.deploy.generate` writes for seeds 0 and 7."""
    _require_litertjs()
    root = tmp_path_factory.mktemp("web")
    logdir = str(root / "run")
    make_run_dir(logdir, PAST_16X16_FADE, width=1 / 16,
                 dataset={"name": "twemoji", "credit": CREDIT})
    out = root / "out"
    (out).mkdir()
    (out / "notes.txt").write_text("mine")
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "export.py"), f"--logdir={logdir}", f"--out={out}",
         "--web", "--tflite", "--overwrite"], capture_output=True, text=True, cwd=REPO,
        timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    model = out / "web" / "generator_batch1.tflite"
    pngs = {}
    for seed in (0, 7):
        icons = root / f"icons_{seed}"
        subprocess.run([sys.executable, os.path.join(REPO, "generate.py"), f"--model={model}",
                        f"--seed={seed}", "--num=1", f"--out={icons}"], cwd=REPO, check=True,
                       capture_output=True, timeout=300)
        pngs[seed] = np.asarray(Image.open(icons / "icon_0000.png").convert("RGB"))

    url, server = _serve(out / "web")
    yield {"out": out, "model": str(model), "pngs": pngs, "root": root, "url": url}
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve(folder):
    """(url, server): `folder` served on 127.0.0.1 at a free port, from a thread."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/", server


@pytest.fixture(scope="module")
def browser(site):
    chromium = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing_or_skip("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        yield browser
        browser.close()


class Page:
    """A page of the site with every request URL, console error and page error recorded."""

    def __init__(self, browser, site, init_script=None, **context_args):
        self.site = site
        self.context = browser.new_context(**context_args)
        self.page = self.context.new_page()
        if init_script:
            self.page.add_init_script(init_script)
        self.requests, self.errors = [], []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.errors.append(m.text) if (
            m.type == "error" and not LITERT_LOG.match(m.text)) else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.goto(site["url"])
        self.page.evaluate("() => window.melTfPage.ready")
        self.idle()

    def idle(self):
        self.page.evaluate("() => window.melTfPage.whenIdle()")

    def canvas(self, selector="#icon"):
        rgba = self.page.evaluate("""(sel) => {
            const c = document.querySelector(sel);
            return [c.width, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)];
        }""", selector)
        size, data = rgba
        return np.array(data, np.uint8).reshape(size, size, 4)[..., :3]

    def grid(self):
        n = self.page.locator("#grid canvas").count()
        return [self.canvas(f"#grid canvas:nth-child({i + 1})") for i in range(n)]

    def draw_seed(self, text):
        self.page.fill("#seed", text)
        self.page.click("#seed-form button[type=submit]")
        self.idle()

    def check_clean(self):
        """Nothing left 127.0.0.1 and the page logged no error of its own."""
        origin = self.site["url"]
        foreign = [u for u in self.requests
                   if not (u.startswith(origin) or u.startswith("blob:" + origin))]
        assert foreign == []
        assert self.errors == []


@pytest.fixture
def page(browser, site):
    p = Page(browser, site)
    yield p
    p.context.close()


def test_export_writes_the_page_and_keeps_other_files(site):
    out = site["out"]
    assert sorted(os.listdir(out)) == ["generator.json", "generator.tflite", "notes.txt",
                                       "saved_model", "web"]
    files = sorted(os.path.relpath(os.path.join(d, f), out / "web")
                   for d, _, names in os.walk(out / "web") for f in names)
    assert files == sorted(list(web.PAGE_FILES) + [dst for _, dst in litertjs.FILES] + [
        "generator_batch1.tflite", "generator_batch1.json", "THIRD_PARTY.txt"])
    meta = json.loads((out / "web" / "generator_batch1.json").read_text())
    assert meta["inputs"][0]["shape"] == [1, 512] and meta["outputs"][0]["shape"] == [1, 16, 16, 3]
    assert meta["max_abs_diff_vs_keras"] <= 1 and meta["dataset"]["credit"] == CREDIT
    assert meta["litertjs"] == litertjs.pinned_versions()
    # The page's model gives the dynamic-batch export's icons.
    z = latents_for_seed(3, 4, 512)
    batch = load_model(str(out / "generator.tflite"))(z)
    single = np.concatenate([load_model(site["model"])(z[i:i + 1]) for i in range(4)])
    assert np.abs(batch.astype(int) - single.astype(int)).max() <= 1


def test_seeds_0_and_7_equal_generate_pngs(page, site):
    pngs = site["pngs"]
    assert pngs[0].shape == (16, 16, 3) and not np.array_equal(pngs[0], pngs[7])
    np.testing.assert_array_equal(page.canvas(), pngs[0])
    page.draw_seed("7")
    np.testing.assert_array_equal(page.canvas(), pngs[7])
    assert page.page.text_content("#icon-label") == "seed 7"
    assert page.page.evaluate("() => location.hash") == "#seed=7"
    # Enlarged by a whole number, drawn with nearest-neighbour sampling.
    style = page.page.evaluate("""() => { const c = document.getElementById('icon');
        return [c.getBoundingClientRect().width, getComputedStyle(c).imageRendering]; }""")
    assert style[0] % 16 == 0 and style[0] >= 16 * 8 and style[1] == "pixelated"
    page.check_clean()


def test_grid_shows_consecutive_seeds(page, site):
    grid = page.grid()
    assert len(grid) == GRID
    assert len({icon.tobytes() for icon in grid}) == GRID
    model = load_model(site["model"])
    for seed, icon in enumerate(grid):
        expected = model(latents_for_seed(seed, 1, 512))[0]
        assert np.abs(icon.astype(int) - expected.astype(int)).max() <= ONE_LEVEL
    page.page.fill("#count", "5")
    page.draw_seed("7")
    grid = page.grid()
    assert len(grid) == 5
    np.testing.assert_array_equal(grid[0], site["pngs"][7])
    page.page.click("#grid canvas:nth-child(1)")
    np.testing.assert_array_equal(page.canvas(), site["pngs"][7])
    page.check_clean()


def test_slider_follows_generate_interpolate(page, site):
    pngs = site["pngs"]
    slider = page.page.locator("#slider")
    assert page.page.input_value("#from") == "0" and page.page.input_value("#to") == "7"
    assert slider.get_attribute("max") == str(FRAMES - 1)
    slider.fill(str(FRAMES - 1))
    page.idle()
    np.testing.assert_array_equal(page.canvas(), pngs[7])
    slider.fill("0")
    page.idle()
    np.testing.assert_array_equal(page.canvas(), pngs[0])
    # A middle frame: the slerp path of `mel_tf.deploy.generate --interpolate`.
    slider.fill("5")
    page.idle()
    z = interpolate_latents(latents_for_seed(0, 1, 512)[0], latents_for_seed(7, 1, 512)[0],
                            FRAMES)
    expected = load_model(site["model"])(z[5:6])[0]
    middle = page.canvas()
    assert np.abs(middle.astype(int) - expected.astype(int)).max() <= ONE_LEVEL
    assert not np.array_equal(middle, pngs[0]) and not np.array_equal(middle, pngs[7])
    assert page.page.text_content("#icon-label") == "seed 0 → 7, frame 5 of 15"
    page.check_clean()


def test_download_is_the_shown_icon(page, site, tmp_path):
    page.draw_seed("7")
    with page.page.expect_download() as info:
        page.page.click("#download")
    download = info.value
    assert download.suggested_filename == "seed_7.png"
    download.save_as(tmp_path / "icon.png")
    image = Image.open(tmp_path / "icon.png")
    assert image.size == (16, 16)
    np.testing.assert_array_equal(np.asarray(image.convert("RGB")), site["pngs"][7])
    page.check_clean()


@pytest.mark.parametrize("text,message", [
    ("abc", "is not a seed"), ("-5", "cannot be negative"), ("3.5", "is not a seed"),
    ("18446744073709551616", "too large"), ("", "Enter a seed")])
def test_bad_seed_shows_message_and_keeps_icon(page, site, text, message):
    page.draw_seed(text)
    shown = page.page.locator("#seed-message")
    assert shown.is_visible() and message in shown.text_content()
    np.testing.assert_array_equal(page.canvas(), site["pngs"][0])   # not blank
    page.draw_seed("7")
    assert not shown.is_visible()
    np.testing.assert_array_equal(page.canvas(), site["pngs"][7])
    page.page.fill("#to", "-1")
    page.page.locator("#slider").fill("3")
    page.idle()
    assert "cannot be negative" in page.page.text_content("#interp-message")
    np.testing.assert_array_equal(page.canvas(), site["pngs"][7])
    page.check_clean()


def test_largest_seed_and_random(page):
    page.draw_seed("18446744073709551615")
    assert page.page.text_content("#icon-label") == "seed 18446744073709551615"
    assert not page.page.locator("#seed-message").is_visible()
    page.page.click("#random")
    page.idle()
    seed = page.page.input_value("#seed")
    assert re.fullmatch(r"\d+", seed) and page.page.text_content("#icon-label") == f"seed {seed}"
    page.check_clean()


def test_metadata_is_shown(page):
    text = page.page.text_content("#meta")
    for part in ("16 × 16", "seed", f"{PAST_16X16_FADE}", "twemoji", CREDIT):
        assert part in text
    page.check_clean()


def test_phone_viewport(browser, site, request):
    phone = Page(browser, site, viewport={"width": 360, "height": 740}, device_scale_factor=2,
                 is_mobile=True, has_touch=True)
    request.addfinalizer(phone.context.close)
    sizes = phone.page.evaluate("""() => ({
        scroll: document.documentElement.scrollWidth,
        icon: document.getElementById('icon').getBoundingClientRect().right,
        grid: document.getElementById('grid').getBoundingClientRect().right,
        cells: document.querySelectorAll('#grid canvas').length})""")
    assert sizes["scroll"] <= 360 and sizes["icon"] <= 360 and sizes["grid"] <= 360
    assert sizes["cells"] == GRID
    np.testing.assert_array_equal(phone.canvas(), site["pngs"][0])
    phone.check_clean()


def test_paper_preset_page_equals_python(browser, tmp_path, request):
    # The demo's preset: a pixel-normed latent and a dense layer before the 4x4 map.
    logdir = tmp_path / "run"
    make_run_dir(logdir, PAST_16X16_FADE, preset_name="paper", width=1 / 32)
    export_generator(str(logdir), str(tmp_path / "out"), web=True)
    url, server = _serve(tmp_path / "out" / "web")
    request.addfinalizer(server.server_close)
    request.addfinalizer(server.shutdown)
    paper = Page(browser, {"url": url})
    request.addfinalizer(paper.context.close)
    model = load_model(str(tmp_path / "out" / "web" / "generator_batch1.tflite"))
    icons = []
    for seed in (0, 7, 123456789):
        paper.draw_seed(str(seed))
        icons.append(paper.canvas())
        expected = model(latents_for_seed(seed, 1, model.latent_dim))[0]
        assert np.abs(icons[-1].astype(int) - expected.astype(int)).max() <= ONE_LEVEL
    assert len({icon.tobytes() for icon in icons}) == 3
    assert "paper" in paper.page.text_content("#meta")
    paper.check_clean()


# LiteRT.js probes relaxed SIMD by instantiating a tiny module; failing that probe
# makes it load its other build, as in a browser without relaxed SIMD.
NO_RELAXED_SIMD = """
const instantiate = WebAssembly.instantiate;
WebAssembly.instantiate = function (source, imports) {
  if (source instanceof Uint8Array && source.byteLength < 1000) {
    return Promise.reject(new WebAssembly.CompileError("relaxed SIMD disabled by the test"));
  }
  return instantiate.call(this, source, imports);
};
"""


def test_build_for_browsers_without_relaxed_simd(browser, site, request):
    compat = Page(browser, site, init_script=NO_RELAXED_SIMD)
    request.addfinalizer(compat.context.close)
    wasm = sorted(u.rsplit("/", 1)[-1] for u in compat.requests if "/litert/wasm/" in u)
    assert wasm == ["litert_wasm_compat_internal.js", "litert_wasm_compat_internal.wasm"]
    np.testing.assert_array_equal(compat.canvas(), site["pngs"][0])
    compat.draw_seed("7")
    np.testing.assert_array_equal(compat.canvas(), site["pngs"][7])
    compat.check_clean()
