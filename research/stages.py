"""Where a run's networks stand after some images: its stage and fade (a), from the run's
own configs. Free of flags, so that tools and tests can import it beside any CLI."""


def stage_of(schedule, images):
    """(resolution, a) of the networks after `images` images of `schedule`; a is the
    fraction of a fade done (1 outside fades and at a fade's end)."""
    index = schedule.locate(max(images - 1, 0)).phase_index
    return schedule.phases[index].resolution, schedule.alpha(index, images)


def stage_generator(generator, net_cfg, train_cfg, images):
    """Sets `generator` to the stage and a that a run of these configs has reached
    after `images` images (a run's own configs, whatever a study's flags say);
    returns (resolution, a)."""
    from mel_tf.training.schedule import schedule_for

    resolution, alpha = stage_of(schedule_for(net_cfg, train_cfg), images)
    generator.set_stage(resolution, alpha < 1.0)
    generator.set_alpha(alpha)
    return resolution, alpha
