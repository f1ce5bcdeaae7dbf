"""benchmarks.profile_step, profile_ops, xla_trace and roofline at tiny sizes: the
FLOPs and bytes of each class against hand counts and the project's own FLOPs
estimate, the attribution of micro-benchmark times to classes, the penalty's
pattern as a true second derivative, the roofline's floor, and that every timed
part runs and gives finite numbers. No test asserts a speed."""

import math

import numpy as np
import pytest
import tensorflow as tf

from benchmarks import profile_ops as po
from benchmarks import profile_step as ps
from benchmarks import roofline, xla_trace
from mel_tf.config import TrainConfig, preset
from mel_tf.training.estimate import conv_flops, forward_flops
from mel_tf.training.layers import EqualizedConv2D
from mel_tf.training.progan import ProGAN


def built_conv(filters, kernel, padding, shape, upsample=False):
    layer = EqualizedConv2D(filters, kernel, padding=padding, upsample=upsample)
    layer.build((None,) + shape)
    return layer


def tiny_model(resolution=8, width=1 / 64):
    model = ProGAN(preset("seed", resolution, width), TrainConfig(batch_size=2))
    model.set_stage(resolution, resolution > 4)
    model.set_alpha(0.5)
    return model


# ---- FLOPs and bytes -----------------------------------------------------------------------

def test_a_reflect_conv_costs_what_a_hand_count_says():
    # 3x3, 4 -> 5 channels at 6x6, reflection padding, batch 2.
    op, out = po.conv_layer_op("c", built_conv(5, 3, "reflect", (6, 6, 4)), (6, 6, 4))
    assert out == (6, 6, 5)
    assert po.core_geometry(built_conv(5, 3, "reflect", (6, 6, 4)), (6, 6, 4)) == (
        "valid", (8, 8, 4), (3, 3, 4, 5), (6, 6, 5))
    flops, nbytes = op.core.cost(2)
    assert flops == 2 * 2 * 6 * 6 * 4 * 5 * 9            # 2 FLOPs per multiply-add
    assert nbytes == 4 * (2 * 8 * 8 * 4 + 3 * 3 * 4 * 5 + 2 * 6 * 6 * 5)   # x, w, y
    flops, nbytes = op.cost(2)   # around the core: kernel scale, padding, bias
    assert flops == 3 * 3 * 4 * 5 + 2 * 6 * 6 * 5
    assert nbytes == 4 * (2 * 180 + 2 * (6 * 6 * 4 + 8 * 8 * 4) + 2 * 2 * 6 * 6 * 5)


def test_the_fused_upsample_conv_counts_its_executed_arithmetic():
    # 3 -> 2 channels, 4x4 in, 8x8 out: a 2x2 convolution with 8 filters at 5x5.
    layer = built_conv(2, 3, "reflect", (4, 4, 3), upsample=True)
    op, out = po.conv_layer_op("u", layer, (4, 4, 3))
    assert out == (8, 8, 2) and op.cls == "resample_fade" and op.core.cls == "conv"
    assert op.core.shapes == ((6, 6, 3),)
    assert op.core.cost(1)[0] == 2 * 5 * 5 * 8 * (2 * 2 * 3)
    assert op.core.cost(1)[0] < conv_flops(8, 8, 3, 2, 3)   # 16/36 per pixel, plus an edge


@pytest.mark.parametrize("kernel,padding,shape,upsample", [
    (3, "reflect", (6, 6, 4), False), (3, "zero", (6, 6, 4), False), (1, "zero", (6, 6, 4), False),
    (4, "valid", (4, 4, 4), False), (3, "reflect", (3, 3, 4), True)])
def test_the_core_is_the_convolution_the_layer_runs(kernel, padding, shape, upsample):
    layer = built_conv(5, kernel, padding, shape, upsample)
    x = tf.random.normal((2,) + shape)
    assert tuple(layer(x).shape) == (2,) + po.conv_out_shape(layer, shape)
    variant, in_shape, kernel_shape, out_shape = po.core_geometry(layer, shape)
    y = po.run_core(variant, tf.random.normal(kernel_shape), tf.random.normal((2,) + in_shape))
    assert tuple(y.shape) == (2,) + out_shape


def test_the_reflect_core_with_the_layers_kernel_gives_the_layers_output():
    layer = built_conv(5, 3, "reflect", (6, 6, 4))
    layer.bias.assign(tf.random.normal((5,)))
    x = tf.random.normal((2, 6, 6, 4))
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    core = po.run_core("valid", layer.scaled_kernel(), padded)
    np.testing.assert_allclose(core + layer.bias, layer(x), rtol=1e-5, atol=1e-5)


