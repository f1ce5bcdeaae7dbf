"""The ops of one training stage: each layer the step runs, the shapes it runs at,
how often one iteration runs it and how (forward only, with gradients, inside the
gradient penalty), and its FLOPs and bytes moved.

Used by benchmarks.profile_step (its part (b)): every op is micro-benchmarked at its
own shapes in each mode, and the times, FLOPs and bytes are summed per class of
operation. The inventory walks the networks through their public attributes
(blocks, to_rgb, from_rgb, head, conv / norm / slope of each ConvActNorm), so it
follows the model as built, not a copy of its channel tables.

Modes (what a micro-benchmark of an op runs, XLA-compiled):
    fwd             y = op(x)
    fwd_bwd_input   y, and the gradient with respect to x (D inside the G step)
    fwd_bwd         y, and the gradients with respect to x and the op's weights
    penalty         the gradient penalty's pattern: g = d(0.5 |y|^2)/dx, then the
                    gradients of |g|^2 with respect to x and the weights (the
                    forward, the first backward and the second backward)
One iteration (G step, then D step on reals and fakes stacked, with the penalty):
    G ops: fwd_bwd (B) in the G step, fwd (B) for the D step's fakes
    D ops: fwd_bwd_input (B) in the G step, fwd_bwd (2B, two sets) in the D step,
           penalty (B); the penalty's "second backward" is penalty - fwd_bwd_input.

FLOPs and bytes: float32, a multiply-add is 2 FLOPs; bytes are a lower bound, the
inputs an op reads plus the outputs it writes (weights included, intermediates of a
fused layer not). A backward pass is counted as one more pass of the forward's cost:
it reads the output's gradient and writes the input's (the same sizes), and a
weight gradient reads the input and the output's gradient and writes the weights'.

Known approximations: a micro-benchmark computes every input gradient, where the step
needs none for the networks' first layers (G's first convolution, D's fromRGB); and
its output is written to memory where the step's XLA graph may fuse it onward.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, List, Optional, Tuple

import tensorflow as tf

FLOAT_BYTES = 4
MODES = ("fwd", "fwd_bwd_input", "fwd_bwd", "penalty")
# The classes of operation a step's time is split into (profile_step, roofline).
CLASSES = ("conv", "conv_overhead", "resample_fade", "norm_act", "mbstd", "penalty",
           "optimizer_ema", "host")
CLASS_HELP = {
    "conv": "convolutions and matrix products, forward and gradients (G step, D step)",
    "conv_overhead": "around them: reflection padding, bias, kernel scale",
    "resample_fade": "upsampling (incl. the fused upsample-conv's layout), pooling, the fade",
    "norm_act": "pixel norm, leaky ReLU, G's sigmoid, forward and gradients",
    "mbstd": "MiniBatchStd, forward and gradients",
    "penalty": "the gradient penalty's second backward, all op types",
    "optimizer_ema": "both Adam updates and the generator EMA",
    "host": "feeding a batch, setting a, reading back the logs",
}


@dataclasses.dataclass
class Op:
    """One layer (or part of one) as the step runs it."""
    name: str                     # where it sits: "G/g_block_256/conv0/conv"
    kind: str                     # conv, upsample_conv, conv_core, pixel_norm, lrelu, ...
    cls: str                      # the class its time and cost go to
    fn: Callable                  # fn(*inputs, sets=1) -> output
    shapes: Tuple[tuple, ...]     # input shapes without the batch axis
    weights: list                 # the trainable variables it reads
    key: tuple                    # with kind and shapes: what makes two ops the same benchmark
    cost: Callable[[int], Tuple[float, float]]   # batch -> (FLOPs, bytes) of one forward
    core: Optional["Op"] = None   # a conv layer's bare convolution (class "conv")
    uses: list = dataclasses.field(default_factory=list)   # [(mode, batch, sets, count)]


def elements(shape) -> int:
    return int(math.prod(shape))


def passes(mode: str, weighted: bool) -> int:
    """Passes of the forward's cost a mode makes (see the module's docstring)."""
    table = {"fwd": (1, 1), "fwd_bwd_input": (2, 2), "fwd_bwd": (2, 3), "penalty": (4, 6),
             "second_backward": (2, 4)}
    return table[mode][int(weighted)]


def mode_cost(op: Op, mode: str, batch: int) -> Tuple[float, float]:
    """(FLOPs, bytes) of one run of `op` in `mode` at `batch` (its core excluded)."""
    flops, nbytes = op.cost(batch)
    k = passes(mode, bool(op.weights))
    return k * flops, k * nbytes


# ---- cost of one forward, by kind -----------------------------------------------------

def elementwise_cost(flops_per_element: float, out_shape=None):
    """Reads the inputs, writes one output (the first input's shape unless given)."""
    def cost(shapes, batch):
        n_in = sum(elements(s) for s in shapes)
        n_out = elements(out_shape or shapes[0])
        return (batch * flops_per_element * elements(shapes[0]),
                FLOAT_BYTES * batch * (n_in + n_out))
    return cost


def conv_core_cost(in_shape, kernel_shape, out_shape, batch):
    """A convolution (or matrix product) as executed: 2 FLOPs per multiply-add."""
    macs = elements(out_shape) * elements(kernel_shape[:-1])
    moved = batch * (elements(in_shape) + elements(out_shape)) + elements(kernel_shape)
    return 2.0 * batch * macs, FLOAT_BYTES * moved


def conv_overhead_cost(layer, shape, out_shape, batch):
    """What an EqualizedConv2D does around its core: padding, bias, kernel scale, and
    for upsample=True the kernel's four phases, depth_to_space and the crop."""
    h, w, cin = shape
    f, k = layer.filters, layer.kernel_size
    moved = 2 * k * k * cin * f                          # the kernel times its scale
    flops = k * k * cin * f
    if layer.upsample:
        moved += batch * (h * w * cin + (h + 2) * (w + 2) * cin)      # edge padding
        moved += batch * ((h + 1) * (w + 1) * 4 * f + elements(out_shape))   # layout
        moved += 25 * cin * f                            # 3x3 kernel -> 4 phases of 2x2
    elif layer.padding == "reflect" and k > 1:
        p = k // 2
        moved += batch * (h * w * cin + (h + 2 * p) * (w + 2 * p) * cin)
    if layer.use_bias:
        moved += 2 * batch * elements(out_shape)
        flops += batch * elements(out_shape)
    return float(flops), float(FLOAT_BYTES * moved)


# ---- how each kind of op is called -------------------------------------------------------

def call_layer(layer, x, sets=1):
    return layer(x)


def call_mbstd(layer, x, sets=1):
    return layer(x, num_sets=sets)


def call_fade(layer, old, new, sets=1):
    return layer([old, new])


def leaky_relu(slope, x, sets=1):
    return tf.nn.leaky_relu(x, slope)


def sigmoid(x, sets=1):
    return tf.sigmoid(x)


def run_core(variant, kernel, x, sets=1):
    """The bare convolution an EqualizedConv2D runs (see core_geometry)."""
    if variant == "einsum":
        return tf.einsum("bhwc,cf->bhwf", x, kernel)
    if variant == "matmul":
        return tf.matmul(x, kernel)
    return tf.nn.conv2d(x, kernel, strides=1, padding="SAME" if variant == "same" else "VALID")


# ---- convolutions -------------------------------------------------------------------------

def conv_out_shape(layer, shape) -> tuple:
    h, w, _ = shape
    f, k = layer.filters, layer.kernel_size
    if layer.upsample:
        return (2 * h, 2 * w, f)
    if layer.padding == "valid":
        return (h - k + 1, w - k + 1, f)
    return (h, w, f)


def core_geometry(layer, shape):
    """(variant, input shape, kernel shape, output shape) of the convolution an
    EqualizedConv2D executes at `shape`: the same dispatch as the layer's (1x1 as an
    einsum, a 'valid' conv as large as its input as a matmul, upsample=True as a 2x2
    convolution with 4x the filters over the edge-padded input), without the padding,
    bias and scale around it."""
    h, w, cin = shape
    f, k = layer.filters, layer.kernel_size
    if layer.upsample:
        return "valid", (h + 2, w + 2, cin), (2, 2, cin, 4 * f), (h + 1, w + 1, 4 * f)
    if k == 1:
        return "einsum", (h, w, cin), (cin, f), (h, w, f)
    if layer.padding == "valid" and h == k and w == k:
        return "matmul", (k * k * cin,), (k * k * cin, f), (f,)
    if layer.padding == "reflect":
        p = k // 2
        return "valid", (h + 2 * p, w + 2 * p, cin), (k, k, cin, f), (h, w, f)
    out = conv_out_shape(layer, shape)
    return ("same" if layer.padding == "zero" else "valid"), shape, (k, k, cin, f), out


def core_op(name, layer, shape) -> Op:
    variant, in_shape, kernel_shape, out_shape = core_geometry(layer, shape)
    kernel = tf.Variable(tf.random.normal(kernel_shape, stddev=0.05), name="core_kernel")
    return Op(name=name + "/core", kind="conv_core", cls="conv",
              fn=functools.partial(run_core, variant, kernel), shapes=(in_shape,),
              weights=[kernel], key=(variant, kernel_shape),
              cost=functools.partial(conv_core_cost, in_shape, kernel_shape, out_shape))


def conv_layer_op(name, layer, shape) -> Tuple[Op, tuple]:
    """An EqualizedConv2D: its core goes to "conv"; the rest of its time (padding, bias,
    scale) to "conv_overhead", or for the fused upsample-conv to "resample_fade"
    (that rest is what the upsampling costs)."""
    out = conv_out_shape(layer, shape)
    op = Op(name=name, kind="upsample_conv" if layer.upsample else "conv",
            cls="resample_fade" if layer.upsample else "conv_overhead",
            fn=functools.partial(call_layer, layer), shapes=(shape,),
            weights=list(layer.trainable_weights),
            key=(layer.filters, layer.kernel_size, layer.padding, layer.upsample,
                 layer.parameterization),
            cost=functools.partial(conv_overhead_cost, layer, shape, out),
            core=core_op(name, layer, shape))
    return op, out


def elementwise_op(name, kind, cls, fn, shapes, key, flops_per_element, out_shape=None):
    cost = elementwise_cost(flops_per_element, out_shape)
    return Op(name=name, kind=kind, cls=cls, fn=fn, shapes=tuple(shapes), weights=[], key=key,
              cost=functools.partial(cost, tuple(shapes)))


def conv_act_norm_ops(name, block, shape) -> Tuple[List[Op], tuple]:
    """A ConvActNorm: the convolution, then its pixel norm and leaky ReLU (if any)."""
    conv, out = conv_layer_op(f"{name}/conv", block.conv, shape)
    ops = [conv]
    if block.norm is not None:
        ops.append(elementwise_op(f"{name}/pixel_norm", "pixel_norm", "norm_act",
                                  functools.partial(call_layer, block.norm), [out],
                                  (block.norm.eps, block.norm.style), 4))
    if block.slope is not None:
        ops.append(elementwise_op(f"{name}/lrelu", "lrelu", "norm_act",
                                  functools.partial(leaky_relu, block.slope), [out],
                                  (block.slope,), 2))
    return ops, out


# ---- the networks at a stage ------------------------------------------------------------

def stage_index(network) -> int:
    return network.cfg.resolutions.index(network.stage_resolution)


def latent_ops(G) -> Tuple[List[Op], tuple]:
    """G's latent to its 4x4 map: a reshape (seed), or pixel norm, dense, lrelu and
    pixel norm (paper)."""
    cfg = G.cfg
    shape = (4, 4, cfg.base_channels)
    if cfg.latent_mode == "reshape":
        return [], shape
    dense, norm = G.latent_dense, G.latent_norm
    n_in, n_out = cfg.latent_dim, 16 * cfg.base_channels
    ops = [elementwise_op("G/latent_norm", "pixel_norm", "norm_act",
                          functools.partial(call_layer, norm), [(n_in,)],
                          (norm.eps, norm.style), 4),
           Op(name="G/latent_dense", kind="dense", cls="conv",
              fn=functools.partial(call_layer, dense), shapes=((n_in,),),
              weights=list(dense.trainable_weights), key=(n_out,),
              cost=functools.partial(conv_core_cost, (n_in,), (n_in, n_out), (n_out,))),
           elementwise_op("G/latent_lrelu", "lrelu", "norm_act",
                          functools.partial(leaky_relu, cfg.lrelu_slope), [shape],
                          (cfg.lrelu_slope,), 2),
           elementwise_op("G/latent_act_norm", "pixel_norm", "norm_act",
                          functools.partial(call_layer, G.latent_act_norm), [shape],
                          (norm.eps, norm.style), 4)]
    return ops, shape


def generator_ops(G) -> List[Op]:
    """G at its stage: the blocks up to it, toRGB, and while fading the old toRGB,
    the upsampling and the fade; then the output activation."""
    k = stage_index(G)
    ops, shape = latent_ops(G)
    previous = shape
    for block in G.blocks[:k + 1]:
        previous = shape
        for conv in block.convs:
            more, shape = conv_act_norm_ops(f"G/{block.name}/{conv.name}", conv, shape)
            ops += more
    rgb, out = conv_layer_op(f"G/{G.to_rgb[k].name}", G.to_rgb[k], shape)
    ops.append(rgb)
    if k > 0 and G.fading:
        old, half = conv_layer_op(f"G/{G.to_rgb[k - 1].name}", G.to_rgb[k - 1], previous)
        ops += [old,
                elementwise_op("G/upsample", "upsample", "resample_fade",
                               functools.partial(call_layer, G.upsample), [half], (), 0,
                               out_shape=out),
                elementwise_op("G/fade", "fade", "resample_fade",
                               functools.partial(call_fade, G.fade), [out, out], (), 3)]
    if G.cfg.output_activation == "sigmoid":
        ops.append(elementwise_op("G/sigmoid", "sigmoid", "norm_act", sigmoid, [out], (), 4))
    return ops


def pool_op(name, layer, shape) -> Tuple[Op, tuple]:
    h, w, c = shape
    half = (h // 2, w // 2, c)
    return elementwise_op(name, "pool", "resample_fade", functools.partial(call_layer, layer),
                          [shape], (), 1, out_shape=half), half


def d_block_ops(block, shape) -> Tuple[List[Op], tuple]:
    ops = []
    for conv in (block.conv0, block.conv1):
        more, shape = conv_act_norm_ops(f"D/{block.name}/{conv.name}", conv, shape)
        ops += more
    pool, shape = pool_op(f"D/{block.name}/pool", block.pool, shape)
    return ops + [pool], shape


def head_ops(head, shape) -> List[Op]:
    """MiniBatchStd, the 3x3 and 4x4 convolutions, the score."""
    h, w, c = shape
    mb = head.mbstd
    ops = [elementwise_op("D/d_head/mbstd", "mbstd", "mbstd", functools.partial(call_mbstd, mb),
                          [shape], (mb.group_size, mb.unbiased, mb.eps), 5,
                          out_shape=(h, w, c + 1))]
    shape = (h, w, c + 1)
    for conv in (head.conv0, head.conv1):
        more, shape = conv_act_norm_ops(f"D/d_head/{conv.name}", conv, shape)
        ops += more
    score, _ = conv_layer_op("D/d_head/score", head.out, shape)
    return ops + [score]


def discriminator_ops(D) -> List[Op]:
    """D at its stage: fromRGB and the new block, while fading the pooled images'
    fromRGB and the fade, the older blocks, the head."""
    k, r = stage_index(D), D.stage_resolution
    ops, shape = conv_act_norm_ops(f"D/{D.from_rgb[k].name}", D.from_rgb[k], (r, r, 3))
    if k > 0:
        more, shape = d_block_ops(D.blocks[k], shape)
        ops += more
        if D.fading:
            pool, half = pool_op("D/pool_images", D.pool, (r, r, 3))
            more, _ = conv_act_norm_ops(f"D/{D.from_rgb[k - 1].name}", D.from_rgb[k - 1], half)
            ops += [pool] + more + [elementwise_op(
                "D/fade", "fade", "resample_fade", functools.partial(call_fade, D.fade),
                [shape, shape], (), 3)]
    for block in reversed(D.blocks[1:k]):
        more, shape = d_block_ops(block, shape)
        ops += more
    return ops + head_ops(D.head, shape)


def generator_uses(batch):
    """The G step's forward and backward, and the D step's forward for its fakes."""
    return [("fwd_bwd", batch, 1, 1), ("fwd", batch, 1, 1)]


def discriminator_uses(batch):
    """G step: forward and input gradients; D step: reals and fakes stacked (two
    sets), with weight gradients; the penalty at the interpolates: its forward and
    first backward (as in the G step) and its second backward."""
    return [("fwd_bwd_input", batch, 1, 2), ("fwd_bwd", 2 * batch, 2, 1),
            ("second_backward", batch, 1, 1)]


def stage_ops(model, batch: int) -> List[Op]:
    """Every op of one iteration of `model` (a ProGAN at its stage), with its uses."""
    ops = []
    for op in generator_ops(model.generator):
        op.uses = generator_uses(batch)
        ops.append(op)
    for op in discriminator_ops(model.discriminator):
        op.uses = discriminator_uses(batch)
        ops.append(op)
    return ops


# ---- micro-benchmarks ---------------------------------------------------------------------

def run_fwd(fn, weights, inputs, cotangent):
    return fn(*inputs)


def run_fwd_bwd(fn, weights, inputs, cotangent):
    """The output (so that the forward runs: the backward alone may not need it) and
    the gradients of <y, cotangent> with respect to the inputs and `weights`."""
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        y = fn(*inputs)
        total = tf.reduce_sum(y * cotangent)
    return y, tape.gradient(total, list(inputs) + list(weights))


def run_penalty(fn, weights, inputs, cotangent):
    """The penalty's pattern: the input gradient of 0.5 |y|^2 (it depends on the
    forward, as in the network, where it comes down from later layers), then the
    gradients of its squared norm with respect to the inputs and `weights`."""
    with tf.GradientTape() as outer:
        outer.watch(inputs)
        with tf.GradientTape() as inner:
            inner.watch(inputs)
            y = fn(*inputs)
            total = 0.5 * tf.reduce_sum(tf.square(y))
        grads = inner.gradient(total, inputs)
        norm = tf.add_n([tf.reduce_sum(tf.square(g)) for g in grads])
    return y, outer.gradient(norm, list(inputs) + list(weights))


def mode_function(mode: str, fn, weights):
    """The XLA-compiled function of `mode` for an op: f(inputs, cotangent)."""
    if mode == "fwd":
        body = functools.partial(run_fwd, fn, weights)
    elif mode in ("fwd_bwd", "fwd_bwd_input"):
        body = functools.partial(run_fwd_bwd, fn, weights if mode == "fwd_bwd" else [])
    elif mode == "penalty":
        body = functools.partial(run_penalty, fn, weights)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return tf.function(body, jit_compile=True, autograph=False)


def micro_key(op: Op, mode: str, batch: int, sets: int) -> str:
    """Two ops with the same key are one benchmark (same kind, settings and shapes)."""
    return f"{op.kind}{op.key}{op.shapes}|{mode}|b{batch}|s{sets}"


def needed(op: Op) -> List[Tuple[Op, str, int, int]]:
    """(op, mode, batch, sets) of every micro-benchmark `op`'s uses need."""
    found = []
    for mode, batch, sets, _ in op.uses:
        if mode == "second_backward":
            found += [(op, "penalty", batch, sets), (op, "fwd_bwd_input", batch, sets)]
            continue
        found.append((op, mode, batch, sets))
        if op.core is not None:
            found.append((op.core, mode, batch, sets))
    return found


class Tensors:
    """Random float32 inputs, one per shape, shared by every benchmark that needs it
    (a stage at 256x256 would not fit in memory with one set per benchmark)."""

    def __init__(self, seed: int = 0):
        self.rng = tf.random.Generator.from_seed(seed)
        self.cache = {}

    def get(self, shape) -> tf.Tensor:
        shape = tuple(int(d) for d in shape)
        if shape not in self.cache:
            self.cache[shape] = self.rng.normal(shape)
        return self.cache[shape]


def output_shape(fn, inputs) -> tuple:
    specs = [tf.TensorSpec(x.shape, x.dtype) for x in inputs]
    traced = tf.function(lambda *xs: fn(*xs), autograph=False).get_concrete_function(*specs)
    return tuple(traced.structured_outputs.shape)


def micro_call(op: Op, mode: str, batch: int, sets: int, tensors: Tensors) -> Callable:
    """A function that runs `op` once in `mode` on held random inputs."""
    fn = functools.partial(op.fn, sets=sets)
    inputs = [tensors.get((batch,) + tuple(s)) for s in op.shapes]
    cotangent = tensors.get(output_shape(fn, inputs)) if mode != "fwd" else tf.zeros(())
    compiled = mode_function(mode, fn, op.weights)
    return lambda: compiled(inputs, cotangent)


def identity(x, sets=1):
    return x * 1.0


def null_call(tensors: Tensors) -> Callable:
    """An XLA call that does next to nothing: what calling a compiled function costs
    (dispatch, launch), subtracted from every micro-benchmark."""
    compiled = mode_function("fwd", identity, [])
    inputs, unused = [tensors.get((1,))], tf.zeros(())
    return lambda: compiled(inputs, unused)


def micro_calls(ops: List[Op], tensors: Tensors) -> dict:
    """{micro_key: function} of every distinct micro-benchmark the ops need."""
    calls = {}
    for op in ops:
        for owner, mode, batch, sets in needed(op):
            key = micro_key(owner, mode, batch, sets)
            if key not in calls:
                calls[key] = micro_call(owner, mode, batch, sets, tensors)
    return calls


# ---- from micro-benchmark times to classes -------------------------------------------------

def full_cost(op: Op, mode: str, batch: int) -> Tuple[float, float]:
    """(FLOPs, bytes) of `op` in `mode`, its core included."""
    flops, nbytes = mode_cost(op, mode, batch)
    if op.core is not None:
        core_flops, core_bytes = mode_cost(op.core, mode, batch)
        flops, nbytes = flops + core_flops, nbytes + core_bytes
    return flops, nbytes


def use_parts(op: Op, mode: str, batch: int, sets: int, seconds: dict) -> list:
    """[(class, seconds, FLOPs, bytes)] of one run of `op` in one of its uses: a conv
    layer's core to "conv" and the rest of the layer to the layer's class; the
    penalty's second backward (penalty - fwd_bwd_input) wholly to "penalty"."""
    def time(owner, m):
        return seconds[micro_key(owner, m, batch, sets)]
    if mode == "second_backward":
        return [("penalty", time(op, "penalty") - time(op, "fwd_bwd_input"),
                 *full_cost(op, mode, batch))]
    if op.core is None:
        return [(op.cls, time(op, mode), *mode_cost(op, mode, batch))]
    core_time = time(op.core, mode)
    return [("conv", core_time, *mode_cost(op.core, mode, batch)),
            (op.cls, time(op, mode) - core_time, *mode_cost(op, mode, batch))]


def attribute(ops: List[Op], seconds: dict) -> dict:
    """Sums the ops' micro-benchmark times, FLOPs and bytes per class, each use scaled
    by how often one iteration runs it; {"classes": ..., "ops": [per op and use]}."""
    classes = {c: {"seconds": 0.0, "flops": 0.0, "bytes": 0.0} for c in CLASSES}
    rows = []
    for op in ops:
        row = {"name": op.name, "kind": op.kind, "class": op.cls,
               "shapes": [list(s) for s in op.shapes], "uses": []}
        for mode, batch, sets, count in op.uses:
            parts = use_parts(op, mode, batch, sets, seconds)
            for cls, t, flops, nbytes in parts:
                total = classes[cls]
                total["seconds"] += count * t
                total["flops"] += count * flops
                total["bytes"] += count * nbytes
            row["uses"].append({"mode": mode, "batch": batch, "sets": sets, "count": count,
                                "seconds": count * sum(p[1] for p in parts),
                                "flops": count * sum(p[2] for p in parts),
                                "bytes": count * sum(p[3] for p in parts)})
        rows.append(row)
    return {"classes": {c: v for c, v in classes.items() if v["seconds"] or v["flops"]},
            "ops": rows}


def subgraph_estimates(ops: List[Op], seconds: dict, batch: int) -> dict:
    """The sub-graphs of profile_step's part (a) as sums of micro-benchmarks, to set
    beside their measured times (the gap is what XLA's fusion across layers, and the
    losses and glue between them, change)."""
    def total(prefix, mode, b, sets=1):
        return sum(seconds[micro_key(op, mode, b, sets)] for op in ops
                   if op.name.startswith(prefix))
    return {"g_forward": total("G/", "fwd", batch),
            "g_step_grads": total("G/", "fwd_bwd", batch) + total("D/", "fwd_bwd_input", batch),
            "d_forward_backward": total("D/", "fwd_bwd", 2 * batch, 2),
            "penalty": total("D/", "penalty", batch)}


def penalty_by_kind(ops: List[Op], seconds: dict, batch: int) -> dict:
    """The second backward's estimated seconds per kind of op."""
    kinds = {}
    for op in ops:
        for mode, b, sets, count in op.uses:
            if mode == "second_backward":
                t = count * use_parts(op, mode, b, sets, seconds)[0][1]
                kinds[op.kind] = kinds.get(op.kind, 0.0) + t
    return kinds
