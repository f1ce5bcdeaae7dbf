"""Export of a tiny run: SavedModel and .tflite files against the Keras generator,
the description JSON, every refusal leaving no output behind, and formats that
add up in one folder (another network refused without overwrite, a failed export
leaving the folder as it was)."""

import errno
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from conftest import (IN_4X4_STABLE, IN_8X8_FADE, IN_16X16_FADE, PAST_16X16_FADE, REPO,
                      make_run_dir)
from mel_tf.deploy import convert, web
from mel_tf.training import rundir
from mel_tf.deploy.export import ExportError, export_generator

# Wide enough that the converter really quantizes (it skips tensors under 1024 weights).
WIDTH = 1 / 16
CREDIT = "Twemoji graphics by Twitter, Inc. and other contributors, CC-BY 4.0, rasterised and resized"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One run exported with every option: (logdir, out_dir, summary)."""
    root = tmp_path_factory.mktemp("export")
    logdir = str(root / "run")
    make_run_dir(logdir, PAST_16X16_FADE, width=WIDTH, dataset={"name": "twemoji", "credit": CREDIT})
    out = str(root / "out")
    summary = export_generator(logdir, out, tflite=True, quantize="none,float16,int8")
    return logdir, out, summary


@pytest.fixture(scope="module")
def keras_icons(exported):
    """(z, uint8 icons of the run's EMA generator at 16x16)."""
    logdir = exported[0]
    generator = rundir.load_ema_generator(logdir)[0]
    generator.set_stage(16, fading=False)
    z = np.random.default_rng(7).standard_normal((6, generator.cfg.latent_dim)).astype(np.float32)
    return z, convert.icons_from_generator(generator, z)


def _signature_runner(path):
    interpreter = Interpreter(model_path=path)
    assert interpreter.get_signature_list() == {
        "serving_default": {"inputs": ["z"], "outputs": ["icons"]}}
    return interpreter.get_signature_runner("serving_default")


def _leftovers(parent):
    return [name for name in os.listdir(parent) if name.startswith(".")]


def test_float32_tflite_matches_keras(exported, keras_icons):
    out = exported[1]
    z, expected = keras_icons
    icons = _signature_runner(os.path.join(out, "generator.tflite"))(z=z)["icons"]
    assert icons.dtype == np.uint8 and icons.shape == (6, 16, 16, 3)
    assert np.abs(icons.astype(int) - expected.astype(int)).max() <= 1
    assert icons.std() > 0   # not a constant image


def test_quantized_variants_give_icons(exported, keras_icons):
    out, summary = exported[1], exported[2]
    z = keras_icons[0]
    for name in ("generator_float16.tflite", "generator_int8.tflite"):
        icons = _signature_runner(os.path.join(out, name))(z=z[:3])["icons"]
        assert icons.dtype == np.uint8 and icons.shape == (3, 16, 16, 3)
    by_mode = {e["quantize"]: e for e in summary["tflite"]}
    assert set(by_mode) == {"none", "float16", "int8"}
    assert by_mode["none"]["max_abs_diff"] <= 1
    for mode in ("float16", "int8"):
        assert by_mode[mode]["psnr_db"] > 20
        assert os.path.getsize(by_mode[mode]["path"]) == by_mode[mode]["bytes"]
    # Quantized weights are smaller than float32 ones.
    assert by_mode["int8"]["bytes"] < by_mode["float16"]["bytes"] < by_mode["none"]["bytes"]


def test_saved_model_signature_equals_keras(exported, keras_icons):
    out = exported[1]
    z, expected = keras_icons
    serve = tf.saved_model.load(os.path.join(out, "saved_model")).signatures["serving_default"]
    assert list(serve.structured_input_signature[1]) == ["z"]
    assert serve.structured_outputs["icons"].dtype == tf.uint8
    icons = serve(z=tf.constant(z))["icons"].numpy()
    assert icons.shape == expected.shape
    assert np.abs(icons.astype(int) - expected.astype(int)).max() <= 1


def test_json_describes_each_tflite(exported):
    logdir, out, _ = exported
    assert sorted(os.listdir(out)) == sorted(
        ["saved_model", "generator.tflite", "generator.json", "generator_float16.tflite",
         "generator_float16.json", "generator_int8.tflite", "generator_int8.json"])
    for stem in ("generator", "generator_float16", "generator_int8"):
        with open(os.path.join(out, stem + ".json")) as f:
            d = json.load(f)
        assert d["file"] == stem + ".tflite"
        assert d["resolution"] == 16 and d["preset"] == "seed"
        assert d["latent_dim"] == rundir.read_config(logdir)[0].latent_dim
        assert d["images_trained"] == PAST_16X16_FADE and d["fade_complete"] is True
        assert d["dataset"] == {"name": "twemoji", "credit": CREDIT}
        assert d["inputs"][0]["name"] == "z" and d["inputs"][0]["dtype"] == "float32"
        assert d["outputs"][0]["name"] == "icons" and d["outputs"][0]["dtype"] == "uint8"
        assert d["outputs"][0]["shape"] == [-1, 16, 16, 3]
        assert d["seed_to_z"]["algorithm"].startswith("mel_tf-splitmix64")
    assert _leftovers(os.path.dirname(out)) == []


# ---- refusals -------------------------------------------------------------------------

def _mismatched_checkpoint(tmp_path):
    """A checkpoint whose shapes contradict config.json (width changed afterwards)."""
    logdir = tmp_path / "run"
    make_run_dir(logdir, PAST_16X16_FADE)
    path = logdir / "config.json"
    config = json.loads(path.read_text())
    config["network"]["width"] = 1 / 32
    path.write_text(json.dumps(config))
    return str(logdir)


def _config_only(tmp_path):
    from mel_tf.config import TrainConfig, preset
    rundir.prepare(str(tmp_path / "run"), preset("seed", resolution=16, width=1 / 64),
                   TrainConfig(fade_images=64, stable_images=64, batch_size=4))
    return str(tmp_path / "run")


def _missing(tmp_path):
    return str(tmp_path / "nowhere")


def _empty(tmp_path):
    (tmp_path / "run").mkdir()
    return str(tmp_path / "run")


def _damaged(tmp_path):
    """A run whose only checkpoint was cut short (a crash, a full disk)."""
    make_run_dir(tmp_path / "run", PAST_16X16_FADE)
    data = tmp_path / "run" / "checkpoints" / "ckpt-1.data-00000-of-00001"
    os.truncate(data, os.path.getsize(data) // 2)
    return str(tmp_path / "run")


def _stopped_at(images_shown):
    def build(tmp_path):
        make_run_dir(tmp_path / "run", images_shown)
        return str(tmp_path / "run")
    return build


BAD_RUNS = {  # case: (make the run directory, part of the message)
    "missing": (_missing, "does not exist"),
    "empty": (_empty, "not a mel_tf run directory"),
    "no_checkpoint": (_config_only, "no checkpoint"),
    "mismatch": (_mismatched_checkpoint, "does not match"),
    "damaged": (_damaged, r"can be read: .*ckpt-1\.data-00000-of-00001 \(Read less bytes"),
    "in_4x4": (_stopped_at(IN_4X4_STABLE), "not finished a stage"),
    "in_8x8_fade": (_stopped_at(IN_8X8_FADE), "not finished a stage"),
}


@pytest.mark.parametrize("case", sorted(BAD_RUNS))
def test_bad_run_is_refused_without_output(case, tmp_path):
    build, message = BAD_RUNS[case]
    logdir = build(tmp_path)
    out = tmp_path / "exports" / "out"
    with pytest.raises(ExportError, match=message) as info:
        export_generator(logdir, str(out), tflite=True)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "exports").exists()
    assert _leftovers(tmp_path) == []


def test_half_faded_stage_needs_the_flag(tmp_path, make_run):
    logdir = make_run(IN_16X16_FADE)
    out = tmp_path / "out"
    # The default is the last completed stage, 8x8.
    summary = export_generator(logdir, str(out))
    assert summary["resolution"] == 8
    with pytest.raises(ExportError, match="still training"):
        export_generator(logdir, str(tmp_path / "out16"), resolution=16)
    assert not (tmp_path / "out16").exists()
    summary = export_generator(logdir, str(tmp_path / "out16"), resolution=16,
                               allow_partial_fade=True)
    assert summary["resolution"] == 16
    with open(tmp_path / "out16" / "generator.json") as f:
        d = json.load(f)
    assert d["fade_complete"] is False and d["training_alpha"] == pytest.approx(0.5)


def test_unreached_or_unknown_resolution_is_refused(tmp_path, make_run):
    logdir = make_run(IN_8X8_FADE, resolution=32)
    with pytest.raises(ExportError, match="not reached 32x32"):
        export_generator(logdir, str(tmp_path / "out"), resolution=32, allow_partial_fade=True)
    with pytest.raises(ExportError, match="not a stage"):
        export_generator(logdir, str(tmp_path / "out"), resolution=12)
    assert not (tmp_path / "out").exists()


def test_failed_validation_leaves_nothing(tmp_path, make_run, monkeypatch):
    logdir = make_run()
    real = convert.run_tflite
    monkeypatch.setattr(convert, "run_tflite", lambda path, z: 255 - real(path, z))
    with pytest.raises(ExportError, match="differs from the Keras generator"):
        export_generator(logdir, str(tmp_path / "out"), tflite=True)
    assert not (tmp_path / "out").exists()
    assert _leftovers(tmp_path) == []


def test_a_folder_without_an_export_needs_overwrite_and_keeps_its_files(tmp_path, make_run):
    logdir = make_run()
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "generator_int8.tflite").write_text("found here, without a record")
    with pytest.raises(ExportError, match="not empty and holds no export record"):
        export_generator(logdir, str(out))
    summary = export_generator(logdir, str(out), overwrite=True)
    assert sorted(os.listdir(out)) == ["generator.json", "generator_int8.tflite", "notes.txt",
                                       "saved_model"]
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "generator_int8.tflite").read_text() == "found here, without a record"
    record = _record(out)
    assert record["formats"] == {"saved_model": record["source"], "tflite_int8": None}
    assert summary["kept"] == ["tflite_int8"]
    assert _leftovers(tmp_path) == []