def test_passes_per_mode():
    assert [po.passes(m, True) for m in ("fwd", "fwd_bwd_input", "fwd_bwd", "penalty")] == [
        1, 2, 3, 6]
    assert [po.passes(m, False) for m in ("fwd", "fwd_bwd_input", "fwd_bwd", "penalty")] == [
        1, 2, 2, 4]
    # The second backward is the penalty less its forward and first backward.
    for weighted in (True, False):
        assert po.passes("second_backward", weighted) == (
            po.passes("penalty", weighted) - po.passes("fwd_bwd_input", weighted))


def forward_core_flops(ops, prefix):
    """Forward FLOPs per image of the ops' convolutions, the fused upsample-conv
    counted as the network specifies it (upsample, then 3x3), as estimate does."""
    total = 0.0
    for op in ops:
        if op.core is None or not op.name.startswith(prefix):
            continue
        if op.kind == "upsample_conv":
            h, w, cin = op.shapes[0]
            total += conv_flops(2 * h, 2 * w, cin, op.core.key[1][-1] // 4, 3)
        else:
            total += op.core.cost(1)[0]
    return total


@pytest.mark.parametrize("resolution", [4, 16])
def test_the_inventory_has_the_estimates_forward_flops(resolution):
    model = tiny_model(resolution, width=1 / 16)
    ops = po.stage_ops(model, 2)
    g, d = forward_flops(model.net_cfg, resolution, resolution > 4)
    assert forward_core_flops(ops, "G/") == g
    assert forward_core_flops(ops, "D/") == d
    kinds = {op.kind for op in ops}
    assert {"conv", "pixel_norm", "lrelu", "mbstd", "sigmoid"} <= kinds
    if resolution > 4:
        assert {"upsample_conv", "upsample", "fade", "pool"} <= kinds


def test_every_op_of_d_runs_in_the_g_step_the_d_step_and_the_penalty():
    ops = po.stage_ops(tiny_model(), 2)
    for op in ops:
        if op.name.startswith("D/"):
            assert op.uses == [("fwd_bwd_input", 2, 1, 2), ("fwd_bwd", 4, 2, 1),
                               ("second_backward", 2, 1, 1)]
        else:
            assert op.uses == [("fwd_bwd", 2, 1, 1), ("fwd", 2, 1, 1)]


# ---- from micro-benchmark times to classes -------------------------------------------------

def d_pair():
    """A D-side conv layer (with its core) and a leaky ReLU, batch 2."""
    conv, out = po.conv_layer_op("D/c", built_conv(5, 3, "reflect", (6, 6, 4)), (6, 6, 4))
    act = po.elementwise_op("D/a", "lrelu", "norm_act", po.sigmoid, [out], (0.2,), 2)
    for op in (conv, act):
        op.uses = po.discriminator_uses(2)
    return conv, act


def test_attribute_scales_each_use_by_its_count_and_splits_the_layers():
    conv, act = d_pair()
    given = {("D/c", "fwd_bwd_input"): 2.0, ("D/c", "fwd_bwd"): 3.0, ("D/c", "penalty"): 7.0,
             ("D/c/core", "fwd_bwd_input"): 1.0, ("D/c/core", "fwd_bwd"): 1.5,
             ("D/a", "fwd_bwd_input"): 0.5, ("D/a", "fwd_bwd"): 0.6, ("D/a", "penalty"): 0.9}
    seconds = {}
    for owner, mode, batch, sets in po.needed(conv) + po.needed(act):
        seconds[po.micro_key(owner, mode, batch, sets)] = given[(owner.name, mode)]
    classes = po.attribute([conv, act], seconds)["classes"]
    # Two runs with input gradients (G step, penalty's first half), one stacked D step.
    assert classes["conv"]["seconds"] == pytest.approx(2 * 1.0 + 1.5)
    assert classes["conv_overhead"]["seconds"] == pytest.approx(2 * (2.0 - 1.0) + (3.0 - 1.5))
    assert classes["norm_act"]["seconds"] == pytest.approx(2 * 0.5 + 0.6)
    assert classes["penalty"]["seconds"] == pytest.approx((7.0 - 2.0) + (0.9 - 0.5))
    core2, core4 = conv.core.cost(2)[0], conv.core.cost(4)[0]
    assert classes["conv"]["flops"] == pytest.approx(2 * 2 * core2 + 3 * core4)
    assert classes["penalty"]["flops"] == pytest.approx(
        4 * (core2 + conv.cost(2)[0]) + 2 * act.cost(2)[0])
    assert classes["norm_act"]["bytes"] == pytest.approx(2 * 2 * act.cost(2)[1]
                                                         + 2 * act.cost(4)[1])


def test_same_ops_share_one_micro_benchmark():
    ops = po.stage_ops(tiny_model(), 2)
    keys = {po.micro_key(*n) for op in ops for n in po.needed(op)}
    calls = po.micro_calls(ops, po.Tensors())      # traced for shapes, not compiled
    assert set(calls) == keys
    assert len(keys) < sum(len(po.needed(op)) for op in ops)


def test_the_penalty_pattern_is_a_second_derivative():
    # y = x W: g = d(0.5 |y|^2)/dx = x A with A = W W^T, loss = |x A|^2.
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((2, 3)), tf.float64)
    w = tf.Variable(rng.standard_normal((3, 4)))
    _, (dx, dw) = po.run_penalty(lambda v: tf.matmul(v, w), [w], [x], None)
    xn, wn = x.numpy(), w.numpy()
    a = wn @ wn.T
    np.testing.assert_allclose(dx, 2 * xn @ a @ a.T, rtol=1e-10)
    np.testing.assert_allclose(dw, 2 * (xn.T @ xn @ a + a @ xn.T @ xn) @ wn, rtol=1e-10)


