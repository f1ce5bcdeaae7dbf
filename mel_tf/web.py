"""The browser page written by `export.py --web`: icons made on the user's device by LiteRT.js.

    out_dir/web/
      index.html, app.js, seed.js, style.css   the page (from mel_tf/web_page/; the
                                               title and credit line written in)
      generator_batch1.tflite                  float32, z of static shape [1, latent]
      generator_batch1.json                    its description (as generator.json)
      litert/                                  LiteRT.js, copied from the npm packages
      THIRD_PARTY.txt                          what litert/ is and its licence

Any static host serves the folder (`python -m http.server -d out_dir/web`);
module scripts do not load from file://. Nothing is fetched from another
origin: the LiteRT.js modules are mapped by the page's import map and the
WebAssembly runtime sits beside them.

The page needs its own model because LiteRT.js runs only static shapes and the
other exports keep the batch dimension dynamic. The batch-1 file is checked like
the float32 .tflite: through the LiteRT interpreter, against the Keras
generator, within one level of 255 on every pixel, or nothing is written.

LiteRT.js comes from npm (package.json and package-lock.json at the root of the
checkout pin the versions; `npm ci` installs them into node_modules/, or
$MEL_TF_NODE_MODULES names another node_modules folder). Only the
files the page can load are copied: the ES modules and the two single-threaded
WebAssembly builds (`litert_wasm_internal`, for browsers with relaxed SIMD, and
`litert_wasm_compat_internal` for the others); a browser downloads one of them.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import tempfile
from typing import Callable, Optional

import numpy as np

from mel_tf import export
from mel_tf.export import MAX_FLOAT32_DIFF, ExportError

PAGE_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web_page")
PAGE_FILES = ("index.html", "app.js", "seed.js", "style.css")
DEFAULT_TITLE = "mel_tf icons"
# Where index.html takes the credit line (export --credit).
CREDIT_MARK = '<p id="credit" hidden></p>'
MODEL_STEM = "generator_batch1"
# The checkout holding package.json; node_modules/ is installed beside it.
CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE_MODULES_ENV = "MEL_TF_NODE_MODULES"
LITERTJS_PACKAGES = ("@litertjs/core", "@litertjs/wasm-utils")
# (file in node_modules, where the page loads it from)
LITERTJS_FILES = (
    ("@litertjs/core/dist/index.js", "litert/core/index.js"),
    ("@litertjs/wasm-utils/dist/index.js", "litert/wasm-utils/index.js"),
    ("@litertjs/core/wasm/litert_wasm_internal.js", "litert/wasm/litert_wasm_internal.js"),
    ("@litertjs/core/wasm/litert_wasm_internal.wasm", "litert/wasm/litert_wasm_internal.wasm"),
    ("@litertjs/core/wasm/litert_wasm_compat_internal.js",
     "litert/wasm/litert_wasm_compat_internal.js"),
    ("@litertjs/core/wasm/litert_wasm_compat_internal.wasm",
     "litert/wasm/litert_wasm_compat_internal.wasm"),
)


def node_modules_dir() -> str:
    """Where the LiteRT.js packages are read from: $MEL_TF_NODE_MODULES, else
    node_modules/ beside the checkout's package.json."""
    return os.environ.get(NODE_MODULES_ENV) or os.path.join(CHECKOUT, "node_modules")


def pinned_versions() -> dict:
    """{package: version} as pinned in the checkout's package.json."""
    with open(os.path.join(CHECKOUT, "package.json")) as f:
        deps = json.load(f)["dependencies"]
    return {name: deps[name] for name in LITERTJS_PACKAGES}


def check_litertjs() -> dict:
    """{package: version} of the installed LiteRT.js packages; ExportError (one
    line, with the command to run) when they are missing or not the pinned ones."""
    modules = node_modules_dir()
    install = f"run `npm ci` in {CHECKOUT}"
    try:
        pinned = pinned_versions()
    except (OSError, ValueError, KeyError) as e:
        raise ExportError(f"--web needs the checkout's package.json ({CHECKOUT}): "
                          f"{type(e).__name__}: {e}") from e
    found = {}
    for name in LITERTJS_PACKAGES:
        try:
            with open(os.path.join(modules, name, "package.json")) as f:
                found[name] = json.load(f)["version"]
        except (OSError, ValueError, KeyError):
            raise ExportError(f"--web needs the LiteRT.js npm packages, not found in "
                              f"{modules}: {install}") from None
        if found[name] != pinned[name]:
            raise ExportError(f"--web: {name} {found[name]} is installed but package.json "
                              f"pins {pinned[name]}: {install}")
    missing = [src for src, _ in LITERTJS_FILES if not os.path.isfile(os.path.join(modules, src))]
    if missing:
        raise ExportError(f"--web: {missing[0]} is missing from {modules}: {install}")
    return found