# ---- exports that add up ------------------------------------------------------------------

def _snapshot(folder):
    """Every file below `folder` with its bytes."""
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(pathlib.Path(folder).rglob("*")) if path.is_file()}


def _record(out):
    with open(os.path.join(out, "generator.json")) as f:
        return json.load(f)["export"]


def _require_litertjs():
    try:
        web.check_litertjs()
    except ExportError as e:
        if os.environ.get("CI"):
            pytest.fail(f"{e}; CI must run the --web exports")
        pytest.skip(str(e))


def test_formats_add_up_in_one_folder(tmp_path, make_run):
    _require_litertjs()
    logdir = make_run()
    out = tmp_path / "out"
    export_generator(logdir, str(out), tflite=True)
    float32 = (out / "generator.tflite").read_bytes()
    summary = export_generator(logdir, str(out), web=True)
    assert sorted(os.listdir(out)) == ["generator.json", "generator.tflite", "saved_model", "web"]
    assert (out / "generator.tflite").read_bytes() == float32
    assert summary["kept"] == ["tflite_float32"]
    described = json.loads((out / "generator.json").read_text())
    # generator.json still describes the float32 file it kept.
    assert described["file"] == "generator.tflite" and described["bytes"] == len(float32)
    record = described["export"]
    assert record["source"]["run"] == "run" and record["source"]["checkpoint"] == "ckpt-1"
    assert record["source"]["resolution"] == 16
    assert record["formats"] == dict.fromkeys(["saved_model", "tflite_float32", "web"],
                                              record["source"])
    page = _snapshot(out / "web")
    summary = export_generator(logdir, str(out), quantize="int8")
    assert sorted(os.listdir(out)) == ["generator.json", "generator.tflite", "generator_int8.json",
                                       "generator_int8.tflite", "saved_model", "web"]
    assert _snapshot(out / "web") == page and summary["kept"] == ["web"]
    assert list(_record(out)["formats"]) == ["saved_model", "tflite_float32", "tflite_int8", "web"]
    # --overwrite replaces what the call writes, never another format's files.
    tflites = {name: (out / name).read_bytes() for name in os.listdir(out)
               if name.endswith(".tflite")}
    export_generator(logdir, str(out), web=True, overwrite=True)
    assert {name: (out / name).read_bytes() for name in tflites} == tflites
    assert list(_record(out)["formats"]) == ["saved_model", "tflite_float32", "tflite_int8", "web"]
    assert _leftovers(tmp_path) == []


