"""The package's structure: imports without cycles or private names across modules,
training apart from deployment, and the configuration as the one statement of a run
(every field a flag, every flag a field, a new field a new flag)."""

import ast
import dataclasses
import os
import sys
from typing import Optional

import pytest
from absl import flags

from conftest import REPO
from mel_tf import config
from mel_tf.cli import flags as config_flags

PACKAGE = os.path.join(REPO, "mel_tf")


def modules():
    """{dotted module name: path} of every module of the package."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                found[dotted.removesuffix(".__init__")] = path
    return found


def imports(path, known):
    """[(imported module, [names taken from it])] of one file, at any depth."""
    result = []
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            result += [(a.name, []) for a in node.names if a.name in known]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [a.name for a in node.names]
            if node.module in known:
                result.append((node.module, names))
            # `from mel_tf.training import rundir`: the names are modules.
            result += [(f"{node.module}.{n}", []) for n in names
                       if f"{node.module}.{n}" in known]
    return result


def graph():
    known = modules()
    return {m: imports(p, known) for m, p in known.items()}, known


def test_the_walk_finds_the_package():
    edges, known = graph()
    assert {"mel_tf.config", "mel_tf.training.loop", "mel_tf.deploy.export",
            "mel_tf.cli.train"} <= set(known)
    assert ("mel_tf.training.progan", ["ProGAN", "step_noise"]) in edges["mel_tf.training.loop"]


def find_cycle(edges) -> Optional[list]:
    """A cycle of the module graph as a list of modules, or None."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for target, _ in edges.get(node, []):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target, stack + [target])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for start in sorted(edges):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return None


