"""ColTran's stages as one object: colorizer -> color upsampler -> spatial upsampler.

Kumar et al. 2021, Sec. 4: the colorizer samples coarse 3-bit colours at
64x64 from the grayscale image, the color upsampler turns them into 8-bit
colours, the spatial upsampler into a 256x256 image. `Pipeline` holds any of
the stages (the browser tool's suggestions use the first two, a staged
sampling job one), each behind the one method of sampling/stage.py, in the
order of the stage table (configs/stages.py), and chains them without
knowing which is which: `chain` runs them in order, each on the previous
one's images. `prepare` builds the example dicts of the data pipeline from
photos of any size. colorize, the app's suggestions and staged sampling all
go through it.
"""

from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from coltran_tf.configs import stages
from coltran_tf.configs.sampler import DEFAULTS, SamplerOptions
from coltran_tf.data import keys
from coltran_tf.data.preprocess import resize_area
from coltran_tf.sampling.stage import sampler_for


class PipelineError(ValueError):
    """Stages that do not fit together."""


@dataclass(init=False)
class Pipeline:
    """Some of the stages, placed by their models (in the stage table's order),
    and how the colorizer samples. `sources` says where each model came from
    (reports, run records)."""

    models: dict
    options: SamplerOptions = DEFAULTS
    sources: dict = field(default_factory=dict)

    def __init__(self, *models, options: SamplerOptions = DEFAULTS,
                 sources: dict | None = None):
        placed = {}
        for model in models:
            if model is None:
                continue
            try:
                stage = stages.of_model_name(getattr(model, "name", None))
            except stages.UnknownStage:
                raise PipelineError(f"{type(model).__name__} is not a ColTran stage model."
                                    ) from None
            if stage.name in placed:
                raise PipelineError(f"Two {stage.name} models given.")
            placed[stage.name] = model
        self.models = {name: placed[name] for name in stages.NAMES if name in placed}
        self.options, self.sources = options, dict(sources or {})
        self.samplers = {name: sampler_for(model, options) for name, model in self.models.items()}
        lows = {name: sampler.low for name, sampler in self.samplers.items()}
        if len(set(lows.values())) > 1:
            found = ", ".join(f"{name} {side}x{side}" for name, side in lows.items())
            raise PipelineError(f"The stages do not fit together (low resolutions: {found}); "
                                "use models trained with the same downsample_res.")
        if not self.models:
            raise PipelineError("A pipeline needs at least one stage's model.")

    @property
    def names(self) -> tuple[str, ...]:
        """Its stages' names, in pipeline order."""
        return tuple(self.models)

    def stage(self, name: str):
        """The model of stage `name`."""
        if name not in self.models:
            raise PipelineError(f"This pipeline has no {name} stage.")
        return self.models[name]

    @property
    def low(self) -> int:
        """The low resolution the stages share (64 in the paper)."""
        return next(iter(self.samplers.values())).low

    @property
    def high(self) -> int:
        """The final resolution: the latest stage's that is above the low one (the
        spatial upsampler's output; without it, the images the colorizer's
        inputs were downsampled from), else the low one."""
        highs = [sampler.high for sampler in self.samplers.values() if sampler.high > self.low]
        return highs[-1] if highs else self.low

    def prepare(self, images) -> dict:
        """Photos of any size (each (H, W, 3) uint8, or one (B, H, W, 3) array) ->
        the example dict of the data pipeline: each squeezed (area resize, not
        cropped) to `high` and, from that, to `low`."""
        if isinstance(images, np.ndarray) and images.ndim == 4:
            targets = resize_area(images, self.high)
        else:
            targets = tf.stack([resize_area(image, self.high) for image in images])
        return {keys.targets(): targets, keys.targets(self.low): resize_area(targets, self.low)}

    def sample_stage(self, name: str, batch: dict, previous=None, mode: str = "argmax",
                     seeds=None) -> dict:
        """One stage's output for a batch (sampling/stage.py): {"images": (B, R, R,
        3) uint8, and the maps the stage adds}.

        Args:
          name: the stage.
          batch: the example dict (prepare(), or the data pipeline's).
          previous: the previous stage's images; None conditions an upsampler on
            the batch's own colours (as the original's stages 2 and 3 do).
          mode: "sample" or "argmax".
          seeds: one per image (or one for all: seed + b); a stage that takes one
            seed per batch uses the first.
        """
        self.stage(name)
        return self.samplers[name].sample(batch, previous, mode, seeds)

    def sample_stage_repeated(self, name: str, batch: dict, previous, mode: str,
                              num_samples: int, seed: int) -> dict:
        """sample_stage for `num_samples` samples of every image, side by side
        along the width: (B, R, R * num_samples, 3) (and the stage's maps)."""
        self.stage(name)
        return self.samplers[name].sample_repeated(batch, previous, mode, num_samples, seed)

    def chain(self, batch: dict, modes, seeds, previous=None, start: int = 0,
              stop: int | None = None) -> list[dict]:
        """Runs the stages at positions [start, stop), each on the previous one's
        images (the first on `previous`, None: as sample_stage).

        Args:
          modes, seeds: one per stage run (a single value: the same for all).

        Returns:
          Each stage's output (sample_stage), in order.
        """
        names = self.names[start:stop]
        modes = [modes] * len(names) if isinstance(modes, str) else list(modes)
        seeds = [seeds] * len(names) if not isinstance(seeds, (list, tuple)) else list(seeds)
        outputs = []
        for name, mode, seed in zip(names, modes, seeds, strict=True):
            outputs.append(self.sample_stage(name, batch, previous, mode, seed))
            previous = outputs[-1]["images"]
        return outputs