def test_another_run_or_stage_into_the_folder_needs_overwrite(tmp_path, make_run):
    logdir, other = make_run(), make_run(name="other", seed=1)
    out = tmp_path / "out"
    export_generator(logdir, str(out), tflite=True)
    before = _snapshot(out)
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "export.py"), f"--logdir={other}", f"--out={out}",
         "--web"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("export.py: error:")]
    assert lines == [f"export.py: error: {out} holds an export of ckpt-1 of the run 'run' at "
                     "16x16, not of ckpt-1 of the run 'other' at 16x16; choose another output "
                     "folder (--out) or pass overwrite (--overwrite) to replace its SavedModel "
                     "and the formats written now (other formats' files are kept)"], lines
    with pytest.raises(ExportError, match="of the run 'run' at 16x16, not of ckpt-1 of the "
                                          "run 'run' at 8x8"):
        export_generator(logdir, str(out), resolution=8)
    assert _snapshot(out) == before
    # Replaced: the shared files; kept, under its own source: the float32 file.
    summary = export_generator(other, str(out), overwrite=True)
    assert (out / "generator.tflite").read_bytes() == before["generator.tflite"]
    assert summary["kept"] == ["tflite_float32"]
    described = json.loads((out / "generator.json").read_text())
    assert described["file"] == "saved_model/" and described["export"]["source"]["run"] == "other"
    assert described["export"]["formats"]["tflite_float32"] == json.loads(
        before["generator.json"])["export"]["source"]
    assert _leftovers(tmp_path) == []


