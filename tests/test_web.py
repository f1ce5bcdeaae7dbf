"""`export --web`: the page in headless Chromium draws, pixel for pixel, the icons
`python generate.py` writes (also with truncation and as variations),
fetches nothing from outside 127.0.0.1, answers bad input with a message, says
how far the model's download is and why it cannot start where it cannot, keeps
the address in step with the icon shown, and works with the keyboard and on a
phone-sized screen; a missing runtime is a one-line error.

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
from mel_tf.deploy.seeds import (TRUNCATION, VARIATION, interpolate_latents, latents_for_seed,
                                 variation_latents)
from mel_tf.deploy.serving import load_model

CREDIT = "Twemoji graphics by Twitter, Inc. and other contributors, CC-BY 4.0"
# The data folder as the trainer records it: a local path the page must not show.
DATA_DIR = "/home/someone/private/my_icons"
TITLE = "Jane's <icons> & more"
PAGE_CREDIT = "Trained by Jane on her sketches"
GRID = 12                 # the page's default grid size
FRAMES = 16               # the page's default interpolation frames
VARIATIONS = 6            # icons in the page's variations row
STRENGTH = 0.3            # the page's default variation strength
TRUNCATIONS = ["off", "2", "1.5", "1", "0.7", "0.5"]   # the truncation slider's stops
# Wide enough that the model (0.68 MB) shows a download in tenths of a megabyte.
SITE_WIDTH = 1 / 4
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


def test_title_and_credit_without_web_are_refused(tmp_path, make_run):
    logdir = make_run()
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "export.py"), f"--logdir={logdir}",
         f"--out={tmp_path / 'out'}", "--title=Mine"], capture_output=True, text=True, cwd=REPO,
        timeout=120)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert errors == ["export.py: error: --title and --credit are for the page: add --web"]
    assert not (tmp_path / "out").exists()


def test_page_text_is_escaped_and_on_one_line():
    page = web.page_text("  A <b>&\n title ", None)
    assert page == {"title": "A <b>& title", "credit": None}
    assert web.page_text(None, " ")["title"] == web.DEFAULT_TITLE
    html_text = web.page_html("A <b>& title", "by <me>")
    assert "<title>A &lt;b&gt;&amp; title</title>" in html_text
    assert '<h1 id="title">A &lt;b&gt;&amp; title</h1>' in html_text
    assert '<p id="credit">by &lt;me&gt;</p>' in html_text
    assert web.CREDIT_MARK in web.page_html("t", None)


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
    """The tiny run exported with --web (and --title, --credit) and served on
    127.0.0.1, and what `python generate.py` writes for seeds 0 and 7, for
    seed 7 at truncation 0.7 and for variations 0..5 of seed 7 (also at 0.7)."""
    _require_litertjs()
    root = tmp_path_factory.mktemp("web")
    logdir = str(root / "run")
    make_run_dir(logdir, PAST_16X16_FADE, width=SITE_WIDTH,
                 dataset={"name": DATA_DIR, "data_dir": DATA_DIR, "credit": CREDIT})
    out = root / "out"
    (out).mkdir()
    (out / "notes.txt").write_text("mine")
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "export.py"), f"--logdir={logdir}", f"--out={out}",
         "--web", "--tflite", "--overwrite", f"--title={TITLE}", f"--credit={PAGE_CREDIT}"],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    model = out / "web" / "generator_batch1.tflite"
    runs = {0: ["--seed=0", "--num=1"], 7: ["--seed=7", "--num=1"],
            "t0.7": ["--seed=7", "--num=1", "--truncation=0.7"],
            "var": ["--variations_of=7", f"--variation_strength={STRENGTH}",
                    f"--num={VARIATIONS}"],
            "var_t0.7": ["--variations_of=7", f"--variation_strength={STRENGTH}", "--num=3",
                         "--truncation=0.7"]}
    pngs = {}
    for name, args in runs.items():
        folder = root / f"icons_{name}"
        subprocess.run([sys.executable, os.path.join(REPO, "generate.py"), f"--model={model}", *args,
                        f"--out={folder}"], cwd=REPO, check=True, capture_output=True,
                       timeout=300)
        pngs[name] = np.stack([np.asarray(Image.open(path).convert("RGB"))
                               for path in sorted(folder.glob("*_0*.png"))])
    for name in (0, 7, "t0.7"):
        pngs[name] = pngs[name][0]
    url, server = _serve(out / "web")
    yield {"out": out, "model": str(model), "pngs": pngs, "root": root, "url": url}
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    # Set on a subclass: (bytes, threading.Event): the model's first bytes are
    # sent, the rest only once the event is set.
    gate = None

    def log_message(self, *args):
        pass

    def copyfile(self, source, outputfile):
        if self.gate and self.path.endswith(".tflite"):
            head, release = self.gate
            outputfile.write(source.read(head))
            outputfile.flush()
            release.wait(120)
        shutil.copyfileobj(source, outputfile)


def _serve(folder, gate=None):
    """(url, server): `folder` served on 127.0.0.1 at a free port, from a thread."""
    handler_class = type("Handler", (_QuietHandler,), {"gate": gate})
    handler = functools.partial(handler_class, directory=str(folder))
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


@pytest.fixture(scope="module")
def model(site):
    return load_model(site["model"])


class Page:
    """A page of the site with every request URL, console error and page error recorded."""

    def __init__(self, browser, site, init_script=None, hash="", **context_args):
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
        self.page.goto(site["url"] + hash)
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

    def cells(self, container="#grid"):
        n = self.page.locator(f"{container} .cell").count()
        return [self.canvas(f"{container} .cell:nth-child({i + 1}) canvas") for i in range(n)]

    def grid(self):
        return self.cells("#grid")

    def draw_seed(self, text):
        self.page.fill("#seed", text)
        self.page.click("#seed-form button[type=submit]")
        self.idle()

    def hash(self):
        return self.page.evaluate("() => location.hash")

    def label(self):
        return self.page.text_content("#icon-label")

    def wait_for_label(self, text):
        """After back, forward or an edited address: the page redraws on its own."""
        self.page.wait_for_function(
            "(text) => document.getElementById('icon-label').textContent === text", arg=text)
        self.idle()

    def disabled(self):
        return _disabled(self.page)

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


def _disabled(tab):
    """Whether each input and button of the page is disabled."""
    return tab.evaluate(
        "() => [...document.querySelectorAll('main input, main button')].map(e => e.disabled)")


def _within_one_level(a, b):
    return a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).max() <= ONE_LEVEL


def test_export_writes_the_page_and_keeps_other_files(site, model):
    out = site["out"]
    assert sorted(os.listdir(out)) == ["generator.json", "generator.tflite", "notes.txt",
                                       "saved_model", "web"]
    files = sorted(os.path.relpath(os.path.join(d, f), out / "web")
                   for d, _, names in os.walk(out / "web") for f in names)
    assert files == sorted(list(web.PAGE_FILES) + [dst for _, dst in litertjs.FILES] + [
        "generator_batch1.tflite", "generator_batch1.json", "THIRD_PARTY.txt"])
    meta = json.loads((out / "web" / "generator_batch1.json").read_text())
    dim = model.latent_dim
    assert dim == 2048
    assert meta["inputs"][0]["shape"] == [1, dim] and meta["outputs"][0]["shape"] == [1, 16, 16, 3]
    assert meta["max_abs_diff_vs_keras"] <= 1 and meta["dataset"]["credit"] == CREDIT
    assert meta["litertjs"] == litertjs.pinned_versions()
    assert meta["page"] == {"title": TITLE, "credit": PAGE_CREDIT}
    # The controls' rules travel with every model, as the seed rule does.
    for name in ("generator_batch1.json", "generator.json"):
        described = json.loads(((out / "web" / name) if "batch1" in name else out / name)
                               .read_text())
        assert described["truncation"] == TRUNCATION and described["variation"] == VARIATION
    # The page's model gives the dynamic-batch export's icons.
    z = latents_for_seed(3, 4, dim)
    batch = load_model(str(out / "generator.tflite"))(z)
    single = np.concatenate([model(z[i:i + 1]) for i in range(4)])
    assert np.abs(batch.astype(int) - single.astype(int)).max() <= 1


def test_no_local_path_is_published(site):
    """The data folder is named by its last part only, in the page and its files."""
    web_dir = site["out"] / "web"
    meta = json.loads((web_dir / "generator_batch1.json").read_text())
    assert meta["dataset"]["name"] == "my_icons"
    leaks = [name for name in os.listdir(web_dir) if os.path.isfile(web_dir / name)
             and os.path.dirname(DATA_DIR).encode() in (web_dir / name).read_bytes()]
    assert leaks == []


def test_seeds_0_and_7_equal_generate_pngs(page, site):
    pngs = site["pngs"]
    assert pngs[0].shape == (16, 16, 3) and not np.array_equal(pngs[0], pngs[7])
    np.testing.assert_array_equal(page.canvas(), pngs[0])
    page.draw_seed("7")
    np.testing.assert_array_equal(page.canvas(), pngs[7])
    assert page.label() == "seed 7"
    assert page.hash() == "#seed=7"
    # Enlarged by a whole number, drawn with nearest-neighbour sampling.
    style = page.page.evaluate("""() => { const c = document.getElementById('icon');
        return [c.getBoundingClientRect().width, getComputedStyle(c).imageRendering]; }""")
    assert style[0] % 16 == 0 and style[0] >= 16 * 8 and style[1] == "pixelated"
    page.check_clean()


def test_grid_shows_consecutive_seeds(page, site, model):
    grid = page.grid()
    assert len(grid) == GRID
    assert len({icon.tobytes() for icon in grid}) == GRID
    for seed, icon in enumerate(grid):
        assert _within_one_level(icon, model(latents_for_seed(seed, 1, model.latent_dim))[0])
    page.page.fill("#count", "5")
    page.draw_seed("7")
    grid = page.grid()
    assert len(grid) == 5
    np.testing.assert_array_equal(grid[0], site["pngs"][7])
    page.page.click("#grid .cell:nth-child(1)")
    page.idle()
    np.testing.assert_array_equal(page.canvas(), site["pngs"][7])
    page.check_clean()


def test_slider_follows_generate_interpolate(page, site, model):
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
    dim = model.latent_dim
    z = interpolate_latents(latents_for_seed(0, 1, dim)[0], latents_for_seed(7, 1, dim)[0],
                            FRAMES)
    middle = page.canvas()
    assert _within_one_level(middle, model(z[5:6])[0])
    assert not np.array_equal(middle, pngs[0]) and not np.array_equal(middle, pngs[7])
    assert page.label() == "seed 0 → 7, frame 5 of 15"
    assert page.page.text_content("#frame-value") == "5/15"
    page.check_clean()


def test_downloads_at_1x_2x_4x(page, site, tmp_path):
    page.draw_seed("7")
    icon = site["pngs"][7]
    for scale, name in ((1, "seed_7.png"), (2, "seed_7@2x.png"), (4, "seed_7@4x.png")):
        with page.page.expect_download() as info:
            page.page.click(f"#download-{scale}")
        download = info.value
        assert download.suggested_filename == name
        download.save_as(tmp_path / name)
        image = Image.open(tmp_path / name)
        assert image.size == (16 * scale, 16 * scale) and image.mode in ("RGB", "RGBA")
        # Nearest-neighbour: each pixel of the icon becomes a scale x scale block;
        # at 1x the file is the model's icon itself.
        expected = np.repeat(np.repeat(icon, scale, axis=0), scale, axis=1)
        np.testing.assert_array_equal(np.asarray(image.convert("RGB")), expected)
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
    assert page.label() == "seed 18446744073709551615"
    assert not page.page.locator("#seed-message").is_visible()
    page.page.click("#random")
    page.idle()
    seed = page.page.input_value("#seed")
    assert re.fullmatch(r"\d+", seed) and page.label() == f"seed {seed}"
    page.check_clean()


def test_title_credit_and_metadata_are_shown(page):
    assert page.page.title() == TITLE
    assert page.page.text_content("h1") == TITLE
    assert page.page.text_content("#credit") == PAGE_CREDIT
    assert page.page.locator("#credit").is_visible()
    text = page.page.text_content("#meta")
    for part in ("16 × 16", "seed", f"{PAST_16X16_FADE}", "my_icons", CREDIT):
        assert part in text
    assert os.path.dirname(DATA_DIR) not in page.page.content()
    page.check_clean()


# ---- loading, and browsers that cannot run the page -------------------------------------

def test_download_progress_and_inputs_disabled_until_ready(browser, site, request):
    size = os.path.getsize(site["model"])
    head = size * 3 // 4
    release = threading.Event()
    url, server = _serve(site["out"] / "web", gate=(head, release))
    request.addfinalizer(server.server_close)
    request.addfinalizer(server.shutdown)
    request.addfinalizer(release.set)
    context = browser.new_context()
    request.addfinalizer(context.close)
    tab = context.new_page()
    tab.goto(url)
    expected = f"Downloading the model: {head / 1e6:.1f} of {size / 1e6:.1f} MB"
    assert expected == "Downloading the model: 0.5 of 0.7 MB"
    tab.wait_for_function(
        "(text) => document.getElementById('status').textContent === text", arg=expected)
    assert tab.evaluate("() => [document.getElementById('progress').value, "
                        "document.getElementById('progress').max]") == [head, size]
    disabled = _disabled(tab)
    assert len(disabled) == 15 and all(disabled)
    release.set()
    tab.evaluate("() => window.melTfPage.ready")
    tab.evaluate("() => window.melTfPage.whenIdle()")
    assert not any(_disabled(tab))
    assert tab.text_content("#status") == ""
    assert not tab.locator("#progress").is_visible()


def _unsupported_page(browser, url, request, init_script=None):
    context = browser.new_context()
    request.addfinalizer(context.close)
    tab = context.new_page()
    if init_script:
        tab.add_init_script(init_script)
    tab.goto(url)
    status = tab.locator("#status")
    return status.text_content(), status.get_attribute("class"), _disabled(tab)


@pytest.mark.parametrize("case,init_script,words", [
    ("file", None, ["file://", "python -m http.server", "http://localhost:8000"]),
    ("import maps", "HTMLScriptElement.supports = () => false;", ["import maps"]),
    ("WebAssembly", "delete globalThis.WebAssembly;", ["no WebAssembly"])])
def test_page_says_why_it_cannot_start(browser, site, request, case, init_script, words):
    url = (site["out"] / "web" / "index.html").as_uri() if case == "file" else site["url"]
    text, css_class, disabled = _unsupported_page(browser, url, request, init_script)
    for word in words:
        assert word in text
    assert css_class == "error"
    assert len(disabled) == 15 and all(disabled)


# ---- the address, history and keyboard ---------------------------------------------------

def test_grid_click_pushes_seed_and_back_returns(page, site):
    grid = page.grid()
    page.page.click("#grid .cell:nth-child(4)")
    page.idle()
    assert page.hash() == "#seed=3" and page.page.input_value("#seed") == "3"
    np.testing.assert_array_equal(page.canvas(), grid[3])
    page.page.click("#grid .cell:nth-child(6)")
    page.idle()
    assert page.hash() == "#seed=5"
    np.testing.assert_array_equal(page.canvas(), grid[5])
    page.page.go_back()
    page.wait_for_label("seed 3")
    assert page.hash() == "#seed=3" and page.page.input_value("#seed") == "3"
    np.testing.assert_array_equal(page.canvas(), grid[3])
    page.page.go_back()
    page.wait_for_label("seed 0")
    np.testing.assert_array_equal(page.canvas(), site["pngs"][0])
    page.page.go_forward()
    page.wait_for_label("seed 3")
    np.testing.assert_array_equal(page.canvas(), grid[3])
    # An address edited by hand (hashchange).
    page.page.evaluate("() => { location.hash = '#seed=7'; }")
    page.wait_for_label("seed 7")
    np.testing.assert_array_equal(page.canvas(), site["pngs"][7])
    assert page.page.get_attribute("#grid .cell:nth-child(8)", "aria-current") == "true"
    page.check_clean()


def test_opening_an_address_shows_its_icon(browser, site, request):
    opened = Page(browser, site, hash="#seed=7")
    request.addfinalizer(opened.context.close)
    np.testing.assert_array_equal(opened.canvas(), site["pngs"][7])
    assert opened.label() == "seed 7" and opened.page.input_value("#seed") == "7"
    opened.check_clean()
    # A bad address: the message, and seed 0.
    bad = Page(browser, site, hash="#seed=abc")
    request.addfinalizer(bad.context.close)
    assert "is not a seed" in bad.page.text_content("#seed-message")
    np.testing.assert_array_equal(bad.canvas(), site["pngs"][0])
    bad.check_clean()


def test_icon_is_an_image_with_its_seed_in_its_label(page):
    icon = page.page.locator("#icon")
    assert icon.get_attribute("role") == "img"
    assert "seed 0" in icon.get_attribute("aria-label")
    page.draw_seed("123")
    assert "seed 123" in icon.get_attribute("aria-label")
    labels = [page.page.get_attribute(f"#grid .cell:nth-child({i + 1})", "aria-label")
              for i in range(3)]
    assert labels == ["seed 123", "seed 124", "seed 125"]
    page.check_clean()


def _focused(page):
    return page.page.evaluate("() => document.activeElement.dataset.seed || null")


def test_grid_works_with_the_keyboard(browser, site, request):
    # Phone-sized, so the grid has several rows.
    phone = Page(browser, site, viewport={"width": 390, "height": 844})
    request.addfinalizer(phone.context.close)
    grid = phone.grid()
    columns = phone.page.evaluate("""() => {
        const cells = [...document.querySelectorAll('#grid .cell')];
        return cells.filter(c => c.offsetTop === cells[0].offsetTop).length; }""")
    assert 2 <= columns < GRID
    phone.page.focus("#grid-form button[type=submit]")
    phone.page.keyboard.press("Tab")
    assert _focused(phone) == "0"
    phone.page.keyboard.press("ArrowLeft")
    assert _focused(phone) == "0"
    phone.page.keyboard.press("ArrowRight")
    assert _focused(phone) == "1"
    phone.page.keyboard.press("Enter")
    phone.idle()
    assert phone.hash() == "#seed=1"
    np.testing.assert_array_equal(phone.canvas(), grid[1])
    phone.page.keyboard.press("ArrowDown")
    assert _focused(phone) == str(1 + columns)
    phone.page.keyboard.press("Space")
    phone.idle()
    assert phone.hash() == f"#seed={1 + columns}"
    np.testing.assert_array_equal(phone.canvas(), grid[1 + columns])
    phone.page.keyboard.press("ArrowUp")
    assert _focused(phone) == "1"
    phone.page.keyboard.press("End")
    assert _focused(phone) == str(GRID - 1)
    # One tab stop: Tab leaves the grid.
    phone.page.keyboard.press("Tab")
    assert phone.page.evaluate(
        "() => document.getElementById('grid').contains(document.activeElement)") is False
    phone.check_clean()


# ---- truncation and variations -----------------------------------------------------------

def test_truncation_slider_equals_generate(page, site, model):
    dim = model.latent_dim
    assert page.page.get_attribute("#truncation", "max") == str(len(TRUNCATIONS) - 1)
    assert page.page.text_content("#truncation-value") == "off"
    page.draw_seed("7")
    page.page.locator("#truncation").fill(str(TRUNCATIONS.index("0.7")))
    page.idle()
    assert page.hash() == "#seed=7&t=0.7"
    assert page.page.text_content("#truncation-value") == "0.7"
    assert page.label() == "seed 7, truncation 0.7"
    truncated = page.canvas()
    assert _within_one_level(truncated, site["pngs"]["t0.7"])
    assert not np.array_equal(truncated, site["pngs"][7])
    # The grid follows the truncation.
    for k, icon in enumerate(page.grid()[:4]):
        assert _within_one_level(icon, model(latents_for_seed(7 + k, 1, dim, 0.7))[0])
    # Off again: today's icon, byte for byte.
    page.page.locator("#truncation").fill("0")
    page.idle()
    assert page.hash() == "#seed=7"
    np.testing.assert_array_equal(page.canvas(), site["pngs"][7])
    page.check_clean()


@pytest.mark.parametrize("hash,expected", [("#seed=7&t=0.7", ("t0.7", None)),
                                           ("#seed=7&var=2&s=0.3", ("var", 2)),
                                           ("#seed=7&t=0.7&var=2&s=0.3", ("var_t0.7", 2))])
def test_address_reproduces_truncation_and_variation(browser, site, request, hash, expected):
    opened = Page(browser, site, hash=hash)
    request.addfinalizer(opened.context.close)
    name, k = expected
    icon = site["pngs"][name] if k is None else site["pngs"][name][k]
    assert _within_one_level(opened.canvas(), icon)
    assert opened.hash() == hash
    assert "seed 7" in opened.page.get_attribute("#icon", "aria-label")
    opened.check_clean()


def test_variations_row_and_picking_one(page, site, model):
    page.draw_seed("7")
    row = page.cells("#variations")
    assert len(row) == VARIATIONS
    assert page.page.text_content("#strength-value") == str(STRENGTH)
    for k, icon in enumerate(row):
        assert _within_one_level(icon, site["pngs"]["var"][k])
    page.page.click("#variations .cell:nth-child(3)")
    page.idle()
    assert page.hash() == "#seed=7&var=2&s=0.3"
    assert page.label() == "seed 7, variation 2 (strength 0.3)"
    np.testing.assert_array_equal(page.canvas(), row[2])
    page.page.click("#variations .cell:nth-child(5)")
    page.idle()
    assert page.hash() == "#seed=7&var=4&s=0.3"
    # A stronger variation: the large icon and the row move further from the seed.
    page.page.locator("#strength").fill("0.6")
    page.idle()
    assert page.hash() == "#seed=7&var=4&s=0.6"
    expected = model(variation_latents(7, 5, model.latent_dim, 0.6))
    assert _within_one_level(page.canvas(), expected[4])
    for k, icon in enumerate(page.cells("#variations")[:5]):
        assert _within_one_level(icon, expected[k])
    # The strength slider replaced its entry: back returns to variation 2 at 0.3.
    page.page.go_back()
    page.wait_for_label("seed 7, variation 2 (strength 0.3)")
    np.testing.assert_array_equal(page.canvas(), row[2])
    page.page.go_back()
    page.wait_for_label("seed 7")
    np.testing.assert_array_equal(page.canvas(), site["pngs"][7])
    page.check_clean()


# ---- screens -------------------------------------------------------------------------------

def _box_gap(a, b):
    """Distance in CSS pixels between two boxes (0 when they touch or overlap)."""
    dx = max(0.0, a["x"] - (b["x"] + b["width"]), b["x"] - (a["x"] + a["width"]))
    dy = max(0.0, a["y"] - (b["y"] + b["height"]), b["y"] - (a["y"] + a["height"]))
    return (dx * dx + dy * dy) ** 0.5


SLIDER_GAP_PX = 48


@pytest.mark.parametrize("screen", ["phone", "desktop"])
def test_sliders_sit_by_the_icon(browser, site, request, screen):
    args = (dict(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                 has_touch=True) if screen == "phone" else
            dict(viewport={"width": 1280, "height": 800}))
    shown = Page(browser, site, **args)
    request.addfinalizer(shown.context.close)
    icon = shown.page.locator("#icon").bounding_box()
    width = args["viewport"]["width"]
    for slider in ("#truncation", "#slider"):
        box = shown.page.locator(slider).bounding_box()
        assert _box_gap(icon, box) <= SLIDER_GAP_PX, (slider, icon, box)
        if screen == "phone":        # directly under the icon
            assert box["y"] >= icon["y"] + icon["height"]
        else:                        # beside it
            assert box["x"] >= icon["x"] + icon["width"]
        # Both in the first screenful, with the icon.
        assert box["y"] + box["height"] <= args["viewport"]["height"]
    sizes = shown.page.evaluate("""() => ({
        scroll: document.documentElement.scrollWidth,
        grid: document.getElementById('grid').getBoundingClientRect().right,
        variations: document.getElementById('variations').getBoundingClientRect().right,
        cells: document.querySelectorAll('#grid .cell').length})""")
    assert sizes["scroll"] <= width and sizes["grid"] <= width and sizes["variations"] <= width
    assert icon["x"] + icon["width"] <= width and icon["width"] % 16 == 0
    assert sizes["cells"] == GRID
    np.testing.assert_array_equal(shown.canvas(), site["pngs"][0])
    shown.check_clean()


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
        assert _within_one_level(icons[-1], model(latents_for_seed(seed, 1, model.latent_dim))[0])
    assert len({icon.tobytes() for icon in icons}) == 3
    # Truncation and variations on a 512-d pixel-normalised latent.
    paper.page.locator("#truncation").fill(str(TRUNCATIONS.index("1")))
    paper.idle()
    assert _within_one_level(paper.canvas(),
                             model(latents_for_seed(123456789, 1, model.latent_dim, 1.0))[0])
    paper.page.click("#variations .cell:nth-child(2)")
    paper.idle()
    expected = model(variation_latents(123456789, 2, model.latent_dim, STRENGTH, 1.0))[1]
    assert _within_one_level(paper.canvas(), expected)
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