def test_micro_benchmarks_run_in_every_mode():
    op, _ = po.conv_layer_op("c", built_conv(3, 1, "zero", (4, 4, 2)), (4, 4, 2))
    tensors = po.Tensors()
    for mode in po.MODES:
        y, *grads = tf.nest.flatten(po.micro_call(op, mode, 2, 1, tensors)())
        assert y.shape == (2, 4, 4, 3)
        assert all(np.isfinite(t.numpy()).all() for t in [y] + grads)
    assert np.isfinite(po.null_call(tensors)().numpy()).all()


# ---- (a): the sub-graphs -----------------------------------------------------------------------

def test_the_subgraphs_run_and_give_finite_times():
    # Without XLA (the same graphs; XLA only makes the check slow).
    stage = ps.Stage(4, 1 / 64, 2, jit_compile=False)
    a = ps.run_a(stage, ps.Options(rounds=1, warmup=0, jit_compile=False))
    assert set(a["seconds"]) >= {"g_forward", "g_step_grads", "d_forward", "d_forward_backward",
                                 "penalty", "optimizers", "ema", "full_step", "full_step_fed",
                                 "host", "sum_of_parts", "unexplained"}
    assert all(math.isfinite(v) for v in a["seconds"].values())
    assert all(math.isfinite(v) and v >= 0 for v in a["fed_step_pieces"].values())
    updates = ps.update_cost(stage)
    g, d = updates["parameters"]["g"], updates["parameters"]["d"]
    assert g == sum(int(np.prod(v.shape)) for v in stage.trained("g")) > 0 and d > 0
    assert updates["flops"] == 13 * (g + d) + 3 * g


# ---- the roofline --------------------------------------------------------------------------------

def synthetic_profile():
    classes = {"conv": {"seconds": 1.0, "flops": 100e9, "bytes": 1e9},
               "norm_act": {"seconds": 0.5, "flops": 1e9, "bytes": 10e9},
               "host": {"seconds": 0.1, "flops": 0.0, "bytes": 0.5e9}}
    step = {"measured_step_seconds": 2.0, "classes": classes, "unattributed_seconds": 0.4}
    return {"threads": 2, "machine": {"cpu": "X"},
            "results": [{"resolution": 8, "width": 1.0, "batch_size": 8, "alpha": 0.5,
                         "step": step}]}


LIMITS = {"peak_gflops": 200.0, "bandwidth_gbs": 20.0, "cache_bandwidth_gbs": 100.0,
          "threads": 2, "machine": {"cpu": "X"}}


def test_the_floor_is_the_roofline_bound():
    # Intensity 100 FLOP/B: compute-bound at the peak; 0.1 FLOP/B: 0.1 x 20 GB/s.
    assert roofline.bound_gflops(100e9, 1e9, 200, 20) == 200
    assert roofline.bound_gflops(1e9, 10e9, 200, 20) == pytest.approx(2.0)
    for flops, nbytes in [(100e9, 1e9), (1e9, 10e9), (5e9, 1e9)]:
        bound = min(200, flops / nbytes * 20)
        assert roofline.floor_seconds(flops, nbytes, 200, 20) == pytest.approx(
            flops / (bound * 1e9))
        assert roofline.floor_seconds(flops, nbytes, 200, 20) == pytest.approx(
            max(flops / 200e9, nbytes / 20e9))
    assert roofline.floor_seconds(0.0, 0.5e9, 200, 20) == pytest.approx(0.025)


def test_the_report_puts_each_class_and_the_step_on_the_roofline():
    text = roofline.report(synthetic_profile(), LIMITS)
    assert "| conv | 1.0000 | 50.0% | 100.000 | 1.000 | 100.0 | 1.0 | 100.00 | 200.0 | 0.5000 |" in text
    assert "| norm_act | 0.5000 | 25.0% | 1.000 | 10.000 | 2.0 | 20.0 | 0.10 | 2.0 | 0.5000 |" in text
    assert "| unattributed | 0.4000 | 20.0% |" in text
    # The step's floor: 0.5 + 0.5 + 0.025 (the host's bytes at the bandwidth).
    assert "Step floor 1.0250 s" in text and "2.0000 s measured: 2.0x the floor" in text
    cache = roofline.report(synthetic_profile(), LIMITS, "cache")
    assert "| norm_act | 0.5000 | 25.0% | 1.000 | 10.000 | 2.0 | 20.0 | 0.10 | 10.0 | 0.1000 |" in cache


