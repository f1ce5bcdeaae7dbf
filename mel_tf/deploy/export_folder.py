"""An export folder: what it holds, and when another export may be written into it.

    out_dir/
      saved_model/     shared by every format: written by every export
      generator.json   shared: the model's description, and the folder's record
      generator.tflite, generator_float16.tflite + .json, generator_int8.tflite + .json, web/
                       one format each (FORMAT_FILES)

The record is generator.json's "export" entry:

    {"source": S, "formats": {"saved_model": S, "tflite_int8": S2, ...}}

S says what the shared files were exported from, and each format present says
what its files were exported from (null: not known, files found without a
record). A source is {"run", "checkpoint", "images_trained", "resolution",
"fingerprint"}: the run's folder name and checkpoint, and a hash of the exported
network (configuration, stage and weights). Two exports are of the same
network exactly when their fingerprints are equal.

The rule for an export into out_dir, with the formats it writes:

  * out_dir new or empty: the export is written.
  * an export of the same network: the shared files are rewritten, the formats
    asked for are written (replacing their earlier files) and every other
    format's files are kept. Formats add up: --tflite, then --web, then
    --quantize=int8 leave all three.
  * an export of another network (another run, checkpoint or stage): refused,
    unless overwrite; then the shared files and the formats asked for are
    replaced, and the other formats' files are still kept, under their own
    source in the record.
  * files without a record: refused unless overwrite; then the export is
    written beside them.

Nothing else in out_dir is ever touched. The export is staged in a folder
beside out_dir and moved in entry by entry (generator.json last); the entries
it replaces are moved aside first and put back if a move fails.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from typing import Dict, List, Optional

import numpy as np

from mel_tf.deploy.convert import ExportError

SAVED_MODEL_DIR = "saved_model"
WEB_DIR = "web"
RECORD_FILE = "generator.json"
# Every format's files, the first one the format's own; generator.json
# describes generator.tflite besides the SavedModel (there is one JSON per
# .tflite), and the page has its own description in web/.
FORMAT_FILES = {
    "saved_model": (SAVED_MODEL_DIR,),
    "tflite_float32": ("generator.tflite",),
    "tflite_float16": ("generator_float16.tflite", "generator_float16.json"),
    "tflite_int8": ("generator_int8.tflite", "generator_int8.json"),
    "web": (WEB_DIR,),
}


def fingerprint(generator, resolution: int) -> str:
    """A hash of the network an export holds: its configuration, stage and weights."""
    digest = hashlib.sha256(json.dumps([generator.cfg.to_dict(), resolution],
                                       sort_keys=True).encode())
    for weight in generator.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return "sha256:" + digest.hexdigest()


def source(description: dict, network_fingerprint: str) -> dict:
    """The record's source of an export described by `description` (its JSON)."""
    return {"run": description.get("run"), "checkpoint": description.get("checkpoint"),
            "images_trained": description.get("images_trained"),
            "resolution": description["resolution"], "fingerprint": network_fingerprint}


def same_network(a: Optional[dict], b: Optional[dict]) -> bool:
    return bool(a and b) and a.get("fingerprint") == b.get("fingerprint")


def describe(src: Optional[dict]) -> str:
    """A source in words: "ckpt-24 of the run 'demo' at 16x16"."""
    if not src:
        return "an unrecorded export"
    r = src.get("resolution")
    if src.get("checkpoint") and src.get("run"):
        return f"{src['checkpoint']} of the run '{src['run']}' at {r}x{r}"
    return f"a generator at {r}x{r}"


@dataclasses.dataclass
class Folder:
    """An output folder as found before an export writes into it."""

    path: str
    names: List[str]                 # its entries; empty for a new folder
    description: Optional[dict]      # generator.json, when it holds a record

    @property
    def record(self) -> Optional[dict]:
        return self.description["export"] if self.description else None

    def present(self) -> Dict[str, Optional[dict]]:
        """{format: its recorded source (None: unknown)} for the formats whose file is here."""
        recorded = (self.record or {}).get("formats", {})
        return {name: recorded.get(name) for name, files in FORMAT_FILES.items()
                if files[0] in self.names}


def read(path: str) -> Folder:
    """What `path` holds; ExportError for a file."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ExportError(f"{path} exists and is not a folder")
    names = sorted(os.listdir(path)) if os.path.isdir(path) else []
    return Folder(path, names, _read_description(os.path.join(path, RECORD_FILE)))


def _read_description(path: str) -> Optional[dict]:
    """generator.json, if it is one with a record; None otherwise (an older or a foreign file)."""
    try:
        with open(path) as f:
            description = json.load(f)
    except (OSError, ValueError):
        return None
    ok = isinstance(description, dict) and isinstance(description.get("export"), dict)
    return description if ok and isinstance(description["export"].get("formats"), dict) else None


def check(folder: Folder, src: Optional[dict], overwrite: bool) -> None:
    """Raises ExportError where the rule refuses the export; `src` None checks
    only what can be known before the network is loaded."""
    if not folder.names or overwrite:
        return
    if folder.record is None:
        raise ExportError(
            f"{folder.path} is not empty and holds no export record ({RECORD_FILE}); choose "
            "another output folder (--out) or pass overwrite (--overwrite) to write the "
            "export beside its files")
    old = folder.record.get("source")
    if src is not None and not same_network(old, src):
        what = describe(old) if describe(old) != describe(src) else "another network"
        raise ExportError(
            f"{folder.path} holds an export of {what}, not of {describe(src)}; choose another "
            "output folder (--out) or pass overwrite (--overwrite) to replace its SavedModel "
            "and the formats written now (other formats' files are kept)")


def record(folder: Folder, src: dict, written: List[str]) -> dict:
    """The record after writing the formats `written` from `src` into `folder`."""
    formats = {name: s for name, s in folder.present().items() if name not in written}
    formats.update({name: src for name in written})
    return {"source": src, "formats": {name: formats[name] for name in FORMAT_FILES
                                       if name in formats}}


def move_into_place(tmp: str, out_dir: str) -> None:
    """Moves the finished export in `tmp` to out_dir: one rename when out_dir is
    new or empty, else entry by entry, generator.json last (the record never
    names files not yet in place). Entries it replaces are moved aside first
    and put back if a move fails."""
    if os.path.isdir(out_dir) and not os.listdir(out_dir):
        os.rmdir(out_dir)
    if not os.path.exists(out_dir):
        os.replace(tmp, out_dir)
        return
    names = sorted(os.listdir(tmp), key=lambda name: name == RECORD_FILE)
    aside = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.replaced-",
                             dir=os.path.dirname(out_dir))
    try:
        for name in names:
            target = os.path.join(out_dir, name)
            if os.path.lexists(target):
                os.replace(target, os.path.join(aside, name))
            os.replace(os.path.join(tmp, name), target)
    except BaseException:
        _put_back(tmp, aside, out_dir, names)
        raise
    shutil.rmtree(aside)
    os.rmdir(tmp)


def _put_back(tmp: str, aside: str, out_dir: str, names: List[str]) -> None:
    """Undoes move_into_place: new entries back to tmp, the old ones back to out_dir."""
    for name in names:
        target = os.path.join(out_dir, name)
        if not os.path.lexists(os.path.join(tmp, name)) and os.path.lexists(target):
            os.replace(target, os.path.join(tmp, name))
        if os.path.lexists(os.path.join(aside, name)):
            os.replace(os.path.join(aside, name), target)
    try:
        os.rmdir(aside)
    except OSError:
        pass        # what could not be put back stays there, beside out_dir
