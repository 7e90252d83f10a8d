"""ColTran's stages: the one table of what each is (Kumar et al. 2021, Sec. 4).

The colorizer samples coarse 3-bit colours at the low resolution (64 in the
paper) from the grayscale image; the color upsampler turns them into 8-bit
colours at the same resolution; the spatial upsampler turns those into the
full-resolution image. Every stage name in the package (flags, release
folders, presets, pipeline slots, demo and model directories) and every
stage fact (its model, its place, what it takes) is read from `STAGES`.
Adding a stage is a row here, its model file and, when its sampling differs
from `sample(batch, previous, mode, seed)` or its serving from the others',
an adapter in sampling/stage.py or sampling/serving.py.
"""

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline.

    name: the flag, release folder, preset and pipeline slot (`colorizer`).
    model_name: `config.model.name` of its configs (the original's names).
    model_class: "module:Class" of its Keras model (resolved by models.builder).
    takes: what it takes from the previous stage (None: only the grayscale
      image); without it, it conditions on the batch's own colours, as the
      original's stages 2 and 3 do.
    gives: what it gives the next stage.
    reference_scope: the variable scope of its model in the original's
      checkpoints (the released ones).
    serving: "module:Class" of its serving module, what its exports compute
      (sampling/serving.py).
    sampler: "module:Class" of the adapter that gives it the stages' one
      method, sample(batch, previous, mode, seeds) (sampling/stage.py), or
      None when its model has that method itself.
    """
    name: str
    model_name: str
    model_class: str
    takes: str | None
    gives: str
    reference_scope: str
    serving: str
    sampler: str | None = None

    @property
    def preset(self) -> str:
        """Its preset in coltran_tf/configs (`colorizer:tiny`, ...)."""
        return self.name

    @property
    def position(self) -> int:
        """Its place in the pipeline, from 0."""
        return STAGES.index(self)


STAGES = (
    Stage("colorizer", "coltran_core", "coltran_tf.models.colorizer:ColTranCore",
          takes=None, gives="coarse 3-bit colours at the low resolution",
          reference_scope="col_tran_core",
          serving="coltran_tf.sampling.serving:ColorizerServing",
          sampler="coltran_tf.sampling.stage:ColorizerSampler"),
    Stage("color_upsampler", "color_upsampler",
          "coltran_tf.models.color_upsampler:ColorUpsampler",
          takes="coarse 3-bit colours at the low resolution",
          gives="8-bit colours at the low resolution", reference_scope="color_upsampler",
          serving="coltran_tf.sampling.serving:ColorUpsamplerServing"),
    Stage("spatial_upsampler", "spatial_upsampler",
          "coltran_tf.models.spatial_upsampler:SpatialUpsampler",
          takes="8-bit colours at the low resolution",
          gives="8-bit colours at the full resolution", reference_scope="spatial_upsampler",
          serving="coltran_tf.sampling.serving:UpsamplerServing"),
)
NAMES = tuple(stage.name for stage in STAGES)
MODEL_NAMES = tuple(stage.model_name for stage in STAGES)


class UnknownStage(ValueError):
    """A name that is no stage (lists the stages)."""


def load(path: str):
    """The object a table entry names as "module:Name" (imported on demand)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def get(name: str) -> Stage:
    """The stage called `name` (a flag's, folder's or slot's name)."""
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise UnknownStage(f"No stage {name!r}; the stages are {', '.join(NAMES)}.")


def of_model_name(model_name: str) -> Stage:
    """The stage whose configs name their model `model_name` (config.model.name)."""
    for stage in STAGES:
        if stage.model_name == model_name:
            return stage
    raise UnknownStage(f"config.model.name={model_name!r} is not one of "
                       f"{list(MODEL_NAMES)}.")