def write_page(net, web_dir: str, final_dir: str, description: dict, z_check: np.ndarray,
               reference: Optional[np.ndarray],
               log: Optional[Callable[[str], None]] = None, title: Optional[str] = None,
               credit: Optional[str] = None) -> dict:
    """Writes the page into `web_dir` (which must not exist).

    net: the exported graph (litert_layout.LiteRTGenerator), at the exported stage.
    description: the JSON shared by every export (export._describe).
    reference: the Keras generator's icons for z_check, or None to skip the check.
    final_dir: where web_dir will end up, for the summary.
    title, credit: the page's title (default DEFAULT_TITLE) and a line under it.
    Returns {"path", "model", "bytes", "max_abs_diff", "litertjs"}.
    """
    log = log or (lambda message: None)
    versions = check_litertjs()
    os.makedirs(web_dir)
    model_name = MODEL_STEM + ".tflite"
    model_path = os.path.join(web_dir, model_name)
    saved_model = tempfile.mkdtemp(prefix=".saved_model_batch1-", dir=os.path.dirname(web_dir))
    try:
        export.write_saved_model(net, saved_model, batch_size=1)
        with open(model_path, "wb") as f:
            f.write(export.convert_to_tflite(saved_model, "none"))
    finally:
        shutil.rmtree(saved_model, ignore_errors=True)
    _check_static_input(model_path, net.cfg.latent_dim)
    diff = None
    if reference is not None:
        # One latent per call: the file takes a batch of exactly one.
        icons = np.concatenate([export.run_tflite(model_path, z[None]) for z in z_check])
        export._check_icons(icons, len(z_check), reference.shape[1], model_path)
        diff = export._max_abs_diff(icons, reference)
        if diff > MAX_FLOAT32_DIFF:
            raise ExportError(f"the browser's batch-1 .tflite differs from the Keras generator "
                              f"by {diff}/255 (at most {MAX_FLOAT32_DIFF} allowed); nothing was "
                              f"written")
    size = os.path.getsize(model_path)
    resolution = description["resolution"]
    page = page_text(title, credit)
    meta = dict(description, file=model_name, quantization="float32", bytes=size,
                max_abs_diff_vs_keras=diff, litertjs=versions, page=page)
    meta["inputs"] = [dict(meta["inputs"][0], shape=[1, net.cfg.latent_dim],
                           description="one latent vector, each entry i.i.d. N(0, 1); the "
                                       "shape is static (LiteRT.js runs static shapes only)")]
    meta["outputs"] = [dict(meta["outputs"][0], shape=[1, resolution, resolution, 3])]
    with open(os.path.join(web_dir, MODEL_STEM + ".json"), "w") as f:
        json.dump(meta, f, indent=2)
    for name in PAGE_FILES:
        if name == "index.html":
            with open(os.path.join(web_dir, name), "w") as f:
                f.write(page_html(page["title"], page["credit"]))
        else:
            shutil.copyfile(os.path.join(PAGE_SOURCE, name), os.path.join(web_dir, name))
    modules = node_modules_dir()
    for src, dst in LITERTJS_FILES:
        os.makedirs(os.path.dirname(os.path.join(web_dir, dst)), exist_ok=True)
        shutil.copyfile(os.path.join(modules, src), os.path.join(web_dir, dst))
    with open(os.path.join(web_dir, "THIRD_PARTY.txt"), "w") as f:
        f.write("litert/ holds files of the npm packages "
                + ", ".join(f"{n} {v}" for n, v in versions.items())
                + " (https://github.com/google-ai-edge/LiteRT, litert/js), unmodified,\n"
                  "under the Apache License 2.0: https://www.apache.org/licenses/LICENSE-2.0\n")
    log(f"web page: {model_name} {size / 1e6:.2f} MB"
        + (f", max |tflite - Keras| = {diff}/255" if diff is not None else "")
        + ", LiteRT.js " + versions[LITERTJS_PACKAGES[0]])
    return {"path": final_dir, "model": os.path.join(final_dir, model_name), "bytes": size,
            "max_abs_diff": diff, "litertjs": versions}


def page_text(title: Optional[str], credit: Optional[str]) -> dict:
    """{"title", "credit"}: each on one line; no title is DEFAULT_TITLE, no credit None."""
    title = " ".join((title or "").split()) or DEFAULT_TITLE
    credit = " ".join((credit or "").split()) or None
    return {"title": title, "credit": credit}


def page_html(title: str, credit: Optional[str]) -> str:
    """index.html with the title and credit line written in, HTML-escaped."""
    with open(os.path.join(PAGE_SOURCE, "index.html")) as f:
        text = f.read()
    default_title = html.escape(DEFAULT_TITLE)
    marks = {f"<title>{default_title}</title>": f"<title>{html.escape(title)}</title>",
             f'<h1 id="title">{default_title}</h1>': f'<h1 id="title">{html.escape(title)}</h1>',
             CREDIT_MARK: (CREDIT_MARK if credit is None else
                           f'<p id="credit">{html.escape(credit)}</p>')}
    for mark, replacement in marks.items():
        if text.count(mark) != 1:
            raise ExportError(f"the page's index.html must hold {mark!r} once")
        text = text.replace(mark, replacement)
    return text


def _check_static_input(path: str, latent_dim: int):
    from ai_edge_litert.interpreter import Interpreter
    details = Interpreter(model_path=path).get_input_details()
    shape = [int(d) for d in details[0]["shape_signature"]] if details else None
    if shape != [1, latent_dim]:
        raise ExportError(f"the browser's .tflite takes z of shape {shape}, expected the static "
                          f"[1, {latent_dim}] LiteRT.js needs")
