"""Spatial upsampler: blurry low-resolution colours -> any square resolution
(Kumar et al. 2021, Sec. 4.4)."""

import keras

from coltran_tf.data import keys
from coltran_tf.data.preprocess import resize_area
from coltran_tf.models.upsampler import ChannelUpsampler
from coltran_tf.utils import image_ops


@keras.saving.register_keras_serializable(package="coltran_tf")
class SpatialUpsampler(ChannelUpsampler):
    """Gray of the full-resolution RGB plus the 8-bit channels of the
    low-resolution image resized back up (area method) -> 256-way logits."""


    symbols_per_channel = 256

    def __init__(self, resolution: int = 256, **kwargs):
        kwargs.setdefault("name", "spatial_upsampler")
        super().__init__(resolution, **kwargs)

    @property
    def blurry_key(self) -> str:
        return keys.targets(self.low_resolution, up_back=True)

    @property
    def scale(self) -> int:
        """How many times larger its output is than its input (4 in the paper)."""
        return self.resolution // self.low_resolution

    def inputs_from_batch(self, batch, training=False):
        gray = image_ops.rgb_to_grayscale(batch[keys.targets()])
        if training:
            channels = batch[keys.targets(self.low_resolution, channel_slice=True,
                                          up_back=True)]
            return (gray, channels, batch[keys.CHANNEL_INDEX],
                    batch[keys.targets(channel_slice=True)])
        return gray, batch[self.blurry_key], None, batch[keys.targets()]

    def sample_inputs(self, batch, previous=None):
        """(gray, blurry 8-bit channels): the batch's full-resolution grayscale and
        the colour upsampler's colours (`previous`, (B, r, r, 3)) resized up by
        area, or without them the batch's own low-resolution colours resized up."""
        blurry = (batch[self.blurry_key] if previous is None
                  else resize_area(previous, self.resolution))
        return image_ops.rgb_to_grayscale(batch[keys.targets()]), blurry

    def dummy_inputs(self):
        shape = (1, self.resolution, self.resolution, 3)
        return {keys.targets(): keras.KerasTensor(shape, dtype="int32"),
                self.blurry_key: keras.KerasTensor(shape, dtype="int32")}
