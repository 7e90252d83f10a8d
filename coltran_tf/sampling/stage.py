"""Every stage behind one method: `sample(batch, previous, mode, seeds)`.

The upsamplers' models have it already; the colorizer's sampling lives in
this package (its cached sampler and the original loop), so a small adapter
gives it the same method. `sampler_for(model)` returns the right one, as the
stage table (configs/stages.py) says; the Pipeline chains them without
knowing which is which.

`sample` returns {"images": (B, R, R, 3) uint8, ...}: a stage may add maps
(the colorizer: "uncertainty" (B, R, R), its per-pixel max probability, and
"proba"). `sample_repeated` draws several samples of each image and returns
them side by side along the width.
"""


import numpy as np
import tensorflow as tf

from coltran_tf.configs import stages
from coltran_tf.configs.sampler import DEFAULTS, SamplerOptions
from coltran_tf.sampling.cached_sampler import sample_colorizer


class ModelSampler:
    """A stage whose model samples itself (the upsamplers): one seed per batch."""

    def __init__(self, model, options: SamplerOptions = DEFAULTS):
        self.model, self.options = model, options
        self.stage = stages.of_model_name(model.name)

    @property
    def low(self) -> int:
        """The low resolution it works at or from (64 in the paper)."""
        return self.model.low_resolution

    @property
    def high(self) -> int:
        """The largest resolution it knows of: its output's (the color upsampler's
        is the low one), or for the colorizer its inputs' source."""
        return self.model.resolution

    def settings(self) -> dict | None:
        """Its sampler settings for run records (None: nothing to choose)."""
        return None

    def sample(self, batch: dict, previous=None, mode: str = "argmax", seeds=None) -> dict:
        """previous: the previous stage's images (None: the batch's own colours)."""
        seed = None if seeds is None else int(np.asarray(seeds).reshape(-1)[0])
        return {"images": np.asarray(self.model.sample(batch, previous, mode, seed), np.uint8)}

    def sample_repeated(self, batch: dict, previous, mode: str, num_samples: int,
                        seed: int) -> dict:
        """`num_samples` samples of every image side by side along the width:
        (B, R, R * num_samples, 3); sample k drawn with seed + k."""
        outs = [self.sample(batch, previous, mode, seed + k)["images"]
                for k in range(num_samples)]
        return {"images": np.concatenate(outs, axis=2)}


class ColorizerSampler(ModelSampler):
    """The colorizer through its sampler (SamplerOptions: cached or the loop):
    one seed per image, so that an image's sample does not depend on its batch."""

    @property
    def low(self) -> int:
        return self.model.resolution

    @property
    def high(self) -> int:
        return self.model.source_resolution

    def settings(self) -> dict:
        return self.options.as_dict()

    def sample(self, batch: dict, previous=None, mode: str = "sample", seeds=None) -> dict:
        (gray,) = self.model.sample_inputs(batch, previous)
        out = sample_colorizer(self.model, np.asarray(gray), mode, seeds, self.options)
        return {"images": np.asarray(out["coarse"], np.uint8),
                "uncertainty": out["uncertainty"], "proba": out["proba"]}

    def sample_repeated(self, batch: dict, previous, mode: str, num_samples: int,
                        seed: int) -> dict:
        """Image i, sample k drawn with seed + i * num_samples + k: the cached
        sampler draws them all in one call (its per-image seeds make a sample
        independent of its batch); the loop sampler takes one call per sample."""
        key = self.model.input_key
        batch_size = int(batch[key].shape[0])
        seeds = seed + np.arange(batch_size)[None] * num_samples + np.arange(num_samples)[:, None]
        if self.options.sampler == "cached":
            repeated = {key: tf.tile(batch[key], [num_samples, 1, 1, 1])}
            out = self.sample(repeated, None, mode, seeds.reshape(-1))
            parts = {k: np.split(out[k], num_samples) for k in ("images", "uncertainty")}
        else:
            outs = [self.sample(batch, None, mode, seeds[k]) for k in range(num_samples)]
            parts = {k: [o[k] for o in outs] for k in ("images", "uncertainty")}
        return {k: np.concatenate(v, axis=2) for k, v in parts.items()}


def sampler_for(model, options: SamplerOptions = DEFAULTS) -> ModelSampler:
    """The model's stage behind the one interface: the adapter the stage table
    names, or the model's own `sample`."""
    stage = stages.of_model_name(model.name)
    if stage.sampler is None:
        return ModelSampler(model, options)
    return stages.load(stage.sampler)(model, options)