def test_the_machines_limits_are_read_and_measured(tmp_path):
    assert roofline.isa({"avx2", "fma"})["native_bf16"] is False
    assert roofline.isa({"avx2", "amx_bf16"})["native_bf16"] is True
    (tmp_path / "size").write_text("32768K\n")
    assert roofline.l3_bytes(str(tmp_path / "size")) == 32 << 20
    assert roofline.l3_bytes(str(tmp_path / "none")) is None
    (tmp_path / "cpuinfo").write_text("model name\t: X\nflags\t\t: fpu avx2 fma\n")
    assert roofline.cpu_flags(str(tmp_path / "cpuinfo")) == {"fpu", "avx2", "fma"}
    n = 2 * roofline.STREAM_BLOCK + 5           # slices that end inside a block
    a, b, c = np.zeros(n, np.float32), np.full(n, 2.0, np.float32), np.full(n, 0.5, np.float32)
    for part in roofline.slices(n, 2):
        roofline.triad_part(a, b, c, 3.0, part)
    assert (a == 3.5).all()
    rates = roofline.stream(1 << 12, 2, 1)
    assert all(math.isfinite(rates[k]) and rates[k] > 0 for k in ("copy_gbs", "triad_gbs"))
    assert math.isfinite(roofline.tf_matmul(32, "float32", True, 1)["gflops"])


# ---- (c): the profiler's per-HLO-op times --------------------------------------------------------

HLO = """
  %Conv2D.32 = f32[4,4,4,16]{3,2,1,0} convolution(%a, %b), window={size=3x3}, metadata={op_type="Conv2D" op_name="generator_1/g_block_4_1/conv0_1/conv_1/Conv2D" source_line=1}
  %add_rsqrt_fusion.3 = f32[4,4,4,1]{3,2,1,0} fusion(%p), kind=kLoop, calls=%c.3, metadata={op_type="Rsqrt" op_name="gradient_tape/gradient_tape/discriminator/d_head/conv0/pixel_norm_10/Rsqrt"}
  ROOT %tuple.5 = (f32[2]{0}, f32[]) tuple(%x, %y)
"""


def test_hlo_instructions_and_their_classes():
    found = xla_trace.hlo_instructions(HLO)
    assert found["Conv2D.32"] == {"opcode": "convolution", "op_type": "Conv2D",
                                  "op_name": "generator_1/g_block_4_1/conv0_1/conv_1/Conv2D"}
    assert found["tuple.5"]["opcode"] == "tuple"
    cases = {("convolution", "Conv2D", "generator/g_block_8/conv0/conv/Conv2D"): "conv",
             ("fusion", "Rsqrt", found["add_rsqrt_fusion.3"]["op_name"]): "penalty",
             ("fusion", "Mul", "discriminator_1/d_block_8_1/conv0_1/pixel_norm_6/mul"): "norm_act",
             ("fusion", "LeakyReluGrad", "gradient_tape/generator/g_block_8/conv0/LeakyReluGrad"):
                 "norm_act",
             ("fusion", "Sum", "discriminator/d_head/mini_batch_std/Sum"): "mbstd",
             ("fusion", "DepthToSpace", "generator/g_block_8/conv0/conv/DepthToSpace"):
                 "resample_fade",
             ("fusion", "Mul", "discriminator/fade/mul"): "resample_fade",
             ("fusion", "ConcatV2", "discriminator/d_block_8/conv1/conv/concat"): "conv_overhead",
             ("fusion", "AddV2", "generator/to_rgb_8/add"): "conv_overhead",
             ("fusion", "Pow", "adam/Pow_8"): "optimizer_ema",
             ("fusion", "AddN", "AddN_19"): "other"}
    for args, cls in cases.items():
        assert xla_trace.class_of(*args) == cls, args


def test_the_profiler_gives_per_op_times_by_class():
    layer = built_conv(4, 3, "zero", (8, 8, 4))
    fn = tf.function(lambda x: tf.nn.leaky_relu(layer(x), 0.2), jit_compile=True)
    x = tf.random.normal((2, 8, 8, 4))
    fn(x)
    result = xla_trace.profile_function(fn, (x,), steps=2)
    assert "conv" in result["classes_cpu_seconds"]
    assert result["matched_fraction"] > 0.5
    assert math.isfinite(result["thunk_cpu_seconds"]) and result["thunk_cpu_seconds"] > 0
