"""Equal-budget study: the source's own code against mel_tf on the same icons.

    python -m research.source_study --system=source --source=PATH/TO/image_generator_2 \
        --seed=0 --out=docs/source_study/32x32
    python -m research.source_study --system=mel_tf --seed=0 --out=docs/source_study/32x32
    python -m research.source_study --table --out=docs/source_study/32x32

Both train on the built-in Twemoji faces with the source's schedule cut to
--res_step iterations per phase (4x4, one fade per resolution up to
--resolution, then a stable phase there), batch 8, Adam 5e-4 (0, 0.99):
1,000 iterations per phase at 32x32 are 40,000 images. "source" is the
source's networks (module/generator.py, module/discriminator.py of
zassou65535/image_generator_2) and gradient penalty, trained by the loop body
of its PGGAN_train.py (research/source_parity.py's SourceRun, which mirrors
it); "mel_tf" is mel_tf's seed preset at full width trained by
mel_tf.training.train with contrast augmentation off, as the source's code has
none. --preset, --width, --min_channels, --widen_to_floor, --upsampling,
--mbstd_group_size, --learning_rates, --fade_steps, --stable_steps, --phase_steps,
--ema_decay, --final_lr, --gp_weight, --mixed_precision, --noxla and
--fade_real_images try other mel_tf configurations on the same budget (the run's
name then says which).
Each run's EMA generator makes --num_images icons from the same latents
(mel_tf.deploy.seeds.latents_for_seed), scored with mel_tf.metrics against the
same real icons. A run leaves OUT/runs/<system>_seed<seed>/row.json and
OUT/<system>_seed<seed>.png; OUT/results.json gathers every row present, so
several processes can share OUT.
"""

from __future__ import annotations

import functools
import glob
import json
import logging
import math
import os
import shutil
import time

from absl import app, flags

from mel_tf.config import UPSAMPLINGS
from research.stages import stage_of


flags.DEFINE_enum("system", "mel_tf", ["mel_tf", "source"], "What trains.")
flags.DEFINE_string("source", None, "A clone of zassou65535/image_generator_2 (--system=source).")
flags.DEFINE_integer("resolution", 32, "Last resolution; it gets a stable phase too.")
flags.DEFINE_integer("res_step", 1000, "Iterations per phase (the source: 7500).")
flags.DEFINE_integer("seed", 0, "Seed of the run (initial weights, data order, noise).")
flags.DEFINE_bool("source_init", False, "--system=mel_tf starts from the source's initial "
                  "weights for --seed (drawn by its code, as --system=source would), to "
                  "tell the initial draw apart from the rest of the run.")
flags.DEFINE_enum("preset", "seed", ["seed", "paper"], "mel_tf's preset (--system=mel_tf).")
flags.DEFINE_float("width", 1.0, "mel_tf's width multiplier (--system=mel_tf).")
flags.DEFINE_integer("min_channels", 1, "mel_tf's floor on narrowed layers (NetworkConfig."
                     "min_channels; 1, no floor, is how the earlier rows were trained).")
flags.DEFINE_bool("widen_to_floor", False, "mel_tf's floor also widens layers narrower at "
                  "full width (NetworkConfig.widen_to_floor). The initial weights are the "
                  "unwidened networks' draw for --seed wherever a weight keeps its shape, so "
                  "the run pairs with the one without this flag.")
flags.DEFINE_string("start_from", None, "A new run starts as a copy of this run directory "
                    "(its checkpoint, timeline and samples: a twin saved at a phase end). "
                    "mel_tf goes on with this run's training settings, the changes logged in "
                    "its changes.log: A/Bs of the late phases from one shared state. The "
                    "source goes on to --resolution: a 128x128 run's state grown to 256x256.")
flags.DEFINE_integer("stop_at", None, "A run stops after this step with a checkpoint, its "
                     "score at a phase end included: the saved state for --start_from.")
flags.DEFINE_enum("upsampling", "nearest", list(UPSAMPLINGS), "mel_tf's upsampling in G "
                  "(NetworkConfig.upsampling).")
flags.DEFINE_integer("mbstd_group_size", 0, "mel_tf's MiniBatchStd group (NetworkConfig."
                     "mbstd_group_size; 0, the source's: the whole batch).")
