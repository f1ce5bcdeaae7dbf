"""docs/mobile.md shows the seed code that was compiled and checked (docs/mobile/*.kt,
*.swift) and an example of `mel-generate --print_latents` that the code prints."""

import json
import os
import re

import pytest

from conftest import REPO
from mel_tf.deploy.seeds import latent_test_vectors

DOC = os.path.join(REPO, "docs", "mobile.md")


def _block_after(marker: str) -> str:
    """The fenced block right after the line `<!-- marker -->` in the doc."""
    text = open(DOC).read()
    found = re.search(re.escape(f"<!-- {marker} -->") + r"\n```\w*\n(.*?)\n```", text, re.S)
    assert found, f"no block after <!-- {marker} --> in docs/mobile.md"
    return found.group(1)


@pytest.mark.parametrize("name", ["MelSeeds.kt", "MelSeeds.swift"])
def test_doc_shows_the_seed_code_that_was_checked(name):
    with open(os.path.join(REPO, "docs", "mobile", name)) as f:
        assert _block_after(f"docs/mobile/{name}") == f.read().rstrip("\n")


def test_doc_example_is_what_print_latents_prints():
    shown = json.loads(_block_after(
        "mel-generate --print_latents --latent_dim=8 --seed=1234567 --num=2 --truncation=0.5"))
    assert shown == latent_test_vectors(1234567, 2, 8, truncation=0.5)
    assert shown["latents"][0]["entries"]["7"] == "0.37437922"