def test_a_failed_export_leaves_an_export_folder_as_it_was(tmp_path, make_run, monkeypatch):
    logdir = make_run()
    out = tmp_path / "out"
    export_generator(logdir, str(out))
    (out / "notes.txt").write_text("mine")
    before = _snapshot(out)
    real = convert.run_tflite
    monkeypatch.setattr(convert, "run_tflite", lambda path, z: 255 - real(path, z))
    with pytest.raises(ExportError, match="differs from the Keras generator"):
        export_generator(logdir, str(out), tflite=True)
    assert _snapshot(out) == before and _leftovers(tmp_path) == []
    monkeypatch.undo()
    # Moving in fails at the last entry: the entries replaced before it are put back.
    rename = os.replace

    def failing_replace(src, dst):
        if ".export-" in str(src) and os.path.basename(src) == "generator.json":
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(dst))
        rename(src, dst)
    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="Input/output error"):
        export_generator(logdir, str(out), tflite=True)
    assert _snapshot(out) == before and _leftovers(tmp_path) == []


def test_command_line_error_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "export.py"), f"--logdir={tmp_path / 'nowhere'}",
         f"--out={tmp_path / 'out'}", "--tflite"],
        capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("export.py: error:")]
    assert len(lines) == 1 and "does not exist" in lines[0]
    assert not (tmp_path / "out").exists()