flags.DEFINE_integer("fade_steps", None, "mel_tf's iterations per fade (default --res_step).")
flags.DEFINE_integer("stable_steps", None, "mel_tf's iterations per stable phase (4x4 and the "
                     "last; default --res_step). Equal budget: 3 fades + 2 stable = 5 x --res_step "
                     "at 32x32.")
flags.DEFINE_string("phase_steps", "", "mel_tf's iterations per phase at some resolutions, "
                    "e.g. 64:2000,128:2000 (TrainConfig.phase_images).")
flags.DEFINE_float("ema_decay", None, "mel_tf's generator EMA decay (default the TrainConfig's).")
flags.DEFINE_string("learning_rates", "", "mel_tf's per-resolution learning rates, e.g. "
                    "256:2e-4 (TrainConfig.learning_rates; default: 5e-4 throughout).")
flags.DEFINE_float("final_lr", None, "mel_tf's learning rate in the last phase (default: no drop).")
flags.DEFINE_float("gp_weight", None, "mel_tf's gradient penalty weight (default the "
                   "TrainConfig's, the source's 10).")
flags.DEFINE_bool("mixed_precision", False, "mel_tf computes in bfloat16 with float32 "
                  "weights (Execution.mixed_precision).")
flags.DEFINE_bool("xla", True, "mel_tf's step as one XLA executable (Execution.xla); "
                  "--noxla: a TensorFlow graph, oneDNN's kernels.")
flags.DEFINE_bool("fade_real_images", False, "mel_tf blends the reals during fades too (the paper).")
flags.DEFINE_integer("num_images", 512, "Icons per set for the metrics.")
flags.DEFINE_integer("holdout", 0, "Icons kept out of training (a fixed random choice), "
                     "against which the copy check measures what a new icon's distance to "
                     "the training icons looks like.")
flags.DEFINE_integer("checkpoint_every", 250, "Iterations between checkpoints (both "
                     "systems; also at every phase end). A killed run resumes from the last.")
flags.DEFINE_integer("eval_every", 0, "Iterations between scores in the phases at "
                     "--eval_from and above (0: phase ends only); a multiple of "
                     "--checkpoint_every.")
flags.DEFINE_integer("eval_from", 128, "Lowest resolution scored between phase ends.")
flags.DEFINE_integer("threads", 1, "Threads per framework.")
flags.DEFINE_string("out", "docs/source_study/32x32", "Output folder: grids, results.json.")
flags.DEFINE_string("runs", None, "Folder of the run directories (default OUT/runs); "
                    "long runs belong outside the work tree.")
flags.DEFINE_bool("real_floor", False, "Only score real icons against other real icons "
                  "(disjoint halves, 3 splits) into OUT/real_floor.json: the SWD a perfect "
                  "generator would get with sets of this size.")
flags.DEFINE_bool("table", False, "Only print the markdown tables of OUT/results.json.")
F = flags.FLAGS
BATCH = 8
# Seeds the random subset of real icons that every run is scored against (and the
# reals-vs-reals splits), so that all runs meet the same reals.
REAL_SUBSET_SEED = 0x4556


class TrainingSubset:
    """The icons a run trains on: all, or all but --holdout of them."""

    def __init__(self, image_set):
        import numpy as np
        self.image_set = image_set
        order = np.random.default_rng([1, REAL_SUBSET_SEED]).permutation(len(image_set))
        self.held_out = np.sort(order[:F.holdout])
        self.train = np.sort(order[F.holdout:])

    def __len__(self):
        return len(self.train)

    def images(self, resolution):
        return self.image_set.images(resolution)[self.train]

    def held_out_images(self, resolution):
        return self.image_set.images(resolution)[self.held_out]


def study_icons():
    """The study's icons: the built-in Twemoji faces, up to --resolution."""
    from mel_tf.training import data as data_lib
    return data_lib.open_dataset(dataset="twemoji_faces", max_resolution=F.resolution)


def stage_count() -> int:
    """The schedule's resolutions, 4x4 to --resolution."""
    return int(math.log2(F.resolution)) - 1


