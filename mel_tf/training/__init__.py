"""Training: the networks, their layers, the data, the step and the loop.

    config (mel_tf.config) -> networks (layers) -> progan (the step: losses,
    optimizers, augment) -> loop (one fit() per phase: schedule, callbacks,
    rundir, data)

`mel_tf.training.loop.train` runs a whole run; nothing here imports
`mel_tf.deploy`.
"""
