"""ColTran's three stages as one object: colorizer -> color upsampler -> spatial upsampler.

Kumar et al. 2021, Sec. 4: the colorizer samples coarse 3-bit colours at
64x64 from the grayscale image, the color upsampler turns them into 8-bit
colours, the spatial upsampler into a 256x256 image. `Pipeline` holds any of
the stages (the browser tool's suggestions use the first two, a staged
sampling job one) and runs each through the same call, `sample_stage`, on
the example dicts the data pipeline builds (`prepare` builds them from
photos of any size). colorize, the app's suggestions and staged sampling all
go through it.
"""

from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from coltran_tf.data import keys
from coltran_tf.data.preprocess import resize_area
from coltran_tf.sampling.cached_sampler import sample_colorizer
from coltran_tf.sampling.options import SamplerOptions

STAGES = ("colorizer", "color_upsampler", "spatial_upsampler")


class PipelineError(ValueError):
    """Stages that do not fit together."""


@dataclass
class Pipeline:
    """The stages (any of them may be None) and how the colorizer samples.

    `sources` says where each model came from (reports, run records).
    """
    colorizer: object = None
    color_upsampler: object = None
    spatial_upsampler: object = None
    options: SamplerOptions = SamplerOptions()
    sources: dict = field(default_factory=dict)

    def __post_init__(self):
        lows = {name: getattr(self, name).resolution for name in STAGES[:2]
                if getattr(self, name) is not None}
        if self.spatial_upsampler is not None:
            lows["spatial_upsampler"] = self.spatial_upsampler.low_resolution
        if len(set(lows.values())) > 1:
            found = ", ".join(f"{name} {side}x{side}" for name, side in lows.items())
            raise PipelineError(f"The stages do not fit together (low resolutions: {found}); "
                                "use models trained with the same downsample_res.")

    @classmethod
    def of(cls, model, **kwargs) -> "Pipeline":
        """A pipeline of one stage (a staged job), placed by the model's declared
        PIPELINE_STAGE."""
        stage = getattr(model, "PIPELINE_STAGE", None)
        if stage not in STAGES:
            raise PipelineError(f"{type(model).__name__} is not a ColTran stage model.")
        return cls(**{stage: model}, **kwargs)

    def stage(self, name: str):
        model = getattr(self, name)
        if model is None:
            raise PipelineError(f"This pipeline has no {name} stage.")
        return model

    @property
    def low(self) -> int:
        """The colorizer's (and color upsampler's) resolution: 64 in the paper."""
        if self.spatial_upsampler is not None:
            return self.spatial_upsampler.low_resolution
        return next(getattr(self, n).resolution for n in STAGES[:2] if getattr(self, n))

    @property
    def high(self) -> int:
        """The final resolution: the spatial upsampler's (the images the colorizer's
        inputs were downsampled from, without one)."""
        if self.spatial_upsampler is not None:
            return self.spatial_upsampler.resolution
        if self.colorizer is not None:
            return self.colorizer.source_resolution
        return self.low

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
        """One stage's output for a batch: {"images": (B, R, R, 3) uint8} (and the
        colorizer's "uncertainty" (B, R, R), its per-pixel max probability).

        Args:
          name: "colorizer", "color_upsampler" or "spatial_upsampler".
          batch: the example dict (prepare(), or the data pipeline's).
          previous: the previous stage's images; None conditions an upsampler on
            the batch's own colours (as the original's stages 2 and 3 do).
          mode: "sample" or "argmax".
          seeds: the colorizer, one per image (or one for all: seed + b);
            upsamplers, one int for the batch.
        """
        model = self.stage(name)
        if name == STAGES[0]:
            (gray,) = model.sample_inputs(batch)
            out = sample_colorizer(model, np.asarray(gray), mode, seeds, self.options)
            return {"images": np.asarray(out[f"auto_{mode}"], np.uint8),
                    "uncertainty": out["uncertainty"], "proba": out["proba"]}
        seed = None if seeds is None else int(np.asarray(seeds).reshape(-1)[0])
        return {"images": np.asarray(model.sample(batch, previous, mode, seed), np.uint8)}

    def sample_stage_repeated(self, name: str, batch: dict, previous, mode: str,
                              num_samples: int, seed: int) -> dict:
        """sample_stage for `num_samples` samples of every image, concatenated
        along the width: (B, R, R * num_samples, 3) (and "uncertainty").

        The colorizer samples image i, sample k with seed + i * num_samples + k
        (the cached sampler draws them all in one call: its per-image seeds make
        a sample independent of its batch; the loop sampler takes one call per
        sample); the upsamplers sample k with seed + k.
        """
        if name != STAGES[0]:
            outs = [self.sample_stage(name, batch, previous, mode, seed + k)["images"]
                    for k in range(num_samples)]
            return {"images": np.concatenate(outs, axis=2)}
        key = self.colorizer.input_key
        batch_size = int(batch[key].shape[0])
        seeds = seed + np.arange(batch_size)[None] * num_samples + np.arange(num_samples)[:, None]
        if self.options.sampler == "cached":
            repeated = {key: tf.tile(batch[key], [num_samples, 1, 1, 1])}
            out = self.sample_stage(name, repeated, None, mode, seeds.reshape(-1))
            parts = {k: np.split(out[k], num_samples) for k in ("images", "uncertainty")}
        else:
            outs = [self.sample_stage(name, batch, None, mode, seeds[k])
                    for k in range(num_samples)]
            parts = {k: [o[k] for o in outs] for k in ("images", "uncertainty")}
        return {k: np.concatenate(v, axis=2) for k, v in parts.items()}