@functools.lru_cache(maxsize=1)
def study_schedule():
    """The run's schedule: 4x4 stable, one fade per resolution, then the last
    resolution stable, --res_step iterations each unless mel_tf's flags change a
    phase's length. The source's is the seed preset's at full width, which trains
    like the source step for step."""
    from mel_tf.config import TrainConfig, source_networks
    from mel_tf.training.schedule import schedule_for

    if F.system == "mel_tf":
        return schedule_for(*mel_tf_configs())
    images = F.res_step * BATCH
    return schedule_for(source_networks(F.resolution),
                        TrainConfig(fade_images=images, stable_images=images, batch_size=BATCH))


def stage_at(step):
    """(resolution, a) after `step` iterations of this run's schedule."""
    return stage_of(study_schedule(), step * BATCH)


@functools.lru_cache(maxsize=1)
def phase_ends() -> frozenset:
    """The images shown at the end of each phase of this run's schedule."""
    schedule = study_schedule()
    return frozenset(schedule.phase_end(i) for i in range(len(schedule.phases)))


def phase_end(step) -> bool:
    """Whether `step` iterations end a phase of the schedule (asked at every step)."""
    return step * BATCH in phase_ends()


class Timeline:
    """The run's clock and scores: OUT/runs/<name>/timeline.jsonl, one line per
    checkpoint with the iterations, images shown and the seconds spent training
    (scoring excluded; wall and process CPU), plus the scores where the step is
    scored. A resumed run drops the lines after its checkpoint and counts on from
    the clock there, so a killed run's lost work is not counted twice."""

    def __init__(self, path, scorer):
        self.path, self.scorer = path, scorer
        self.wall = self.cpu = 0.0

    def resume(self, step):
        lines = []
        if os.path.exists(self.path):
            with open(self.path) as f:
                lines = [json.loads(line) for line in f if line.strip()]
        lines = [r for r in lines if r["step"] <= step]
        with open(self.path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in lines)
        if lines:
            self.wall, self.cpu = lines[-1]["train_seconds"], lines[-1]["cpu_seconds"]
        self.t0, self.c0 = time.time(), time.process_time()

    def due(self, step):
        return step % F.checkpoint_every == 0 or phase_end(step)

    def mark(self, step, generate):
        """Records `step` (a checkpoint); scores `generate(latents)` -> uint8 icons
        at the networks' stage when the step is a phase end or an --eval_every step."""
        self.wall += time.time() - self.t0
        self.cpu += time.process_time() - self.c0
        # Threads per line: a run resumed with another --threads says which part had which.
        row = {"step": step, "images": step * BATCH, "train_seconds": round(self.wall, 2),
               "cpu_seconds": round(self.cpu, 2), "threads": F.threads}
        resolution, alpha = stage_at(step)
        scored = phase_end(step) or (
            F.eval_every and step % F.eval_every == 0 and resolution >= F.eval_from)
        if scored and resolution >= 8:
            row.update(resolution=resolution, alpha=alpha, **self.scorer(generate, resolution))
            logging.info("step %d (%dx%d, a %.2f): SWD %s, MS-SSIM %.3f", step, resolution,
                         resolution, alpha, {k: round(v, 1) for k, v in row["swd"].items()},
                         row["ms_ssim_fake"])
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        self.t0, self.c0 = time.time(), time.process_time()


def scorer(training, latent_dim):
    """score(generate, resolution) -> SWD per level and MS-SSIM of --num_images icons
    from the study's fixed latents against the same real training icons."""
    import numpy as np
    from mel_tf.metrics import ms_ssim_diversity, sliced_wasserstein_distance
    from mel_tf.deploy.seeds import latents_for_seed

    n = min(F.num_images, len(training))
    subset = np.random.default_rng([0, REAL_SUBSET_SEED]).choice(len(training), n, replace=False)
    latents = latents_for_seed(0, n, latent_dim)
    real_diversity = {}

    def score(generate, resolution):
        real = training.images(resolution)[subset]
        fake = generate(latents)
        if resolution not in real_diversity:
            real_diversity[resolution] = ms_ssim_diversity(real)
        return {"swd": sliced_wasserstein_distance(real, fake, np.random.default_rng(0)),
                "ms_ssim_fake": ms_ssim_diversity(fake),
                "ms_ssim_real": real_diversity[resolution]}
    return score


