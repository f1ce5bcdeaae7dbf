"""The training callbacks on their own: the clock, the progress line and log lines."""

import io
import logging

from mel_tf.training.callbacks import Clock, ProgressBar
from mel_tf.training.schedule import Phase, Schedule


def two_phases():
    return Schedule([Phase(4, False, 40, 4, 1e-3), Phase(8, True, 40, 2, 1e-3)])


def test_the_clock_counts_images_and_gives_the_fade_a_per_step():
    clock = Clock(two_phases(), images_shown=40, step=10)
    assert clock.phase.name == "8x8 fade" and clock.alpha == 0.0
    for _ in range(5):
        clock.on_train_batch_end(0)
    assert (clock.step, clock.images_shown, clock.alpha) == (15, 50, 0.25)
    assert clock.crossed(10) and not clock.crossed(20) and not clock.crossed(0)
    for _ in range(15):
        clock.on_train_batch_end(0)
    assert clock.phase_done and clock.done and clock.images_shown == 80


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_line_is_cleared_before_a_log_line():
    stream = Terminal()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("mel_tf")
    logger.addHandler(handler)
    clock = Clock(two_phases())
    bar = ProgressBar(clock, enabled=True, stream=stream)
    try:
        bar.on_train_begin()
        clock.on_train_batch_end(0)
        bar.on_train_batch_end(0, {"g_loss": 1.5, "d_loss": -2.25})
        logger.warning("a log line")
        bar.on_train_end()
        logger.warning("after training")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    line, rest = text.split("\x1b[K", 1)
    assert line.startswith("\r[") and "  5.0% phase 1/2 4x4 stable a=1.000 G +1.500 D -2.250" in line
    # The line is erased before the log line is written, and nothing is erased twice.
    assert rest == "\r\x1b[Ka log line\nafter training\n"
    assert not handler.filters
