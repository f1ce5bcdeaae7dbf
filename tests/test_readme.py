"""The README's commands run as written, in the order written.

Every ```sh block of README.md is taken line by line, in order, and run in an empty
folder that holds `my_icons/` (a few tiny icons), with two changes that keep it
short: every training command gets a tiny schedule appended (flags given later win),
and the lines that install, run the test suite or start a server are left out
(the quick start's installs are what this suite runs in). `python X.py` runs the
checkout's program; `mel-NAME` runs the same program through its console script's
module, as the installed command does.
"""

import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO

TINY = ["--resolution=8", "--width=0.0625", "--fade_images=32", "--stable_images=32",
        "--batch_size=4", "--metrics_images=0", "--sample_every=0", "--noxla"]
SKIPPED = ("pip ", "npm ", "python -m pytest", "tensorboard ", "python -m http.server")
PROGRAMS = {"mel-train": "train", "mel-export": "export", "mel-generate": "generate",
            "mel-evaluate": "evaluate"}


def readme_commands():
    """The sh blocks' command lines, in order, `&&` chains split."""
    text = open(os.path.join(REPO, "README.md")).read()
    commands = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M):
        for line in block.splitlines():
            commands += [c.strip() for c in line.split("#")[0].split("&&") if c.strip()]
    return commands


def as_run(command):
    """argv for one README command, or None for a line this test leaves out."""
    if command.startswith(SKIPPED):
        return None
    words = shlex.split(command)
    if words[0] in PROGRAMS:
        words = [sys.executable, os.path.join(REPO, PROGRAMS[words[0]] + ".py")] + words[1:]
    elif words[0] == "python" and words[1].endswith(".py"):
        words = [sys.executable, os.path.join(REPO, words[1])] + words[2:]
    else:
        raise AssertionError(f"the README runs {words[0]!r}, which this test cannot run")
    if words[1].endswith("train.py"):
        words += TINY
    return words


def test_the_readme_has_the_commands_a_user_needs():
    commands = readme_commands()
    for needed in ("python train.py", "mel-train --data_dir=my_icons", "--tflite", "--web",
                   "mel-generate", "mel-evaluate", "tensorboard --logdir=runs"):
        assert any(needed in c for c in commands), needed
    assert [as_run(c) is None for c in commands].count(False) >= 6


def test_the_readme_commands_run_in_order(tmp_path):
    icons = tmp_path / "my_icons"
    icons.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
            icons / f"icon{i}.png")
    env = dict(os.environ, PYTHONPATH=REPO)
    ran = []
    for command in readme_commands():
        argv = as_run(command)
        if argv is None:
            continue
        result = subprocess.run(argv, cwd=str(tmp_path), env=env, capture_output=True,
                                text=True, timeout=900)
        assert result.returncode == 0, (command, result.stderr[-3000:])
        assert "Traceback" not in result.stderr, (command, result.stderr[-3000:])
        ran.append(command)
    export = tmp_path / "runs" / "my_icons" / "export"
    assert (export / "generator.tflite").is_file() and (export / "web" / "index.html").is_file()
    assert len(list((tmp_path / "icons").glob("icon_*.png"))) == 16
    assert (tmp_path / "closest.png").is_file()
    if len(ran) < 6:
        pytest.fail(f"only {len(ran)} README commands ran: {ran}")


def test_the_readme_times_are_the_estimates_mel_train_prints():
    """The table of configurations quotes mel_tf.training.estimate, as --help does."""
    from mel_tf import config
    from mel_tf.cli import flags as config_flags
    from mel_tf.cli.train import shipped_configs
    from mel_tf.training import estimate
    from absl import flags

    def configs(argv):
        values = flags.FlagValues()
        config_flags.define(values)
        values(["mel-train", *argv])
        return (config_flags.read(config.NetworkConfig, values),
                config_flags.read(config.TrainConfig, values))

    text = open(os.path.join(REPO, "README.md")).read()
    rows = {"`mel-train --data_dir=my_icons`": configs([]),
            "`mel-train --data_dir=my_icons --fade_images=8000 --stable_images=8000`":
                configs(["--fade_images=8000", "--stable_images=8000"]),
            "`mel-train --config=mel256 --data_dir=my_icons`": shipped_configs("mel256"),
            "`mel-train --config=demo --data_dir=my_icons --logdir=runs/look`":
                shipped_configs("demo")}
    for command, (net, train) in rows.items():
        cpu = estimate.duration(estimate.cpu_seconds(net, train))
        gpu = estimate.duration(estimate.gpu_seconds(net, train))
        assert f"| {command} | {cpu} | {gpu} or more |" in text, (command, cpu, gpu)
