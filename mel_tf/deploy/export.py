"""Export a trained generator for serving and for phones.

    out_dir/
      saved_model/                 TensorFlow SavedModel, signature "serving_default"
      generator.json               what the model is (see below), and what the
                                   folder holds (its "export" record)
      generator.tflite             float32 LiteRT model          (with tflite=True)
      generator_float16.tflite     float16 weights               (quantize "float16")
      generator_int8.tflite        int8 weights, dynamic range   (quantize "int8")
      generator_*.json             one description beside each .tflite (the
                                   float32 one's is generator.json)
      web/                         a static page that runs the generator in a
                                   browser with LiteRT.js (web=True; mel_tf.deploy.web)

Every model maps latents z (float32 [N, latent_dim], input name "z") to icons
(uint8 [N, R, R, 3], RGB, output name "icons"); the conversion from the
network's data range to 0..255 (`network_to_uint8`) is inside the graph, so an
app only feeds latents and reads pixels. How a seed becomes z is documented in
`mel_tf.deploy.seeds.latents_for_seed` and repeated in every JSON, with the rules of
the two optional controls of a seed's latent (truncation and variations). The
signature's names and the loading of a run belong to mel_tf.deploy.serving; the graph
is laid out for LiteRT by mel_tf.deploy.litert_layout.

The exported network is the EMA generator at one stage with the fade finished
(a = 1). By default that is the highest resolution whose phase has finished
(`rundir.completed_resolution`); a stage still fading in is exported only when
asked (`allow_partial_fade`), and then also at a = 1.

Quantization. "float16" stores the weights as float16 (half the size, float32
maths). "int8" is dynamic-range quantization: int8 weights, float32 activations.
Full-integer quantization (int8 activations calibrated on N(0, 1) latents) is
not offered: it lost more quality than dynamic range for no speed gain on
XNNPack (docs/performance.md).

Metadata. The `tflite_support` metadata writer would need protobuf 3 and so
cannot be installed beside TensorFlow 2.21; the JSON beside each .tflite is the
documented description instead.

Exports add up. Another export into the same folder adds the formats it writes
and keeps the others; the SavedModel and generator.json, shared by every
format, are rewritten. That holds only for the same network (the same run,
checkpoint and stage): an export of another one into the folder is refused
unless `overwrite`, and so is one into a folder holding files but no export
record. `overwrite` replaces only what the call writes and the shared files,
never another format's files or files that are not an export's.
generator.json's "export" entry records the formats present and what each was
exported from (mel_tf.deploy.export_folder states the rule and the record).

Output safety. Everything is written into a temporary folder beside out_dir,
validated, and only then moved into place, so a failed export leaves out_dir
as it was; the entries a successful one replaces are moved aside first and
put back if moving the new ones in fails.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import math
import os
import re
import shutil
import tempfile
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

import mel_tf
from mel_tf.config import NetworkConfig
from mel_tf.errors import first_line
from mel_tf.training import rundir
from mel_tf.training.data import TWEMOJI_CREDIT
from mel_tf.deploy import web as web_page
from mel_tf.deploy import convert, export_folder
from mel_tf.deploy.convert import ExportError
from mel_tf.deploy.export_folder import RECORD_FILE, SAVED_MODEL_DIR, WEB_DIR
from mel_tf.deploy.litert_layout import LiteRTGenerator
from mel_tf.deploy.seeds import SEED_TO_Z, TRUNCATION, VARIATION, latents_for_seed
from mel_tf.deploy.serving import (INPUT_NAME, OUTPUT_NAME, SIGNATURE_KEY, ModelLoadError,
                                   SavedModelIconModel, load_run_generator)

QUANTIZE_MODES = ("none", "float16", "int8")
# File stem and the description written into its JSON, per quantize mode.
TFLITE_STEMS = {"none": "generator", "float16": "generator_float16", "int8": "generator_int8"}
QUANTIZATION_NAMES = {"none": "float32",
                      "float16": "float16 weights, float32 compute",
                      "int8": "int8 weights (dynamic range), float32 activations"}
# The export folder's format of each mode's file (export_folder.FORMAT_FILES).
TFLITE_FORMATS = {"none": "tflite_float32", "float16": "tflite_float16", "int8": "tflite_int8"}
# generator.json's entries that describe generator.tflite, beside the shared ones.
FLOAT32_FIELDS = ("file", "quantization", "bytes", "psnr_db_vs_float32", "max_abs_diff_vs_keras")
# Credit line of the built-in Twemoji dataset, for runs trained on it.
VALIDATION_LATENTS = 8

_logger = logging.getLogger("mel_tf.deploy.export")


# ---- public API ---------------------------------------------------------------

def export_generator(logdir: str, out_dir: str, tflite: bool = False,
                     quantize: Union[str, Sequence[str]] = ("none",),
                     resolution: Optional[int] = None, allow_partial_fade: bool = False,
                     validate: bool = True, overwrite: bool = False,
                     dataset_credit: Optional[str] = None, web: bool = False,
                     page_title: Optional[str] = None, page_credit: Optional[str] = None,
                     log: Optional[Callable[[str], None]] = None) -> dict:
    """Exports the EMA generator of the run in `logdir` to `out_dir`.

    quantize: "none", "float16", "int8" or a list / comma list of them; a
    quantized mode implies `tflite`. resolution: the stage to export (default:
    the highest completed one). dataset_credit: overrides the credit read from
    logdir/dataset.json. web: also write the browser page (see
    `export_from_generator`), with `page_title` and `page_credit` (a line under
    the title). Returns the summary of `export_from_generator`.
    Raises ExportError (a ValueError) for a run that cannot be exported.
    """
    log = log or _logger.info
    parse_quantize(quantize)          # refuse a bad mode before the slow part
    export_folder.check(export_folder.read(out_dir), None, overwrite)
    if web:
        web_page.check_litertjs()
    try:
        run = load_run_generator(logdir, resolution=resolution,
                                 allow_partial_fade=allow_partial_fade)
    except ModelLoadError as e:
        raise ExportError(str(e)) from e
    if not run.fade_complete:
        log(f"exporting {run.resolution}x{run.resolution} at a=1 although its fade is only "
            f"{run.training_alpha:.0%} done (allow_partial_fade)")
    description = {
        # The run by its folder's name: no local path in a published JSON.
        "run": os.path.basename(os.path.abspath(logdir)),
        "checkpoint": os.path.basename(run.checkpoint),
        "images_trained": run.images_shown,
        "fade_complete": run.fade_complete,
        "training_alpha": run.training_alpha,
        "dataset": _dataset_info(logdir, dataset_credit, log),
    }
    return export_from_generator(run.generator, out_dir, resolution=run.resolution,
                                 tflite=tflite, quantize=quantize, validate=validate,
                                 overwrite=overwrite, description=description, web=web,
                                 page_title=page_title, page_credit=page_credit, log=log)


def export_from_generator(generator, out_dir: str, resolution: Optional[int] = None,
                          tflite: bool = False,
                          quantize: Union[str, Sequence[str]] = ("none",),
                          validate: bool = True, overwrite: bool = False,
                          description: Optional[dict] = None, web: bool = False,
                          page_title: Optional[str] = None, page_credit: Optional[str] = None,
                          log: Optional[Callable[[str], None]] = None) -> dict:
    """Exports a `Generator` object at `resolution` (default: its target), a = 1.

    web: also write out_dir/web/, the browser page with a batch-1 .tflite
    (`mel_tf.deploy.web.write_page`, which takes `page_title` and `page_credit`); it
    needs LiteRT.js (mel_tf.deploy.litertjs).

    The generator itself is left untouched (a float32 copy is exported).
    `description` entries are added to every JSON; its "run" and "checkpoint"
    name the source in out_dir's record. An out_dir that already holds an
    export gets the formats written now added (see the module's rule). Returns
        {"out_dir", "resolution", "latent_dim",
         "saved_model": {"path", "bytes", "max_abs_diff"},
         "tflite": [{"path", "json", "quantize", "bytes", "max_abs_diff", "psnr_db"}, ...],
         "web": {"path", "model", "bytes", "max_abs_diff", "litertjs"} (with web),
         "formats": [the formats out_dir holds now], "kept": [those kept from before]}
    where max_abs_diff is against the Keras generator (uint8 levels) and psnr_db
    against the float32 .tflite (inf when identical); both are None without
    `validate`.
    """
    log = log or _logger.info
    modes = parse_quantize(quantize)
    if modes != ["none"] and not tflite:
        log(f"quantize {','.join(modes)} implies tflite")
        tflite = True
    export_folder.check(export_folder.read(out_dir), None, overwrite)
    if web:
        web_page.check_litertjs()
    net_cfg = generator.cfg
    resolution = net_cfg.resolution if resolution is None else resolution
    if resolution not in net_cfg.resolutions:
        raise ExportError(f"resolution {resolution} is not a stage of this network "
                          f"({', '.join(map(str, net_cfg.resolutions))})")
    # The exported graph is the generator's function with ops laid out for
    # LiteRT; the reference icons come from the graph that was trained.
    trained = _float32_copy(generator, resolution)
    base = _describe(net_cfg, resolution, description)
    source = export_folder.source(base, export_folder.fingerprint(trained, resolution))
    export_folder.check(export_folder.read(out_dir), source, overwrite)   # before the slow part
    z_check = np.random.default_rng(2024).standard_normal(
        (VALIDATION_LATENTS, net_cfg.latent_dim)).astype(np.float32)
    reference = convert.icons_from_generator(trained, z_check) if validate else None
    request = _Request(modes if tflite else [], web, page_title, page_credit, overwrite, log)

    out_dir = os.path.abspath(out_dir)
    created_parents = _make_parents(out_dir)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.export-",
                           dir=os.path.dirname(out_dir))
    try:
        summary, description_json = _stage(LiteRTGenerator(trained), tmp, out_dir, base,
                                           request, z_check, reference)
        summary.update(_finish(tmp, out_dir, base, source, description_json, request))
    except BaseException:
        _remove_partial_export(tmp, created_parents)
        raise
    log(f"exported to {out_dir}")
    return summary


@dataclasses.dataclass(frozen=True)
class _Request:
    """What one export call writes, and how."""

    modes: List[str]                 # quantize modes of the .tflite files; [] for none
    web: bool
    page_title: Optional[str]
    page_credit: Optional[str]
    overwrite: bool
    log: Callable[[str], None]

    @property
    def formats(self) -> List[str]:
        """The formats written (export_folder.FORMAT_FILES)."""
        tflites = _with_float32(self.modes) if self.modes else []
        return (["saved_model"] + [TFLITE_FORMATS[m] for m in tflites]
                + (["web"] if self.web else []))


def _with_float32(modes: List[str]) -> List[str]:
    """The .tflite files written for quantize `modes`: float32 first, always, as
    every other file is scored against its icons."""
    return ["none"] + [m for m in modes if m != "none"]


def _stage(net, tmp: str, out_dir: str, base: dict, request: _Request, z_check: np.ndarray,
           reference: Optional[np.ndarray]) -> Tuple[dict, Optional[dict]]:
    """Writes and checks every file asked for in tmp, except generator.json.

    Returns the summary and the float32 .tflite's description (None without it).
    """
    log = request.log
    summary = {"out_dir": out_dir, "resolution": base["resolution"],
               "latent_dim": base["latent_dim"], "tflite": []}
    saved_model, summary["saved_model"] = _export_saved_model(net, tmp, out_dir, z_check,
                                                              reference)
    log(f"SavedModel {base['resolution']}x{base['resolution']}, latent_dim "
        f"{base['latent_dim']}" + _diff_note(summary["saved_model"], "SavedModel"))
    json_files = {}
    if request.modes:
        summary["tflite"], json_files = _export_tflites(saved_model, request.modes, tmp,
                                                        out_dir, base, z_check, reference, log)
    if request.web:
        summary["web"] = web_page.write_page(
            net, os.path.join(tmp, WEB_DIR), os.path.join(out_dir, WEB_DIR), base, z_check,
            reference, log, title=request.page_title, credit=request.page_credit)
    float32_json = json_files.pop(RECORD_FILE, None)
    for name, content in json_files.items():
        with open(os.path.join(tmp, name), "w") as f:
            json.dump(content, f, indent=2)
    return summary, float32_json


def _finish(tmp: str, out_dir: str, base: dict, source: dict, float32_json: Optional[dict],
            request: _Request) -> dict:
    """Writes generator.json with the folder's record against what out_dir holds
    now (checked again: it may have changed meanwhile) and moves tmp into place.
    Returns the summary's {"formats", "kept"}."""
    folder = export_folder.read(out_dir)
    export_folder.check(folder, source, request.overwrite)
    record = export_folder.record(folder, source, request.formats)
    kept = [name for name in record["formats"] if name not in request.formats]
    for name in kept:
        if not export_folder.same_network(record["formats"][name], source):
            request.log(f"kept {', '.join(export_folder.FORMAT_FILES[name])} of "
                        f"{export_folder.describe(record['formats'][name])}: not the network "
                        "exported now; export that format again or remove its files")
    description = float32_json or _kept_float32_description(folder, record, base, source)
    with open(os.path.join(tmp, RECORD_FILE), "w") as f:
        json.dump(dict(description, export=record), f, indent=2)
    export_folder.move_into_place(tmp, out_dir)
    return {"formats": list(record["formats"]), "kept": kept}


def _kept_float32_description(folder: export_folder.Folder, record: dict, base: dict,
                              source: dict) -> dict:
    """generator.json's description where this export writes no generator.tflite:
    of the one kept, when it is of this network, else of the SavedModel."""
    kept = record["formats"].get("tflite_float32")
    if export_folder.same_network(kept, source):
        return dict(base, **{k: folder.description[k] for k in FLOAT32_FIELDS
                             if k in folder.description})
    return dict(base, file=SAVED_MODEL_DIR + "/")


def _export_saved_model(net, tmp: str, out_dir: str, z_check: np.ndarray,
                        reference: Optional[np.ndarray]) -> Tuple[str, dict]:
    """Writes tmp's SavedModel and checks it against `reference` (None: unchecked).

    Returns its path in tmp and its summary entry (paths as they will be in out_dir).
    """
    path = os.path.join(tmp, SAVED_MODEL_DIR)
    convert.write_saved_model(net, path)
    diff = None
    if reference is not None:
        diff = convert.check_float32(_run_saved_model(path, z_check), reference, "the SavedModel")
    return path, {"path": os.path.join(out_dir, SAVED_MODEL_DIR),
                  "bytes": _tree_bytes(path), "max_abs_diff": diff}


def _export_tflites(saved_model: str, modes: List[str], tmp: str, out_dir: str,
                    base: dict, z_check: np.ndarray, reference: Optional[np.ndarray],
                    log: Callable[[str], None]) -> Tuple[List[dict], dict]:
    """Writes tmp's .tflite file for every mode, float32 first: every file is
    scored against its icons (PSNR). Returns their summary entries and JSON files."""
    entries, json_files, float_icons = [], {}, None
    for mode in _with_float32(modes):
        entry, icons = _export_tflite(saved_model, mode, tmp, out_dir, z_check, reference)
        if mode == "none":
            float_icons = icons
        if icons is not None:
            entry["psnr_db"] = convert.psnr(icons, float_icons)
        stem = TFLITE_STEMS[mode]
        log(f"{stem}.tflite: {entry['bytes'] / 1e6:.2f} MB" + _diff_note(entry, "tflite"))
        json_files[stem + ".json"] = dict(
            base, file=stem + ".tflite", quantization=QUANTIZATION_NAMES[mode],
            bytes=entry["bytes"], psnr_db_vs_float32=_json_number(entry["psnr_db"]),
            max_abs_diff_vs_keras=entry["max_abs_diff"])
        entries.append(entry)
    return entries, json_files


def _export_tflite(saved_model: str, mode: str, tmp: str, out_dir: str,
                   z_check: np.ndarray,
                   reference: Optional[np.ndarray]) -> Tuple[dict, Optional[np.ndarray]]:
    """Converts the SavedModel to tmp's .tflite for `mode` and checks it against the
    Keras icons `reference` (None: unchecked); the float32 file must match them.
    Returns the summary entry and the file's icons (None unchecked).
    """
    stem = TFLITE_STEMS[mode]
    path = os.path.join(tmp, stem + ".tflite")
    with open(path, "wb") as f:
        f.write(convert.convert_to_tflite(saved_model, mode))
    entry = {"path": os.path.join(out_dir, stem + ".tflite"),
             "json": os.path.join(out_dir, stem + ".json"), "quantize": mode,
             "bytes": os.path.getsize(path), "max_abs_diff": None, "psnr_db": None}
    if reference is None:
        return entry, None
    icons = convert.run_tflite(path, z_check)
    convert.check_icons(icons, z_check.shape[0], reference.shape[1], path)
    entry["max_abs_diff"] = (convert.check_float32(icons, reference, "the float32 .tflite")
                             if mode == "none" else convert.max_abs_diff(icons, reference))
    return entry, icons


def _diff_note(entry: dict, name: str) -> str:
    """The log's note on a checked file's difference; empty when unchecked."""
    if entry["max_abs_diff"] is None:
        return ""
    note = f", max |{name} - Keras| = {entry['max_abs_diff']}/255"
    if entry.get("psnr_db") is not None:
        note += f", PSNR vs float32 {entry['psnr_db']:.1f} dB"
    return note


def _remove_partial_export(tmp: str, created_parents: List[str]) -> None:
    """Removes the staging folder and the parents the export made, if still empty."""
    shutil.rmtree(tmp, ignore_errors=True)
    for d in created_parents:          # deepest first
        try:
            os.rmdir(d)
        except OSError:
            break


def parse_quantize(quantize: Union[str, Iterable[str]]) -> List[str]:
    """"none,int8" or ["none", "int8"] -> ["none", "int8"], checked, without repeats."""
    items = quantize.split(",") if isinstance(quantize, str) else list(quantize)
    modes = []
    for item in (str(i).strip().lower() for i in items):
        if not item:
            continue
        if item not in QUANTIZE_MODES:
            raise ExportError(f"unknown quantize mode {item!r}; choose from "
                              f"{', '.join(QUANTIZE_MODES)}")
        if item not in modes:
            modes.append(item)
    return modes or ["none"]


# ---- helpers ------------------------------------------------------------------------

def _describe(net_cfg: NetworkConfig, resolution: int, extra: Optional[dict]) -> dict:
    """The JSON shared by every exported file."""
    d = {
        "format": "mel_tf icon generator",
        "mel_tf_version": mel_tf.__version__,
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "preset": net_cfg.preset,
        "resolution": resolution,
        "latent_dim": net_cfg.latent_dim,
        "images_trained": None,
        "dataset": {"name": None, "credit": None},
        "signature": SIGNATURE_KEY,
        "inputs": [{"name": INPUT_NAME, "dtype": "float32", "shape": [-1, net_cfg.latent_dim],
                    "description": "latent vectors, each entry i.i.d. N(0, 1); the batch "
                                   "dimension can be resized"}],
        "outputs": [{"name": OUTPUT_NAME, "dtype": "uint8",
                     "shape": [-1, resolution, resolution, 3],
                     "description": "icons, NHWC, RGB, 0..255, no alpha"}],
        "seed_to_z": dict(SEED_TO_Z, example={
            "seed": 0, "first_values": [float(v) for v in latents_for_seed(0, 1, 4)[0]]}),
        # Optional controls of a seed's latent (the browser page offers both).
        "truncation": TRUNCATION,
        "variation": VARIATION,
        "saved_model": SAVED_MODEL_DIR + "/",
        "network": net_cfg.to_dict(),
    }
    d.update(extra or {})
    return d


def _dataset_info(logdir: str, credit: Optional[str], log) -> dict:
    """{"name", "credit"} from logdir/dataset.json, the credit overridden by `credit`."""
    info = {"name": None, "credit": None}
    try:
        found = rundir.read_dataset_record(logdir) or {}
        info.update({k: found.get(k) for k in ("name", "credit")})
    except rundir.RunDirError as e:
        log(f"ignoring the dataset record: {first_line(e)}")
    info["name"] = public_dataset_name(info["name"])
    if credit:
        info["credit"] = credit
    if not info["credit"]:
        log("no dataset credit known (no credit in dataset.json); pass dataset_credit / "
            f"--dataset_credit, e.g. for the built-in Twemoji set: {TWEMOJI_CREDIT!r}")
    return info


def public_dataset_name(name: Optional[str]) -> Optional[str]:
    """A run records a data folder by its path; exports (and the published page)
    name it by its last part only, so no local path leaves the machine."""
    if not isinstance(name, str):
        return None
    parts = [p for p in re.split(r"[\\/]", name) if p]
    return parts[-1] if parts else None


def _float32_copy(generator, resolution: int):
    """A float32 generator with the same weights, at `resolution` with fading off."""
    from mel_tf.training.networks import Generator
    copy = Generator(generator.cfg, name="generator_ema")
    if len(copy.weights) != len(generator.weights):
        raise ExportError("the generator does not match its own configuration")
    for target, source in zip(copy.weights, generator.weights):
        target.assign(tf.cast(source, target.dtype))
    copy.set_stage(resolution, fading=False)
    return copy


def _run_saved_model(path: str, z: np.ndarray) -> np.ndarray:
    return SavedModelIconModel(path)(z)


def _json_number(x):
    """JSON has no infinity: identical outputs are written as null."""
    return None if x is None or math.isinf(x) else round(x, 2)


def _tree_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def _make_parents(path: str) -> List[str]:
    """Creates the missing parents of `path`; returns them deepest first."""
    created = []
    parent = os.path.dirname(path)
    while parent and not os.path.exists(parent):
        created.append(parent)
        parent = os.path.dirname(parent)
    for d in reversed(created):
        os.mkdir(d)
    return created
