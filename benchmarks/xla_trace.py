"""Per-op CPU times of an XLA-compiled function on CPU, from TensorFlow's profiler.

XLA:CPU (the thunk runtime of TensorFlow 2.21) records one profiler event per
executed thunk, named after its HLO instruction ("Conv2D.51", "add_rsqrt_fusion.3"),
on the thread that ran it. The optimized HLO module of the same function
(`experimental_get_compiler_ir(...)(stage="optimized_hlo")`) gives each instruction's
opcode and the TensorFlow op it came from (`metadata={op_type=... op_name=...}`; a
fusion carries its root's). So the trace's thunk times can be summed per class of
operation, by the layer path in op_name: `gradient_tape/gradient_tape/` is the
penalty's second backward, `pixel_norm` a pixel norm, and so on (`class_of`).

These are CPU times: thunks that run at once on several threads all count, so their
sum can exceed the wall time. The HLO is compiled a second time for its text; the
share of thunk time whose names it knows (`matched_fraction`) says whether the two
compilations agree.
"""

from __future__ import annotations

import glob
import os
import re
import tempfile

INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([^\s=]+) = .*? ([a-z][a-z0-9\-]*)\(")
CONV_OPCODES = {"convolution", "dot", "custom-call"}
CONV_TYPES = {"Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "MatMul",
              "BatchMatMulV2", "Einsum"}
RESAMPLE_TYPES = {"DepthToSpace", "SpaceToDepth", "AvgPool", "AvgPoolGrad"}
ACTIVATION_TYPES = {"LeakyRelu", "LeakyReluGrad", "Sigmoid", "SigmoidGrad"}


def hlo_instructions(hlo_text: str) -> dict:
    """{instruction name: {"opcode", "op_type", "op_name"}} of an HLO module's text."""
    found = {}
    for line in hlo_text.splitlines():
        match = INSTRUCTION.match(line)
        if not match:
            continue
        op_type = re.search(r'op_type="([^"]*)"', line)
        op_name = re.search(r'op_name="([^"]*)"', line)
        found[match.group(1)] = {"opcode": match.group(2),
                                 "op_type": op_type.group(1) if op_type else "",
                                 "op_name": op_name.group(1) if op_name else ""}
    return found


def plain_path(op_name: str) -> str:
    """The op's layer path without TensorFlow's uniquifying suffixes ("conv0_1/conv_1/
    Conv2D" -> "conv0/conv/Conv2D"); resolutions in names go too ("g_block_8" ->
    "g_block"), which the classes do not need."""
    return re.sub(r"(?:_\d+)+(?=/|$)", "", op_name)


def class_of(opcode: str, op_type: str, op_name: str) -> str:
    """The class of operation (benchmarks.profile_ops.CLASSES, and "other") of an HLO
    instruction, from its opcode and the TensorFlow op it came from."""
    path = plain_path(op_name)
    if "gradient_tape/gradient_tape/" in path:
        return "penalty"
    if opcode in CONV_OPCODES or op_type in CONV_TYPES:
        return "conv"
    if path.startswith("adam/") or "/adam/" in path:
        return "optimizer_ema"
    if "mini_batch_std" in path:
        return "mbstd"
    if op_type in RESAMPLE_TYPES or any(s in path for s in ("/fade/", "upsample", "/pool")):
        return "resample_fade"
    if "pixel_norm" in path or op_type in ACTIVATION_TYPES:
        return "norm_act"
    if any(s in path for s in ("/conv/", "/to_rgb/", "/score/")):
        return "conv_overhead"
    return "other"


def event_seconds(logdir: str) -> dict:
    """{event name: total seconds over all threads} of the host plane of a trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    totals = {}
    for path in glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True):
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
        for plane in space.planes:
            names = plane.event_metadata
            for line in plane.lines:
                for event in line.events:
                    name = names[event.metadata_id].name
                    totals[name] = totals.get(name, 0.0) + event.duration_ps * 1e-12
    return totals


def traced_seconds(call, steps: int) -> dict:
    """Runs `call` `steps` times under the profiler; its events' total seconds."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        try:
            for _ in range(steps):
                call()
        finally:
            tf.profiler.experimental.stop()
        return event_seconds(logdir)


def classify(events: dict, instructions: dict, steps: int) -> dict:
    """Per-step thunk CPU seconds per class, with the share the HLO names matched."""
    classes, matched = {}, 0.0
    for name, seconds in events.items():
        info = instructions.get(name)
        if info is None:
            continue
        cls = class_of(info["opcode"], info["op_type"], info["op_name"])
        classes[cls] = classes.get(cls, 0.0) + seconds / steps
        matched += seconds / steps
    executable = events.get("CpuExecutable::ExecuteAsyncOnStream", 0.0) / steps
    return {"classes_cpu_seconds": classes, "thunk_cpu_seconds": matched,
            "executable_wall_seconds": executable}


def profile_function(fn, args, steps: int = 3, hlo_path=None) -> dict:
    """Per-class thunk CPU seconds per call of `fn(*args)` (a jit-compiled
    tf.function, already run once), from `steps` traced calls."""
    hlo = fn.experimental_get_compiler_ir(*args)(stage="optimized_hlo")
    if hlo_path:
        with open(hlo_path, "w") as f:
            f.write(hlo)
    instructions = hlo_instructions(hlo)
    events = traced_seconds(lambda: fn(*args), steps)
    result = classify(events, instructions, steps)
    thunk_names = sum(v for k, v in events.items() if k in instructions)
    all_thunks = thunk_names + sum(v for k, v in events.items()
                                   if re.fullmatch(r"[\w\-]+\.\d+", k) and k not in instructions)
    result["matched_fraction"] = thunk_names / all_thunks if all_thunks else 0.0
    result["steps_traced"] = steps
    return result
