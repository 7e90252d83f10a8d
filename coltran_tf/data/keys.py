"""Keys of the example dicts that the data pipeline builds and the models read.

The original ColTran's names: `targets` (the square image), `targets_<R>` (it
area-downsampled to R), `targets_<R>_up_back` (that resized back up), and for
upsampler training a random channel `targets_slice[...]` with its
`channel_index`. Built here only, so that no module spells them out.
"""

LABEL = "label"
CHANNEL_INDEX = "channel_index"


def targets(resolution: int | None = None, channel_slice: bool = False,
            up_back: bool = False) -> str:
    """'targets', 'targets_64', 'targets_64_up_back', 'targets_slice_64', ..."""
    key = "targets_slice" if channel_slice else "targets"
    if resolution is not None:
        key += f"_{resolution}"
    return key + "_up_back" if up_back else key
