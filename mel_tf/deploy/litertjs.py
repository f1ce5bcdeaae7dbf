"""LiteRT.js, the runtime of the browser page: where it comes from and what is copied.

The page needs the npm packages @litertjs/core and @litertjs/wasm-utils (Apache
License 2.0), pinned in the checkout's package.json. Only the files the page
can load travel: the ES modules and the two single-threaded WebAssembly builds
(`litert_wasm_internal` for browsers with relaxed SIMD, `litert_wasm_compat_internal`
for the others), about 19 MB, of which a browser downloads one build.

Where they are read from, in order:
  1. $MEL_TF_NODE_MODULES, a node_modules folder;
  2. mel_tf/deploy/litert/ inside the installed package: a wheel built after
     `npm ci` carries them (setup.py calls `bundle`);
  3. node_modules/ beside the checkout's package.json (`npm ci` in a clone).

Standard library only: setup.py imports this module to bundle the files.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Dict, Tuple

PACKAGES = ("@litertjs/core", "@litertjs/wasm-utils")
# (file in node_modules, where the page loads it from)
FILES = (
    ("@litertjs/core/dist/index.js", "litert/core/index.js"),
    ("@litertjs/wasm-utils/dist/index.js", "litert/wasm-utils/index.js"),
    ("@litertjs/core/wasm/litert_wasm_internal.js", "litert/wasm/litert_wasm_internal.js"),
    ("@litertjs/core/wasm/litert_wasm_internal.wasm", "litert/wasm/litert_wasm_internal.wasm"),
    ("@litertjs/core/wasm/litert_wasm_compat_internal.js",
     "litert/wasm/litert_wasm_compat_internal.js"),
    ("@litertjs/core/wasm/litert_wasm_compat_internal.wasm",
     "litert/wasm/litert_wasm_compat_internal.wasm"),
)
NODE_MODULES_ENV = "MEL_TF_NODE_MODULES"
PACKAGED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "litert")
VERSIONS_FILE = "versions.json"
CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LICENCE = ("litert/ holds files of the npm packages {packages} "
           "(https://github.com/google-ai-edge/LiteRT, litert/js), unmodified,\n"
           "under the Apache License 2.0: https://www.apache.org/licenses/LICENSE-2.0\n")


class LiteRTJSError(ValueError):
    """LiteRT.js cannot be found as pinned; the message says what to run."""


def pinned_versions(checkout: str = CHECKOUT) -> Dict[str, str]:
    """{package: version} as the checkout's package.json pins them."""
    with open(os.path.join(checkout, "package.json")) as f:
        deps = json.load(f)["dependencies"]
    return {name: deps[name] for name in PACKAGES}


def installed_versions(node_modules: str) -> Dict[str, str]:
    found = {}
    for name in PACKAGES:
        with open(os.path.join(node_modules, name, "package.json")) as f:
            found[name] = json.load(f)["version"]
    return found


def check_node_modules(node_modules: str, checkout: str = CHECKOUT) -> Dict[str, str]:
    """The versions in `node_modules`; LiteRTJSError unless they are the pinned ones
    and every file the page loads is there."""
    install = f"run `npm ci` in {checkout}"
    try:
        pinned = pinned_versions(checkout)
    except (OSError, ValueError, KeyError):
        raise LiteRTJSError("--web needs LiteRT.js: this installation does not carry it and "
                            f"there is no package.json in {checkout}; install mel_tf from a "
                            "wheel built after `npm ci`, or set $" + NODE_MODULES_ENV) from None
    try:
        found = installed_versions(node_modules)
    except (OSError, ValueError, KeyError):
        raise LiteRTJSError(f"--web needs the LiteRT.js npm packages, not found in "
                            f"{node_modules}: {install}") from None
    for name in PACKAGES:
        if found[name] != pinned[name]:
            raise LiteRTJSError(f"--web: {name} {found[name]} is installed but package.json "
                                f"pins {pinned[name]}: {install}")
    missing = [src for src, _ in FILES if not os.path.isfile(os.path.join(node_modules, src))]
    if missing:
        raise LiteRTJSError(f"--web: {missing[0]} is missing from {node_modules}: {install}")
    return found


def locate() -> Tuple[str, Dict[str, str]]:
    """(the folder the page's litert/ is copied from, the versions), from the first
    place that has LiteRT.js; LiteRTJSError with what to run when none has."""
    env = os.environ.get(NODE_MODULES_ENV)
    if not env and os.path.isfile(os.path.join(PACKAGED, VERSIONS_FILE)):
        with open(os.path.join(PACKAGED, VERSIONS_FILE)) as f:
            return PACKAGED, json.load(f)
    node_modules = env or os.path.join(CHECKOUT, "node_modules")
    versions = check_node_modules(node_modules)
    return node_modules, versions


def copy_into(web_dir: str) -> Dict[str, str]:
    """Copies the page's litert/ files and their licence note into `web_dir`;
    returns the versions."""
    source, versions = locate()
    packaged = source == PACKAGED
    for src, dst in FILES:
        target = os.path.join(web_dir, dst)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(source, os.path.relpath(dst, "litert") if packaged
                                     else src), target)
    with open(os.path.join(web_dir, "THIRD_PARTY.txt"), "w") as f:
        f.write(licence_note(versions))
    return versions


def licence_note(versions: Dict[str, str]) -> str:
    return LICENCE.format(packages=", ".join(f"{n} {v}" for n, v in versions.items()))


def bundle(node_modules: str, package_dir: str, checkout: str = CHECKOUT) -> Dict[str, str]:
    """Copies the pinned LiteRT.js files into an installed package's
    mel_tf/deploy/litert/ (`package_dir`), with versions.json and the licence note."""
    versions = check_node_modules(node_modules, checkout)
    for src, dst in FILES:
        target = os.path.join(package_dir, os.path.relpath(dst, "litert"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(node_modules, src), target)
    with open(os.path.join(package_dir, VERSIONS_FILE), "w") as f:
        json.dump(versions, f, indent=2)
    with open(os.path.join(package_dir, "THIRD_PARTY.txt"), "w") as f:
        f.write(licence_note(versions))
    return versions
