"""The colorizer sampler's options, in one place.

`SamplerOptions` is the single source of their defaults: the presets'
`config.sample` block, colorize's flags, the samplers, the pipeline and the
exported samplers all start from it. Imports nothing, so that configs and
commands can build on it.
"""

import dataclasses

SAMPLERS = ("cached", "loop")
NORM_CONTEXTS = ("exact", "reference")

HELP = {
    "sampler": "Colorizer sampler: 'cached' (fast) or 'loop' (the original algorithm, "
               "minutes per image at paper size).",
    "norm_context": "'exact': the distribution the model was trained on; 'reference': the "
                    "original sampler's quirk (its conditional norms see only the current "
                    "row), reproducing it bit for bit.",
    "temperature": "Colorizer sampling temperature (<1: safer colours).",
    "top_k": "Sample among the k most likely colours per pixel (0: all).",
    "top_p": "Sample within the smallest set of colours holding this probability mass per "
             "pixel (1: all).",
}


@dataclasses.dataclass(frozen=True)
class SamplerOptions:
    """How the colorizer samples (the cached sampler takes all of them; the
    loop sampler, the original algorithm, has no temperature/top-k/top-p)."""

    sampler: str = "cached"
    norm_context: str = "exact"
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler={self.sampler!r}; choose one of {SAMPLERS} ('loop' is "
                             "the original algorithm, minutes per image).")
        if self.norm_context not in NORM_CONTEXTS:
            raise ValueError(f"norm_context={self.norm_context!r}; choose one of "
                             f"{NORM_CONTEXTS}.")
        if self.sampler == "loop":
            changed = [f.name for f in dataclasses.fields(self)[2:]
                       if getattr(self, f.name) != f.default]
            if changed:
                raise ValueError(f"{', '.join(changed)} need the cached sampler "
                                 "(sampler='cached'); the original algorithm has no such "
                                 "controls.")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_mapping(cls, values) -> "SamplerOptions":
        """From a dict or a config.sample block. An original ColTran config has
        none of these keys, hence the defaults for missing ones."""
        return cls(**{f.name: type(f.default)(values[f.name]) for f in dataclasses.fields(cls)
                      if f.name in values})


DEFAULTS = SamplerOptions()
