"""The progressive schedule: phases of fading and stable training, in images shown.

The source ("seed"): 4x4 stable, then one linear fade per resolution, and a
stable phase only at the target. The paper: a fade and a stable phase at every
resolution above 4x4. The position in the run is one number, the images shown;
the phase, a and the learning rate are derived from it, so a checkpoint that
stores it resumes exactly, mid-fade included.
"""

from __future__ import annotations

import dataclasses
from typing import List, Mapping, Optional

from mel_tf.config import MIN_RESOLUTION, resolutions_up_to


@dataclasses.dataclass(frozen=True)
class Phase:
    resolution: int
    fading: bool
    images: int
    batch_size: int
    learning_rate: float

    @property
    def name(self) -> str:
        return f"{self.resolution}x{self.resolution} {'fade' if self.fading else 'stable'}"


@dataclasses.dataclass(frozen=True)
class Position:
    """Where images_shown falls in the schedule."""
    phase_index: int
    phase: Phase
    images_into_phase: int
    alpha: float
    done: bool


class Schedule:
    def __init__(self, phases: List[Phase]):
        if not phases:
            raise ValueError("a schedule needs at least one phase")
        self.phases = list(phases)
        self.starts = []
        start = 0
        for phase in self.phases:
            self.starts.append(start)
            start += phase.images
        self.total_images = start

    @classmethod
    def progressive(cls, resolution: int, fade_images: int, stable_images: int,
                    stable_every_resolution: bool, batch_size: int,
                    learning_rate: float, batch_sizes: Optional[Mapping[int, int]] = None,
                    learning_rates: Optional[Mapping[int, float]] = None,
                    final_learning_rate: Optional[float] = None,
                    phase_images: Optional[Mapping[int, int]] = None) -> "Schedule":
        if fade_images <= 0 or stable_images < 0:
            raise ValueError("fade_images must be positive and stable_images non-negative")
        batch_sizes = dict(batch_sizes or {})
        learning_rates = dict(learning_rates or {})
        phase_images = dict(phase_images or {})
        if any(n <= 0 for n in phase_images.values()):
            raise ValueError(f"images per phase must be positive, got {phase_images}")
        resolutions = resolutions_up_to(resolution)
        for r in list(batch_sizes) + list(learning_rates) + list(phase_images):
            if r not in resolutions:
                raise ValueError(f"per-resolution setting for {r}, which is not one of {resolutions}")

        def phase(r, fading, images):
            return Phase(r, fading, phase_images.get(r, images), batch_sizes.get(r, batch_size),
                         learning_rates.get(r, learning_rate))

        phases = []
        for r in resolutions:
            if r > MIN_RESOLUTION:
                phases.append(phase(r, True, fade_images))
            if (r == MIN_RESOLUTION or r == resolution or stable_every_resolution) and stable_images:
                phases.append(phase(r, False, stable_images))
        if resolution == MIN_RESOLUTION and not phases:
            raise ValueError("a 4x4 run needs stable_images > 0")
        if final_learning_rate is not None:
            phases[-1] = dataclasses.replace(phases[-1], learning_rate=final_learning_rate)
        return cls(phases)

    def locate(self, images_shown: int) -> Position:
        if images_shown >= self.total_images:
            last = len(self.phases) - 1
            return Position(last, self.phases[last], self.phases[last].images, 1.0, True)
        index = max(i for i, s in enumerate(self.starts) if s <= images_shown)
        into = images_shown - self.starts[index]
        return Position(index, self.phases[index], into, self.alpha(index, images_shown), False)

    def alpha(self, index: int, images_shown: int) -> float:
        """The fade's a in phase `index` after `images_shown` images: linear in the
        images shown over the fade, 1 outside fades."""
        phase = self.phases[index]
        if not phase.fading:
            return 1.0
        return (images_shown - self.starts[index]) / phase.images

    def phase_end(self, index: int) -> int:
        return self.starts[index] + self.phases[index].images


def schedule_for(net_cfg, train_cfg) -> Schedule:
    """The schedule a NetworkConfig and a TrainConfig describe."""
    return Schedule.progressive(
        resolution=net_cfg.resolution, fade_images=train_cfg.fade_images,
        stable_images=train_cfg.stable_images,
        stable_every_resolution=train_cfg.stable_every_resolution,
        batch_size=train_cfg.batch_size, learning_rate=train_cfg.learning_rate,
        batch_sizes=dict(train_cfg.batch_sizes), learning_rates=dict(train_cfg.learning_rates),
        final_learning_rate=train_cfg.final_learning_rate,
        phase_images=dict(train_cfg.phase_images))