def test_every_import_of_the_package_names_a_module_or_name_that_exists():
    """Imports inside functions run late: a stale module name would fail only then."""
    import importlib
    known = modules()
    for path in known.values():
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mel_tf"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert (hasattr(module, alias.name)
                            or f"{node.module}.{alias.name}" in known), (path, node.module,
                                                                          alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("mel_tf"):
                        assert alias.name in known, (path, alias.name)


def test_no_import_cycle():
    edges, _ = graph()
    assert find_cycle(edges) is None, find_cycle(edges)
    # The check itself finds a cycle when there is one.
    assert find_cycle({"a": [("b", [])], "b": [("c", [])], "c": [("a", [])]}) == [
        "a", "b", "c", "a"]


def test_no_private_name_imported_across_modules():
    edges, _ = graph()
    private = [(m, target, n) for m, found in edges.items() for target, names in found
               for n in names if n.startswith("_")]
    assert private == []


def test_training_never_imports_deployment():
    edges, _ = graph()
    wrong = [(m, t) for m, found in edges.items() if m.startswith("mel_tf.training")
             for t, _ in found if t.startswith(("mel_tf.deploy", "mel_tf.cli"))]
    wrong += [(m, t) for m, found in edges.items() if m.startswith("mel_tf.deploy")
              for t, _ in found if t.startswith("mel_tf.cli")]
    assert wrong == []


def test_generate_and_a_tflite_model_need_no_tensorflow():
    import subprocess
    code = ("import sys; import mel_tf.deploy.generate, mel_tf.deploy.serving, "
            "mel_tf.cli.generate; print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True, timeout=120).stdout
    assert out.strip() == "False"


# ---- the configuration as the one statement of a run -----------------------------------

def test_every_field_has_a_flag_and_every_flag_a_field():
    import mel_tf.cli.train as train_cli
    fields = {config.flag_name(f) for cls in config.CONFIG_CLASSES
              for f in dataclasses.fields(cls)}
    declared = {f.name for f in flags.FLAGS.get_flags_for_module(train_cli.__name__)}
    assert declared == fields
    for cls in config.CONFIG_CLASSES:
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"
            assert f.metadata.get("resume") in (config.ARCHITECTURE, config.ALLOWED,
                                                config.FREE), f.name


def parsed(argv, classes=config.CONFIG_CLASSES):
    values = flags.FlagValues()
    config_flags.define(values, classes)
    values(["prog", *argv])
    return values


def test_flags_read_back_the_defaults_and_the_flag_file_rebuilds_a_run():
    values = parsed([])
    for cls in config.CONFIG_CLASSES:
        assert config_flags.read(cls, values) == cls()
    net = config.preset("paper", 64, 0.25, mbstd_group_size=2)
    train = config.TrainConfig(seed=3, batch_sizes=((4, 16), (8, 8)),
                               learning_rates=((64, 1.5e-4),), final_learning_rate=1e-4,
                               contrast=True, contrast_range=(1.0, 1.5), adam_beta1=0.5)
    data = config.DataConfig(data_dir="icons", background=(0, 10, 20))
    text = config_flags.flag_file(data, net, train)
    again = parsed(text.split())
    assert config_flags.read(config.NetworkConfig, again) == net
    assert config_flags.read(config.TrainConfig, again) == train
    assert config_flags.read(config.DataConfig, again) == data


def test_a_preset_chooses_its_fields_unless_their_flag_is_given():
    paper = config_flags.read(config.NetworkConfig, parsed(["--preset=paper"]))
    assert paper == config.preset("paper")
    assert paper.mbstd_group_size == 4 and paper.padding == "zero"
    mine = config_flags.read(config.NetworkConfig,
                             parsed(["--preset=paper", "--mbstd_group_size=0"]))
    assert mine == config.preset("paper", mbstd_group_size=0)


def test_bad_flag_values_are_value_errors_that_name_the_setting():
    with pytest.raises(ValueError, match="RESOLUTION:VALUE"):
        config_flags.read(config.TrainConfig, parsed(["--batch_sizes=4=64"]))
    with pytest.raises(ValueError, match="background"):
        config_flags.read(config.DataConfig, parsed(["--background=white"]))


@dataclasses.dataclass(frozen=True)
class WithANewSetting(config.TrainConfig):
    """TrainConfig with one more field, as a developer would add it."""
    warmup_images: int = config.setting(0, "Images at a lower learning rate first.")


def test_a_new_field_is_a_flag_a_flag_file_line_and_a_resume_check():
    classes = (config.NetworkConfig, WithANewSetting)
    values = parsed(["--warmup_images=800"], classes)
    train = config_flags.read(WithANewSetting, values)
    assert train.warmup_images == 800 and train.seed == 0
    assert "--warmup_images=800\n" in config_flags.flag_file(train)
    assert "Images at a lower learning rate first." in values["warmup_images"].help
    from mel_tf.training import rundir
    old = rundir.changes_between(WithANewSetting(), train, {config.ALLOWED})
    assert old == ["warmup_images: 0 -> 800"]


def test_a_channel_floor_that_changes_no_layer_does_not_block_a_resume(tmp_path):
    from mel_tf.training import rundir
    old = config.preset("seed", 16, 1.0, min_channels=1, widen_to_floor=False)
    rundir.prepare(str(tmp_path), old, config.TrainConfig())
    assert rundir.check_resume(str(tmp_path), old.replace(min_channels=8),
                               config.TrainConfig()) == []
    half = str(tmp_path / "half")
    rundir.prepare(half, config.preset("seed", 256, 0.5, min_channels=1), config.TrainConfig())
    with pytest.raises(rundir.RunDirError, match="min_channels: 1 -> 8"):
        rundir.check_resume(half, config.preset("seed", 256, 0.5), config.TrainConfig())
    # Widening to the floor changes no layer at 16x16 (full width has 64 channels there)
    # but widens the 256x256 block (4 channels at full width) to 8.
    assert rundir.check_resume(str(tmp_path), old.replace(widen_to_floor=True),
                               config.TrainConfig()) == []
    floored = str(tmp_path / "floored")
    rundir.prepare(floored, config.preset("seed", 256, 0.5, widen_to_floor=False),
                   config.TrainConfig())
    with pytest.raises(rundir.RunDirError, match="widen_to_floor: False -> True"):
        rundir.check_resume(floored, config.preset("seed", 256, 0.5, widen_to_floor=True),
                            config.TrainConfig())


def test_widen_to_floor_widens_only_the_layers_narrower_than_the_floor_at_full_width():
    narrow = config.preset("seed", 256, 0.5, min_channels=8, widen_to_floor=False)
    wide = narrow.replace(widen_to_floor=True)
    # G's blocks (in, out), D's blocks (in, middle, out) and fromRGB, from 4x4 to 256x256.
    assert narrow.channel_table()[2][-2:] == ((8, 8), (8, 4))
    assert wide.channel_table()[2][-2:] == ((8, 8), (8, 8))
    assert (narrow.d_block_channels(256), wide.d_block_channels(256)) == ((4, 8, 8), (8, 8, 8))
    assert (narrow.d_from_rgb_channels(256), wide.d_from_rgb_channels(256)) == (4, 8)
    assert wide.channel_table()[:2] == narrow.channel_table()[:2]
    assert wide.channel_table()[2][:-1] == narrow.channel_table()[2][:-1]
    # Full width: the floor now widens the source's 4-channel 256x256 block too.
    assert config.preset("seed", 256, 1.0, widen_to_floor=True).g_block_channels(256) == (8, 8)
    assert config.preset("seed", 256, 1.0, widen_to_floor=False).g_block_channels(256) == (8, 4)
    # A config.json from before the field loads as the networks it trained.
    assert config.NetworkConfig.from_dict(
        {k: v for k, v in narrow.to_dict().items() if k != "widen_to_floor"}) == narrow
