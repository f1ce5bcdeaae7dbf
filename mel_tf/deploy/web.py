"""The browser page written by `export.py --web`: icons made on the user's device by LiteRT.js.

    out_dir/web/
      index.html, app.js, seed.js, style.css   the page (from mel_tf/deploy/web_page/; the
                                               title and credit line written in)
      generator_batch1.tflite                  float32, z of static shape [1, latent]
      generator_batch1.json                    its description (as generator.json)
      litert/                                  LiteRT.js (mel_tf.deploy.litertjs)
      THIRD_PARTY.txt                          what litert/ is and its licence

Any static host serves the folder (`python -m http.server -d out_dir/web`);
module scripts do not load from file://. Nothing is fetched from another
origin: the LiteRT.js modules are mapped by the page's import map and the
WebAssembly runtime sits beside them.

The page needs its own model because LiteRT.js runs only static shapes and the
other exports keep the batch dimension dynamic. The batch-1 file is checked like
the float32 .tflite: through the LiteRT interpreter, against the Keras
generator, within one level of 255 on every pixel, or nothing is written.

LiteRT.js comes with the installed package, or from npm in a clone
(mel_tf.deploy.litertjs says which files and from where).
"""

from __future__ import annotations

import html
import json
import os
import shutil
import tempfile
from typing import Callable, Optional

import numpy as np

from mel_tf.deploy import convert, litertjs
from mel_tf.deploy.convert import ExportError

PAGE_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web_page")
PAGE_FILES = ("index.html", "app.js", "seed.js", "style.css")
DEFAULT_TITLE = "mel_tf icons"
# Where index.html takes the credit line (export --credit).
CREDIT_MARK = '<p id="credit" hidden></p>'
MODEL_STEM = "generator_batch1"


def check_litertjs() -> dict:
    """{package: version} of the LiteRT.js the page will carry; ExportError (one
    line, with what to run) when there is none as pinned (mel_tf.deploy.litertjs)."""
    try:
        return litertjs.locate()[1]
    except litertjs.LiteRTJSError as e:
        raise ExportError(str(e)) from e


def write_page(net, web_dir: str, final_dir: str, description: dict, z_check: np.ndarray,
               reference: Optional[np.ndarray],
               log: Optional[Callable[[str], None]] = None, title: Optional[str] = None,
               credit: Optional[str] = None) -> dict:
    """Writes the page into `web_dir` (which must not exist).

    net: the exported graph (litert_layout.LiteRTGenerator), at the exported stage.
    description: the JSON shared by every export .
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
        convert.write_saved_model(net, saved_model, batch_size=1)
        with open(model_path, "wb") as f:
            f.write(convert.convert_to_tflite(saved_model, "none"))
    finally:
        shutil.rmtree(saved_model, ignore_errors=True)
    _check_static_input(model_path, net.cfg.latent_dim)
    diff = None
    if reference is not None:
        # One latent per call: the file takes a batch of exactly one.
        icons = np.concatenate([convert.run_tflite(model_path, z[None]) for z in z_check])
        convert.check_icons(icons, len(z_check), reference.shape[1], model_path)
        diff = convert.check_float32(icons, reference, "the browser's batch-1 .tflite")
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
    litertjs.copy_into(web_dir)
    log(f"web page: {model_name} {size / 1e6:.2f} MB"
        + (f", max |tflite - Keras| = {diff}/255" if diff is not None else "")
        + ", LiteRT.js " + versions[litertjs.PACKAGES[0]])
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
