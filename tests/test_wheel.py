"""What users install is the wheel: built from the checkout, installed into a fresh
virtual environment in a temporary folder, and used from outside any clone. Bare
`mel-train` starts the demo from the configuration shipped inside the wheel, a tiny run
trains, exports --tflite --web (LiteRT.js from inside the wheel) and generates icons.

The environment sees the system's site-packages for TensorFlow and the other
dependencies (installing them again would take minutes and the network); the test
checks that mel_tf itself comes from the wheel, not from the checkout.
"""

import os
import signal
import subprocess
import sys
import time
import zipfile

import pytest

from conftest import REPO
from mel_tf.deploy import litertjs

TINY = ["--resolution=8", "--width=0.0625", "--fade_images=32", "--stable_images=32",
        "--batch_size=4", "--metrics_images=0", "--sample_every=0", "--noxla"]


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """(bin folder of a fresh venv with the wheel installed, a folder outside the clone)."""
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(root / "dist"), REPO], check=True, capture_output=True,
                   timeout=600)
    wheel = next((root / "dist").glob("mel_tf-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(root / "env")],
                   check=True, timeout=300)
    bin_dir = root / "env" / "bin"
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, capture_output=True, timeout=300)
    work = root / "work"
    work.mkdir()
    return bin_dir, work, wheel


def run(bin_dir, work, *args, timeout=600):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=str(work), env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_the_wheel_carries_the_demo_the_page_and_liteRT_js(venv):
    _, _, wheel = venv
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "mel_tf/configs/demo.flags" in names and "mel_tf/configs/mel256.flags" in names
    assert "mel_tf/deploy/web_page/index.html" in names
    assert "mel_tf/training/twemoji_faces.txt" in names
    if not os.path.isdir(os.path.join(REPO, "node_modules", "@litertjs")):
        if os.environ.get("CI"):
            pytest.fail("node_modules/ is missing: CI builds the wheel after `npm ci`")
        pytest.skip("no node_modules/ (run `npm ci`): the wheel carries no LiteRT.js")
    for _, page_path in litertjs.FILES:
        assert "mel_tf/deploy/" + page_path in names, page_path
    assert "mel_tf/deploy/litert/versions.json" in names


def test_mel_tf_comes_from_the_wheel(venv):
    bin_dir, work, _ = venv
    out = run(bin_dir, work, "python", "-c", "import mel_tf; print(mel_tf.__file__)")
    assert out.returncode == 0, out.stderr[-2000:]
    assert str(bin_dir.parent) in out.stdout and REPO not in out.stdout, out.stdout


def test_bare_mel_train_starts_the_shipped_demo(venv):
    bin_dir, work, _ = venv
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.Popen([str(bin_dir / "mel-train")], cwd=str(work), env=env,
                            stderr=subprocess.PIPE, text=True)
    lines, deadline = [], time.time() + 600
    for line in proc.stderr:
        lines.append(line)
        if "Phase 1/" in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGINT)          # stops with a checkpoint, as Ctrl-C does
    _, rest = proc.communicate(timeout=600)
    text = "".join(lines) + rest
    assert proc.returncode == 0, text[-3000:]
    assert "up to 32x32 on twemoji_faces (969 icons)" in text, text[-3000:]
    assert os.path.isfile(work / "runs" / "demo" / "config.json")


def test_train_export_and_generate_from_the_wheel(venv):
    bin_dir, work, _ = venv
    trained = run(bin_dir, work, "mel-train", "--logdir=tiny", *TINY)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "Next: mel-export --logdir=tiny" in trained.stderr
    exported = run(bin_dir, work, "mel-export", "--logdir=tiny", "--tflite", "--web")
    assert exported.returncode == 0, exported.stderr[-3000:]
    web = work / "tiny" / "export" / "web"
    assert (work / "tiny" / "export" / "generator.tflite").is_file()
    for _, page_path in litertjs.FILES:
        assert (web / page_path).is_file(), page_path
    made = run(bin_dir, work, "mel-generate", "--model=tiny/export/generator.tflite",
               "--num=4", "--out=icons")
    assert made.returncode == 0, made.stderr[-3000:]
    assert sorted(os.listdir(work / "icons")) == sorted(
        [f"icon_{i:04d}.png" for i in range(4)] + ["grid.png"])
