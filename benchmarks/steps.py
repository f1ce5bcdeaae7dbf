"""mel_tf's training iteration as the speed benchmarks time it (shared by them)."""

from mel_tf.config import TrainConfig, preset

BATCH = 8


def mel_tf_step(resolution, width, jit_compile=True):
    """A function that runs one mel_tf training iteration at the stage, and its
    NetworkConfig; `jit_compile` False runs the step as a TensorFlow graph
    (oneDNN's kernels) instead of one XLA executable."""
    import numpy as np
    import tensorflow as tf

    from mel_tf.training.progan import ProGAN, step_noise

    net, tc = preset("seed", resolution, width), TrainConfig(batch_size=BATCH)
    model = ProGAN(net, tc)
    model.set_stage(resolution, resolution > 4)
    model.set_alpha(0.5)
    step_fn = tf.function(model.train_step, jit_compile=jit_compile, autograph=False)
    noise = step_noise(net, tc, BATCH)
    images = np.random.default_rng(0).integers(0, 256, (BATCH, resolution, resolution, 3),
                                               dtype=np.uint8)
    counter = iter(range(10**9))

    def step():
        i = next(counter)
        batch = {"images": tf.constant(images), "steps": tf.fill([BATCH], tf.constant(i, tf.int64)),
                 **{k: tf.constant(v) for k, v in noise(i).items()}}
        float(step_fn(batch)["d_loss"])
    return step, net
