"""Where the time of one training iteration goes, by class of operation.

    python -m benchmarks.profile_step --resolutions=128,256 --widths=1.0,0.5 --out=FILE.json

One iteration as benchmarks.train_bench times it: seed preset, batch 8, random data,
the fade active at a = 0.5, `ProGAN.train_step` compiled with XLA, TrainConfig's
defaults (one critic step, no augmentation). Each (resolution, width) runs in a
fresh process on --threads threads. Three views, all in the JSON:

(a) sub-graphs, each compiled with XLA and timed alone, in alternating rounds
    (benchmarks.machine.interleaved): G forward; the G step without its optimizer;
    D forward on the stacked reals and fakes; the D step without the penalty and
    with it (the difference is the penalty's part); both Adam updates; the EMA; the
    full step on tensors already in memory, and as fit() feeds it (next batch from
    the phase's tf.data pipeline, a set, the logs read back as floats): the
    difference is the host's work. Differences are medians of per-round differences.
(b) per op class, from micro-benchmarks of every layer at the stage's exact shapes
    (benchmarks.profile_ops: convolutions split into the bare convolution and what
    is around it, pixel norm, lrelu, the upsampling, the fade, pooling, MiniBatchStd),
    each in the modes one iteration runs it, scaled by how often it does, with FLOPs
    and bytes (a lower bound) per class for a roofline (benchmarks.roofline). The
    optimizers, the EMA and the host come from (a), with counted FLOPs and bytes.
(c) a cross-check: the full step's per-HLO-op CPU times from TensorFlow's profiler,
    classified by the TensorFlow op each came from (benchmarks.xla_trace).

Reading (b): a micro-benchmark runs one op alone and writes its output to memory,
where the step's XLA graph fuses elementwise ops into their neighbours; so (b)'s
elementwise classes are upper bounds of their cost inside the step, and the
"unattributed" rest (the measured step less the sum of the classes) may be negative:
what fusion saves, less the losses and glue that no class holds. (c) sees the fused
graph but names a fusion after its root op only.

The JSON's "results" holds one entry per stage:
    a     seconds: g_forward, g_step_grads, d_forward, d_forward_backward, d_backward,
          penalty, d_step_grads (D step with the penalty, no optimizer), optimizers,
          ema, full_step, full_step_fed, host, sum_of_parts, unexplained;
          share_of_fed_step, min_seconds, fed_step_pieces (next_batch, set_alpha,
          step, read_logs), first_call_seconds, times (every timed call)
    b     classes {class: seconds, flops, bytes}; ops (each op's uses: mode, batch,
          count, seconds, flops, bytes); subgraph_estimates (a's sub-graphs as sums
          of micro-benchmarks); penalty_by_kind; trained_parameters;
          call_overhead_seconds; micro_seconds_raw
    c     classes_cpu_seconds, thunk_cpu_seconds, executable_wall_seconds,
          matched_fraction
    step  measured_step_seconds (a's full_step_fed), classes with their share of it,
          sum_of_classes_seconds, unattributed_seconds
`python -m benchmarks.roofline --report=FILE.json --limits=ROOFLINE.json` reads it.

Timings move with the machine's load: run it on an otherwise idle machine; a stage
at 256x256 compiles some 260 micro-benchmarks and the step twice (minutes).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf
from absl import app, flags

from benchmarks import profile_ops, xla_trace
from benchmarks.machine import emit_json, interleaved, machine_info, tensorflow_threads
from benchmarks.steps import timed_networks
from mel_tf.config import TrainConfig
from mel_tf.training import losses
from mel_tf.training.data import ImageSet, LoadReport
from mel_tf.training.estimate import iteration_gflops
from mel_tf.training.loop import phase_dataset
from mel_tf.training.networks import uint8_to_network
from mel_tf.training.progan import ProGAN, step_noise

F = flags.FLAGS
PRESET = "seed"
NULL = "empty_call"


def define_flags():
    """The command line's flags, defined only when this module is the program: the
    tests import benchmarks.profile_step and benchmarks.roofline together, and
    absl refuses a flag name (--threads, --out) defined by two modules."""
    flags.DEFINE_string("resolutions", "128,256", "Stage resolutions to profile.")
    flags.DEFINE_list("widths", ["1.0", "0.5"], "Width multipliers (1.0: the source's networks).")
    flags.DEFINE_integer("batch_size", 8, "Batch size.")
    flags.DEFINE_float("alpha", 0.5, "Fade-in weight a (stages above 4x4 fade).")
    flags.DEFINE_integer("threads", 2, "TensorFlow's intra- and inter-op threads.")
    flags.DEFINE_integer("warmup", 2, "Untimed calls of each function after compiling it.")
    flags.DEFINE_integer("rounds", 6, "Alternating rounds of the sub-graphs (a).")
    flags.DEFINE_integer("per_round", 1, "Calls of each sub-graph per round (a).")
    flags.DEFINE_integer("micro_rounds", 5, "Alternating rounds of the micro-benchmarks (b).")
    flags.DEFINE_list("parts", ["a", "b", "c"], "Which views to run.")
    flags.DEFINE_integer("trace_steps", 3, "Full steps traced by the profiler (c).")
    flags.DEFINE_string("hlo_dir", None, "Write each stage's optimized HLO here (c).")
    flags.DEFINE_string("out", None, "Write the JSON here (always printed).")
    flags.DEFINE_string("one", None, "Internal: RESOLUTION:WIDTH to profile in this process.")


@dataclasses.dataclass
class Options:
    """How much to time (the flags' values; tests pass small ones)."""
    batch_size: int = 8
    alpha: float = 0.5
    warmup: int = 2
    rounds: int = 6
    per_round: int = 1
    micro_rounds: int = 5
    trace_steps: int = 3
    hlo_dir: Optional[str] = None
    parts: Tuple[str, ...] = ("a", "b", "c")
    jit_compile: bool = True       # False only to check the plumbing quickly

    @classmethod
    def from_flags(cls):
        return cls(**{f.name: getattr(F, f.name) for f in dataclasses.fields(cls)
                      if f.name != "jit_compile"})


class Stage:
    """One stage as train_bench times it: the model at (resolution, width) fading at
    a = alpha, one batch of random images and its noise, and the XLA step."""

    def __init__(self, resolution: int, width: float, batch: int, alpha: float = 0.5,
                 jit_compile: bool = True):
        self.resolution, self.width, self.batch_size = resolution, width, batch
        self.jit_compile = jit_compile
        self.net = timed_networks(resolution, width, PRESET)
        self.tc = TrainConfig(batch_size=batch)
        if self.tc.critic_steps != 1 or self.tc.augment:
            raise ValueError("the sub-graphs follow one critic step without augmentation")
        self.model = ProGAN(self.net, self.tc)
        self.fading = resolution > 4
        self.alpha = alpha
        self.model.set_stage(resolution, self.fading)
        self.model.set_alpha(alpha)
        images = np.random.default_rng(0).integers(0, 256, (batch, resolution, resolution, 3),
                                                   dtype=np.uint8)
        noise = step_noise(self.net, self.tc, batch)(1)
        self.batch = {"images": tf.constant(images),
                      "steps": tf.fill([batch], tf.constant(1, tf.int64)),
                      **{k: tf.constant(v) for k, v in noise.items()}}
        self.real = uint8_to_network(self.batch["images"], self.net)
        self.step_fn = self.compile(self.model.train_step)
        self.used = {}     # indices of the variables a stage trains, found when tracing

    def compile(self, fn):
        """`fn` as a tf.function compiled with XLA, as training compiles its step."""
        return tf.function(fn, jit_compile=self.jit_compile, autograph=False)

    def trained(self, network: str) -> list:
        """The variables of "g" or "d" this stage's gradients reach."""
        net = self.model.generator if network == "g" else self.model.discriminator
        return [net.trainable_variables[i] for i in self.used[network]]

    def keep_used(self, network: str, grads) -> list:
        """The gradients that exist (other stages' layers get None), noting whose."""
        self.used[network] = [i for i, g in enumerate(grads) if g is not None]
        return [grads[i] for i in self.used[network]]


# ---- (a) sub-graphs ------------------------------------------------------------------------

def g_forward(stage: Stage):
    G = stage.model.generator
    return stage.compile(lambda z: G(z, training=True))


def g_step_grads(stage: Stage):
    """The G step of train_step without the optimizer: G, D on the fakes, both back."""
    G, D = stage.model.generator, stage.model.discriminator

    def run(z):
        with tf.GradientTape() as tape:
            loss = losses.generator_loss(D(G(z, training=True), training=True))
        return loss, stage.keep_used("g", tape.gradient(loss, G.trainable_variables))
    return stage.compile(run)


def d_forward(stage: Stage):
    D = stage.model.discriminator
    return stage.compile(lambda real, fake: D(tf.concat([real, fake], 0), num_sets=2,
                                              training=True))


def d_step_grads(stage: Stage, penalty: bool):
    """The D step of train_step without the optimizer (and its G forward: the fakes
    come in), with the gradient penalty or without it."""
    D, cfg = stage.model.discriminator, stage.tc

    def run(real, fake, eps):
        with tf.GradientTape() as tape:
            scores = D(tf.concat([real, fake], 0), num_sets=2, training=True)
            real_scores, fake_scores = tf.split(scores, 2)
            gp = tf.zeros(())
            if penalty:
                gp = losses.gradient_penalty(lambda x: D(x, training=True),
                                             losses.interpolate(real, fake, eps))
            terms = losses.discriminator_loss(real_scores, fake_scores, gp, cfg.gp_weight,
                                              cfg.drift_weight)
        grads = tape.gradient(terms["d_loss"], D.trainable_variables)
        return terms["d_loss"], stage.keep_used("d", grads)
    return stage.compile(run)


def optimizers(stage: Stage):
    """Both Adam updates, on gradients held from the sub-graphs above."""
    model = stage.model

    def run(g_grads, d_grads):
        model.g_optimizer.apply_gradients(zip(g_grads, stage.trained("g")))
        model.d_optimizer.apply_gradients(zip(d_grads, stage.trained("d")))
        return tf.zeros(())
    return stage.compile(run)


def ema(stage: Stage):
    """The generator EMA of the trained variables. ProGAN's own update is private
    (ProGAN._update_ema), so this is its arithmetic restated."""
    cfg, model = stage.tc, stage.model
    averages = model.generator_ema.trainable_variables

    def run(step):
        decay = tf.constant(cfg.ema_decay, tf.float32)
        if cfg.ema_rampup:
            decay = tf.minimum(1.0 - 1.0 / (tf.cast(step, tf.float32) + 1.0), decay)
        for i, var in zip(stage.used["g"], stage.trained("g")):
            averages[i].assign(var + decay * (averages[i] - var))
        return tf.zeros(())
    return stage.compile(run)


def fed_step(stage: Stage, record: list):
    """The step as fit() feeds it: the next batch from the phase's tf.data pipeline
    (random images), a set on the host, the step, its logs read back as floats.
    Appends each call's pieces to `record`. The pipeline prefetches in the
    background, as in training; here that work overlaps the next sub-graph timed."""
    r, b = stage.resolution, stage.batch_size
    rng = np.random.default_rng(1)
    images = ImageSet([rng.integers(0, 256, (r, r, 3), dtype=np.uint8) for _ in range(64)],
                      LoadReport("random", 64))
    iterator = iter(phase_dataset(images, stage.net, stage.tc, r, b, 0, 10**6))

    def run():
        t0 = time.perf_counter()
        element = next(iterator)
        t1 = time.perf_counter()
        stage.model.set_alpha(stage.alpha)
        t2 = time.perf_counter()
        logs = stage.step_fn(element)
        t3 = time.perf_counter()
        [float(v) for v in logs.values()]      # as fit()'s callbacks read them
        record.append({"next_batch": t1 - t0, "set_alpha": t2 - t1, "step": t3 - t2,
                       "read_logs": time.perf_counter() - t3})
    return run


def subgraph_calls(stage: Stage, record: list) -> dict:
    """{name: function} of part (a), each compiled with XLA on first call. The
    optimizers' gradients and the D step's fakes are computed once, up front."""
    b = stage.batch
    gf, gs, df = g_forward(stage), g_step_grads(stage), d_forward(stage)
    dg, dp = d_step_grads(stage, False), d_step_grads(stage, True)
    fake = gf(b["z_d"])
    _, g_grads = gs(b["z_g"])
    _, d_grads = dp(stage.real, fake, b["eps"])
    opt, avg = optimizers(stage), ema(stage)
    return {"g_forward": lambda: gf(b["z_d"]),
            "g_step_grads": lambda: gs(b["z_g"]),
            "d_forward": lambda: df(stage.real, fake),
            "d_grads": lambda: dg(stage.real, fake, b["eps"]),
            "d_grads_penalty": lambda: dp(stage.real, fake, b["eps"]),
            "optimizers": lambda: opt(g_grads, d_grads),
            "ema": lambda: avg(b["steps"][0]),
            "full_step": lambda: stage.step_fn(b),
            "full_step_fed": fed_step(stage, record)}


def timed(calls: dict, rounds: int, per_round: int, warmup: int):
    """(first-call seconds: tracing and XLA, unless the function had already run,
    {name: [seconds per timed call]}): each function's first call and `warmup` more
    untimed, then alternating rounds."""
    first = {}
    for name, call in calls.items():
        start = time.perf_counter()
        call()
        first[name] = time.perf_counter() - start
        for _ in range(warmup):
            call()
    return first, interleaved(calls, rounds, per_round)


def paired(times: dict, a: str, b: str) -> float:
    """The median over rounds of a's time minus b's (the same round's)."""
    return statistics.median(x - y for x, y in zip(times[a], times[b]))


def decompose(times: dict) -> dict:
    """Part (a)'s seconds from the sub-graphs' times: medians, and the derived parts
    (D backward, the penalty's part, the host's work) as paired differences."""
    med = {k: statistics.median(v) for k, v in times.items()}
    parts = {"g_forward": med["g_forward"], "g_step_grads": med["g_step_grads"],
             "d_forward": med["d_forward"], "d_forward_backward": med["d_grads"],
             "d_backward": paired(times, "d_grads", "d_forward"),
             "penalty": paired(times, "d_grads_penalty", "d_grads"),
             "d_step_grads": med["d_grads_penalty"], "optimizers": med["optimizers"],
             "ema": med["ema"], "full_step": med["full_step"],
             "full_step_fed": med["full_step_fed"],
             "host": paired(times, "full_step_fed", "full_step")}
    # The full step's pieces: its G step, the D step's G forward, the D step, the updates.
    parts["sum_of_parts"] = sum(parts[k] for k in ("g_step_grads", "g_forward",
                                                   "d_step_grads", "optimizers", "ema"))
    parts["unexplained"] = parts["full_step"] - parts["sum_of_parts"]
    return parts


def run_a(stage: Stage, opts: Options) -> dict:
    """Part (a): the sub-graphs timed in alternating rounds."""
    record = []
    first, times = timed(subgraph_calls(stage, record), opts.rounds, opts.per_round,
                         opts.warmup)
    seconds = decompose(times)
    timed_pieces = record[-opts.rounds * opts.per_round:]
    host = {k: statistics.median(r[k] for r in timed_pieces) for k in timed_pieces[0]}
    fed = seconds["full_step_fed"]
    return {"seconds": seconds,
            "share_of_fed_step": {k: v / fed for k, v in seconds.items()},
            "min_seconds": {k: min(v) for k, v in times.items()},
            "fed_step_pieces": host, "first_call_seconds": first, "times": times}


def ensure_used(stage: Stage):
    """Finds which variables the stage trains by tracing the gradients (no XLA run)."""
    if "g" not in stage.used:
        g_step_grads(stage).get_concrete_function(stage.batch["z_g"])
    if "d" not in stage.used:
        fake = tf.zeros_like(stage.real)
        d_step_grads(stage, True).get_concrete_function(stage.real, fake, stage.batch["eps"])


def update_cost(stage: Stage) -> dict:
    """FLOPs and bytes of both Adam updates and the EMA: Adam reads the gradient, m, v
    and the weight and writes m, v and the weight (about 13 FLOPs each); the EMA
    reads the weight and its average and writes the average (3 FLOPs)."""
    ensure_used(stage)
    g = sum(int(np.prod(v.shape)) for v in stage.trained("g"))
    d = sum(int(np.prod(v.shape)) for v in stage.trained("d"))
    return {"flops": 13.0 * (g + d) + 3.0 * g,
            "bytes": profile_ops.FLOAT_BYTES * (7.0 * (g + d) + 3.0 * g),
            "parameters": {"g": g, "d": d}}


def batch_bytes(stage: Stage) -> float:
    return float(sum(v.numpy().nbytes for v in stage.batch.values()))


# ---- (b) micro-benchmarks per op class ------------------------------------------------------

def run_b(stage: Stage, opts: Options, a=None) -> dict:
    """Part (b): every op of the stage micro-benchmarked in the modes one iteration
    runs it (alternating rounds), less the least time of an empty XLA call, summed per
    class; the optimizers, the EMA and the host take (a)'s times (none without (a))
    and counted FLOPs and bytes."""
    ops = profile_ops.stage_ops(stage.model, stage.batch_size)
    tensors = profile_ops.Tensors()
    calls = {NULL: profile_ops.null_call(tensors), **profile_ops.micro_calls(ops, tensors)}
    first, times = timed(calls, opts.micro_rounds, 1, opts.warmup)
    # The least time of the empty call: subtracting a noisy median could make small
    # ops' times negative.
    overhead = min(times.pop(NULL))
    raw = {k: statistics.median(v) for k, v in times.items()}
    seconds = {k: v - overhead for k, v in raw.items()}
    result = profile_ops.attribute(ops, seconds)
    updates = update_cost(stage)
    a_seconds = a["seconds"] if a else None
    result["classes"]["optimizer_ema"] = {
        "seconds": a_seconds and a_seconds["optimizers"] + a_seconds["ema"],
        "flops": updates["flops"], "bytes": updates["bytes"], "from": "a"}
    result["classes"]["host"] = {"seconds": a_seconds and a_seconds["host"], "flops": 0.0,
                                 "bytes": batch_bytes(stage), "from": "a"}
    result.update(subgraph_estimates=profile_ops.subgraph_estimates(ops, seconds,
                                                                    stage.batch_size),
                  penalty_by_kind=profile_ops.penalty_by_kind(ops, seconds, stage.batch_size),
                  trained_parameters=updates["parameters"], micro_benchmarks=len(raw),
                  call_overhead_seconds=overhead, micro_seconds_raw=raw,
                  first_call_seconds_total=sum(first.values()))
    return result


def step_summary(a: dict, b: dict) -> dict:
    """The classes' seconds beside the measured step (as fit() feeds it): each
    class's share of it, and what no class accounts for."""
    measured = a["seconds"]["full_step_fed"]
    classes = {c: dict(v, share=v["seconds"] / measured) for c, v in b["classes"].items()}
    total = sum(v["seconds"] for v in classes.values())
    return {"measured_step_seconds": measured, "classes": classes,
            "sum_of_classes_seconds": total, "unattributed_seconds": measured - total}


# ---- (c) the profiler's per-HLO-op times -------------------------------------------------------

def run_c(stage: Stage, opts: Options) -> dict:
    """Part (c): the full step's thunk CPU times per class from a profiler trace."""
    stage.step_fn(stage.batch)          # compiled before the trace
    hlo_path = None
    if opts.hlo_dir:
        os.makedirs(opts.hlo_dir, exist_ok=True)
        hlo_path = os.path.join(opts.hlo_dir,
                                f"step_{stage.resolution}_w{stage.width}.hlo.txt")
    return xla_trace.profile_function(stage.step_fn, (stage.batch,), opts.trace_steps,
                                      hlo_path)


def profile_one(resolution: int, width: float, opts: Options) -> dict:
    """One stage's result: parts (a), (b), (c) as asked, and the classes' summary."""
    stage = Stage(resolution, width, opts.batch_size, opts.alpha, opts.jit_compile)
    out = {"resolution": resolution, "width": width, "preset": PRESET,
           "batch_size": opts.batch_size, "alpha": opts.alpha, "fading": stage.fading,
           "model_gflops_per_iteration": iteration_gflops(stage.net, resolution, stage.fading,
                                                          opts.batch_size)}
    if "a" in opts.parts:
        out["a"] = run_a(stage, opts)
    if "b" in opts.parts:
        out["b"] = run_b(stage, opts, out.get("a"))
    if "c" in opts.parts:
        out["c"] = run_c(stage, opts)
    if "a" in out and "b" in out:
        out["step"] = step_summary(out["a"], out["b"])
    return out


def run_stages() -> list:
    """Each (resolution, width) in a fresh process; their results."""
    rows = []
    passthrough = [a for a in sys.argv[1:] if not a.startswith(("--out", "--one"))]
    for r in (int(x) for x in F.resolutions.split(",")):
        for w in F.widths:
            args = [sys.executable, "-m", "benchmarks.profile_step", f"--one={r}:{w}"]
            out = subprocess.run(args + passthrough, capture_output=True, text=True)
            if out.returncode != 0 or "RESULT " not in out.stdout:
                sys.stderr.write(out.stderr[-4000:])
                raise SystemExit(f"profiling {r}x{r} at width {w} failed")
            rows.append(json.loads(out.stdout.split("RESULT ", 1)[1]))
            print(f"{r}x{r} width {w}: done", file=sys.stderr, flush=True)
    return rows


def main(argv):
    del argv
    if F.one is not None:
        tensorflow_threads(F.threads)
        resolution, width = F.one.split(":")
        result = profile_one(int(resolution), float(width), Options.from_flags())
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    load = os.getloadavg()
    rows = run_stages()
    emit_json({"benchmark": "profile_step", "date": datetime.date.today().isoformat(),
               "command": " ".join(["python -m benchmarks.profile_step"] + sys.argv[1:]),
               "threads": F.threads, "batch_size": F.batch_size, "alpha": F.alpha,
               "preset": PRESET, "parts": F.parts, "rounds": F.rounds,
               "per_round": F.per_round, "micro_rounds": F.micro_rounds,
               "classes_help": profile_ops.CLASS_HELP,
               "machine": machine_info(load_before=load), "results": rows}, F.out)
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