class StopOnSignal:
    """SIGINT/SIGTERM set a flag; the source's loop checkpoints and exits on it."""

    def __enter__(self):
        import signal
        self.signal = None
        self.previous = {sig: signal.signal(sig, self.handle)
                         for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def handle(self, signum, frame):
        self.signal = signum

    def __exit__(self, *exc):
        import signal
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def train_source(training, logdir, stages):
    """The source's networks trained by its loop, checkpointed every
    --checkpoint_every iterations and at phase ends into LOGDIR/source.pt (resumed
    from there); returns (generate: latents [N, 8192] -> uint8 icons [N, R, R, 3]
    at the final stage, images shown, 8192)."""
    import numpy as np
    import torch
    from research.source_code import SourceRun, import_source
    from mel_tf.training import data as data_lib

    torch.set_num_threads(F.threads)
    run = SourceRun(torch, import_source(F.source), torch.float32, F.seed)
    path, start = os.path.join(logdir, "source.pt"), 0
    if os.path.exists(path):
        state = torch.load(path, weights_only=False)
        run.load_state(state)
        start = state["step"]
        logging.info("Resuming the source's run from %s at iteration %d", path, start)
    timeline = Timeline(os.path.join(logdir, "timeline.jsonl"), scorer(training, 8192))
    timeline.resume(start)

    def generate_at(res):
        def generate(z):
            with torch.no_grad():
                out = [run.netG_mavg.forward(torch.from_numpy(z[i:i + 64]), res).numpy()
                       for i in range(0, len(z), 64)]
            x = np.concatenate(out).transpose(0, 2, 3, 1)
            return np.round(np.clip(x * 255.0, 0, 255)).astype(np.uint8)
        return generate

    images = training.images(F.resolution)
    total = F.res_step * (stages + 1)
    with StopOnSignal() as stop:
        for it in range(start, total):
            res = min(it / F.res_step, float(stages))
            idx = data_lib.batch_indices(len(images), BATCH, F.seed, it)
            real = torch.from_numpy(images[idx].transpose(0, 3, 1, 2).astype(np.float32) / 255)
            z_g, z_d = torch.randn(BATCH, 8192), torch.randn(BATCH, 8192)
            losses = run.step(it, res, real, z_g, z_d, None)
            if it % 500 == 0:
                logging.info("source it %d res %.3f lossG %.4f lossD %.4f", it, res, *losses)
            step = it + 1
            if timeline.due(step) or stop.signal or step == F.stop_at:
                torch.save({**run.state(), "step": step}, path + ".tmp")
                os.replace(path + ".tmp", path)
                timeline.mark(step, generate_at(min(step / F.res_step, float(stages))))
            if step == F.stop_at:
                raise SystemExit(saved_at(logdir))
            if stop.signal:
                raise SystemExit(f"{logdir}: stopped at iteration {step}; run again to resume")
    return generate_at(float(stages)), total * BATCH, 8192


def source_init_callback(stages):
    """A Keras callback that, before the first step of a new run, copies the
    source's initial weights (torch's draw for --seed) into G, its EMA and D."""
    import keras
    import torch
    from research.source_code import SourceRun, import_source, numpy_of, source_pairs

    class SourceInit(keras.callbacks.Callback):
        done = False

        def on_train_begin(self, logs=None):
            if self.done or int(self.model.g_optimizer.iterations.numpy()):
                return
            run = SourceRun(torch, import_source(F.source), torch.float32, F.seed)
            pairs = source_pairs(run, self.model, stages)
            for _, param, var in pairs:
                var.assign(numpy_of(param).astype("float32"))
            logging.info("Initial weights: the source's draw for seed %d (%d tensors)",
                         F.seed, len(pairs))
            self.done = True
    return SourceInit()


def mel_tf_settings() -> dict:
    """mel_tf's training settings from the flags, defaults filled in (stated once here)."""
    return {"preset": F.preset, "width": F.width, "min_channels": F.min_channels,
            "widen_to_floor": F.widen_to_floor, "upsampling": F.upsampling,
            "mbstd_group_size": F.mbstd_group_size,
            "fade_steps": F.fade_steps or F.res_step,
            "stable_steps": F.stable_steps or F.res_step, "ema_decay": F.ema_decay,
            "final_lr": F.final_lr, "fade_real_images": F.fade_real_images,
            "gp_weight": F.gp_weight, "mixed_precision": F.mixed_precision, "xla": F.xla,
            "learning_rates": F.learning_rates, "phase_steps": F.phase_steps}


def runs_folder() -> str:
    return F.runs or os.path.join(F.out, "runs")


def run_dir(system: str) -> str:
    return os.path.join(runs_folder(), f"{system}_seed{F.seed}")


def timeline_callback(timeline, net):
    """A Keras callback that marks the Timeline after every checkpoint of mel_tf's
    loop (user callbacks run after mel_tf's Checkpoints): the step is read from
    the generator's optimizer, which takes one step per iteration."""
    import keras
    from mel_tf.training.evaluation import generate_uint8

    class TimelineMarks(keras.callbacks.Callback):
        step = None

        def on_train_begin(self, logs=None):
            if self.step is None:
                self.step = int(self.model.g_optimizer.iterations.numpy())
                timeline.resume(self.step)

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if timeline.due(self.step) or self.model.stop_training:
                _, alpha = stage_at(self.step)
                generator = self.model.generator_ema
                generator.set_alpha(alpha)     # the Fade callback sets it again before a step
                timeline.mark(self.step, lambda z: generate_uint8(generator, z, net))
    return TimelineMarks()


def mel_tf_configs():
    """(NetworkConfig, TrainConfig) of the flags' mel_tf run."""
    from mel_tf.config import BATCH_MAP, RATE_MAP, TrainConfig, preset

    s = mel_tf_settings()
    net = preset(s["preset"], F.resolution, s["width"], min_channels=s["min_channels"],
                 widen_to_floor=s["widen_to_floor"], upsampling=s["upsampling"],
                 mbstd_group_size=s["mbstd_group_size"])
    cfg = TrainConfig(seed=F.seed, fade_images=s["fade_steps"] * BATCH,
                      stable_images=s["stable_steps"] * BATCH, batch_size=BATCH, contrast=False,
                      final_learning_rate=s["final_lr"], fade_real_images=s["fade_real_images"],
                      learning_rates=RATE_MAP.parse(s["learning_rates"]),
                      phase_images=tuple((r, n * BATCH)
                                         for r, n in BATCH_MAP.parse(s["phase_steps"])))
    if s["ema_decay"] is not None:
        cfg = cfg.replace(ema_decay=s["ema_decay"])
    if s["gp_weight"] is not None:
        cfg = cfg.replace(gp_weight=s["gp_weight"])
    return net, cfg


def train_mel_tf(training, logdir, stages):
    """mel_tf's --preset on the same schedule, checkpointed like the source's run;
    returns (generate, images shown, latent size)."""
    from mel_tf.config import Execution, LoopOptions
    from mel_tf.training.evaluation import generate_uint8
    from mel_tf.training.rundir import Records, load_ema_generator
    from mel_tf.training.loop import train

    s = mel_tf_settings()
    net, cfg = mel_tf_configs()
    timeline = Timeline(os.path.join(logdir, "timeline.jsonl"),
                        scorer(training, net.latent_dim))
    extra = [source_init_callback(stages)] if F.source_init else []
    if s["widen_to_floor"]:
        from research.paired_init import paired_init_callback
        extra.append(paired_init_callback(net.replace(widen_to_floor=False), cfg))
    status = train(net, cfg, training, logdir,
                   records=Records(allow_config_change=bool(F.start_from)),
                   options=LoopOptions(progress=False, sample_every_images=0, metrics_images=0,
                                       checkpoint_every_images=F.checkpoint_every * BATCH,
                                       stop_after_steps=F.stop_at),
                   callbacks=extra + [timeline_callback(timeline, net)],
                   execution=Execution(xla=s["xla"], mixed_precision=s["mixed_precision"]))
    if not status["done"] and status["step"] == F.stop_at:
        raise SystemExit(saved_at(logdir))
    if not status["done"]:
        raise SystemExit(f"{logdir}: stopped by {status['stopped']}; run again to resume")
    generator, _, _, shown = load_ema_generator(logdir)
    generator.set_stage(F.resolution, False)
    return (lambda z: generate_uint8(generator, z, net)), shown, net.latent_dim


def saved_at(logdir) -> str:
    """What a run stopped by --stop_at says."""
    return f"{logdir}: saved at step {F.stop_at}; --start_from={logdir} goes on from there"


def system_name() -> str:
    """The run's system: "source", "mel_tf", or mel_tf with what its flags change."""
    if F.system == "source":
        return "source" + (f"_{F.resolution}_forked" if F.start_from else "")
    name = "mel_tf" + ("_source_init" if F.source_init else "")
    s = mel_tf_settings()
    if (s["preset"], s["width"]) != ("seed", 1.0):
        name += f"_{s['preset']}_w{s['width']:g}"
    if s["min_channels"] > 1:
        name += f"_min{s['min_channels']}"
    if s["widen_to_floor"]:
        name += "_widen"
    if s["mbstd_group_size"]:
        name += f"_mbstd{s['mbstd_group_size']}"
    if s["upsampling"] != "nearest":
        name += f"_{s['upsampling']}"
    if (s["fade_steps"], s["stable_steps"]) != (F.res_step, F.res_step):
        name += f"_f{s['fade_steps']}s{s['stable_steps']}"
    if s["ema_decay"] is not None:
        name += f"_ema{s['ema_decay']:g}"
    if s["final_lr"] is not None:
        name += f"_finallr{s['final_lr']:g}"
    if s["gp_weight"] is not None:
        name += f"_gp{s['gp_weight']:g}"
    if s["mixed_precision"]:
        name += "_bf16"
    if not s["xla"]:
        name += "_noxla"
    if s["learning_rates"]:
        name += "_lr" + s["learning_rates"].replace(":", "-").replace(",", "_")
    if s["phase_steps"]:
        name += "_ph" + s["phase_steps"].replace(":", "-").replace(",", "_")
    return name + ("_fadereal" if s["fade_real_images"] else "")


def real_floor(image_set) -> dict:
    """SWD between disjoint halves of the real icons, for 3 random splits."""
    import numpy as np
    from mel_tf.metrics import sliced_wasserstein_distance

    images = image_set.images(F.resolution)
    half = len(images) // 2
    splits = []
    for split in range(3):
        order = np.random.default_rng([split, REAL_SUBSET_SEED]).permutation(len(images))
        swd = sliced_wasserstein_distance(images[order[:half]], images[order[half:2 * half]],
                                          np.random.default_rng(0))
        splits.append({"split": split, "images_per_set": half, "swd": swd})
    return {"resolution": F.resolution, "splits": splits}


def table(rows) -> str:
    """Markdown: one row per run, then each system's mean and range over seeds."""
    levels = sorted({k for r in rows for k in r["swd"] if k != "avg"}, key=int, reverse=True)
    head = ("| run | images | " + " | ".join(f"SWD {k}" for k in levels)
            + " | SWD avg | MS-SSIM fake | MS-SSIM real |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in sorted(rows, key=lambda r: (r["system"], r["seed"])):
        lines.append(f"| {r['system']}, seed {r['seed']} | {r['images_shown']:,} | "
                     + " | ".join(f"{r['swd'][k]:.1f}" for k in levels)
                     + f" | {r['swd']['avg']:.1f} | {r['ms_ssim_fake']:.3f} | "
                     f"{r['ms_ssim_real']:.3f} |")
    lines += ["", "| system | seeds | SWD avg: mean (min-max) | MS-SSIM fake: mean (min-max) |",
              "|---|---|---|---|"]
    for system in sorted({r["system"] for r in rows}):
        runs = [r for r in rows if r["system"] == system]
        swd = [r["swd"]["avg"] for r in runs]
        ssim = [r["ms_ssim_fake"] for r in runs]
        lines.append(f"| {system} | {len(runs)} | {sum(swd) / len(swd):.1f} "
                     f"({min(swd):.1f}-{max(swd):.1f}) | {sum(ssim) / len(ssim):.3f} "
                     f"({min(ssim):.3f}-{max(ssim):.3f}) |")
    return "\n".join(lines + ["", versus_source_table(rows), "", paired_table(rows)])


def welch(a, b) -> dict:
    """mean(a) - mean(b): Welch's t-test, its 95% interval, and an exact two-sided
    permutation test (every split of the pooled runs into groups of len(a), len(b))."""
    import numpy as np
    from scipy import stats

    t = stats.ttest_ind(a, b, equal_var=False)
    interval = t.confidence_interval(0.95)
    perm = stats.permutation_test((a, b), lambda x, y: np.mean(x) - np.mean(y),
                                  permutation_type="independent", n_resamples=np.inf)
    splits = math.comb(len(a) + len(b), len(a))
    return {"low": interval.low, "high": interval.high, "t": t.statistic, "p": t.pvalue,
            "extreme": round(perm.pvalue * splits), "splits": splits}


def versus_source_table(rows) -> str:
    """Markdown: each system's SWD avg against the source's runs: the difference and
    ratio of the means, each run's ratio to the source's mean, and (2+ runs each)
    Welch's test and the permutation test."""
    source = [r["swd"]["avg"] for r in rows if r["system"] == "source"]
    if not source:
        return "(no source runs)"
    base = sum(source) / len(source)
    lines = ["| system - source | seeds | difference of means (95% interval) | ratio of means "
             "| each run / source mean | Welch t (p) | permutation p |",
             "|---|---|---|---|---|---|---|"]
    for system in sorted({r["system"] for r in rows} - {"source"}):
        swd = [r["swd"]["avg"] for r in rows if r["system"] == system]
        mean, each = sum(swd) / len(swd), sorted(v / base for v in swd)
        diff, tests = f"{mean - base:+.1f}", "- | -"
        if len(swd) >= 2 and len(source) >= 2:
            w = welch(swd, source)
            diff += f" ({w['low']:+.1f} to {w['high']:+.1f})"
            tests = (f"{w['t']:.2f} ({w['p']:.3f}) | {w['extreme']}/{w['splits']} = "
                     f"{w['extreme'] / w['splits']:.2f}")
        lines.append(f"| {system} | {len(swd)} vs {len(source)} | {diff} | {mean / base:.2f} | "
                     f"{each[0]:.2f}-{each[-1]:.2f} | {tests} |")
    return "\n".join(lines)


def paired_table(rows) -> str:
    """Markdown: each run of the seed preset at full width with other training
    settings beside the plain seed preset's run of its seed (same networks and,
    until a setting differs, the same run); then each variant's paired t-test."""
    from scipy import stats

    plain = {r["seed"]: r for r in rows if r["system"] == "mel_tf"}
    pairs = {}
    for r in sorted(rows, key=lambda r: (r["system"], r["seed"])):
        same_networks = (r.get("preset"), r.get("width")) == ("seed", 1.0)
        if r["system"].startswith("mel_tf_") and same_networks and r["seed"] in plain:
            pairs.setdefault(r["system"], []).append(
                (r["seed"], r["swd"]["avg"], plain[r["seed"]]["swd"]["avg"]))
    lines = ["| variant | seed | SWD avg | plain seed preset | difference |", "|---|---|---|---|---|"]
    lines += [f"| {system} | {seed} | {v:.1f} | {base:.1f} | {v - base:+.1f} |"
              for system, runs in pairs.items() for seed, v, base in runs]
    lines += ["", "| variant | pairs | mean difference | paired t (p) |", "|---|---|---|---|"]
    for system, runs in pairs.items():
        if len(runs) >= 2:
            t = stats.ttest_rel([v for _, v, _ in runs], [base for _, _, base in runs])
            mean = sum(v - base for _, v, base in runs) / len(runs)
            lines.append(f"| {system} | {len(runs)} | {mean:+.1f} | {t.statistic:.2f} "
                         f"({t.pvalue:.2f}) |")
    return "\n".join(lines)


def check_flags():
    """A UsageError for flags that do not go together, before anything is written."""
    if F.eval_every % F.checkpoint_every:
        raise app.UsageError("--eval_every must be a multiple of --checkpoint_every")
    if F.system == "source" and not F.source:
        raise app.UsageError("--system=source needs --source")
    if F.system == "source" and F.phase_steps:
        raise app.UsageError("--phase_steps is mel_tf's; the source's phases are --res_step")
    if F.system == "mel_tf" and F.source_init and not F.source:
        raise app.UsageError("--source_init needs --source")
    if F.system == "mel_tf" and F.source_init and (F.preset, F.width) != ("seed", 1.0):
        raise app.UsageError("--source_init needs the seed preset at width 1")


def train_run(training):
    """Trains the flags' system; returns (its name, generate, images shown, latent size)."""
    check_flags()
    system = system_name()
    logdir = run_dir(system)
    os.makedirs(logdir, exist_ok=True)
    if F.start_from and not os.listdir(logdir):
        shutil.copytree(F.start_from, logdir, dirs_exist_ok=True)
    os.makedirs(F.out, exist_ok=True)          # grids and results.json go there at the end
    stages = stage_count()
    if F.system == "source":
        generate, shown, latent_dim = train_source(training, logdir, stages)
    else:
        generate, shown, latent_dim = train_mel_tf(training, logdir, stages)
    return system, generate, shown, latent_dim


def read_timeline(system):
    with open(os.path.join(run_dir(system), "timeline.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def record(training, system, generate, shown, latent_dim):
    """Scores the run, writes its grid, its icons (for the copy check) and its row
    (with the scored points of its timeline), and gathers every row into
    results.json."""
    import numpy as np
    from benchmarks.machine import machine_info
    from mel_tf.images import image_grid, save_png
    from mel_tf.metrics import evaluate_images
    from mel_tf.deploy.seeds import latents_for_seed

    # The same latents and real icons for every run (the study's seed 0, not the run's).
    n = min(F.num_images, len(training))
    real = training.images(F.resolution)[
        np.random.default_rng([0, REAL_SUBSET_SEED]).choice(len(training), n, replace=False)]
    fake = generate(latents_for_seed(0, n, latent_dim))
    np.savez_compressed(os.path.join(run_dir(system), "icons.npz"), icons=fake)
    scores = evaluate_images(real, fake, 0)
    name = f"{system}_seed{F.seed}"
    # Icons at their own size: 64 of them up to 64x64, 16 above (1 MB a grid at 256).
    count = 64 if F.resolution <= 64 else 16
    save_png(os.path.join(F.out, name + ".png"),
             image_grid(fake[:count], columns=int(count ** 0.5), min_cell=64))
    if F.holdout:
        scores["copy_check"] = study_copy_check(training, fake, name)
    timeline = read_timeline(system)
    row = {"system": system, "seed": F.seed, "resolution": F.resolution,
           "res_step": F.res_step, "batch_size": BATCH, "holdout": F.holdout,
           **(mel_tf_settings() if F.system == "mel_tf" else {}), "images_shown": shown,
           "train_seconds": timeline[-1]["train_seconds"], "threads": F.threads,
           "date": time.strftime("%Y-%m-%d"), "machine": machine_info(
               packages=("tensorflow-cpu", "keras", "torch")), **scores,
           "timeline": [r for r in timeline if "swd" in r]}
    with open(os.path.join(run_dir(system), "row.json"), "w") as f:
        json.dump(row, f, indent=2)
    rows = [json.load(open(p))
            for p in sorted(glob.glob(os.path.join(runs_folder(), "*", "row.json")))]
    with open(os.path.join(F.out, "results.json"), "w") as f:
        json.dump({"runs": rows}, f, indent=2)
    print(json.dumps({k: v for k, v in row.items() if k != "timeline"}, indent=2))


def study_copy_check(training, fake, name) -> dict:
    """mel_tf.metrics.copy_check of the run's icons against the training icons, with
    the held-out ones as the reference; OUT/<name>_copies.png shows the closest pairs."""
    from mel_tf.images import pairs_grid, save_png
    from mel_tf.metrics import copy_check

    trained = training.images(F.resolution)
    result = copy_check(fake, trained, training.held_out_images(F.resolution), closest=8)
    save_png(os.path.join(F.out, name + "_copies.png"),
             pairs_grid(fake, trained, [(p["generated"], p["training"])
                                        for p in result["closest"]]))
    return result


def main(argv):
    del argv
    if F.table:
        with open(os.path.join(F.out, "results.json")) as f:
            print(table(json.load(f)["runs"]))
        return
    import tensorflow as tf

    logging.getLogger().setLevel(logging.INFO)
    tf.config.threading.set_intra_op_parallelism_threads(F.threads)
    tf.config.threading.set_inter_op_parallelism_threads(F.threads)
    image_set = study_icons()
    if F.real_floor:
        with open(os.path.join(F.out, "real_floor.json"), "w") as f:
            json.dump({**real_floor(image_set), "date": time.strftime("%Y-%m-%d")}, f, indent=2)
        return
    training = TrainingSubset(image_set)
    record(training, *train_run(training))


if __name__ == "__main__":
    app.run(main)
