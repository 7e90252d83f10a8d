"""Spatial upsampler: blurry low-resolution colours -> any square resolution (spec §6)."""

import keras

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
        return f"targets_{self.low_resolution}_up_back"

    def inputs_from_batch(self, batch, training=False):
        gray = image_ops.rgb_to_grayscale(batch["targets"])
        if training:
            channels = batch[self.blurry_key.replace("targets", "targets_slice")]
            return gray, channels, batch["channel_index"], batch["targets_slice"]
        return gray, batch[self.blurry_key], None, batch["targets"]

    def dummy_inputs(self):
        shape = (1, self.resolution, self.resolution, 3)
        return {"targets": keras.KerasTensor(shape, dtype="int32"),
                self.blurry_key: keras.KerasTensor(shape, dtype="int32")}
