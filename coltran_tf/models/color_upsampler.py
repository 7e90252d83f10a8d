"""Color upsampler: coarse 3-bit colours -> 8-bit colours at 64x64 (Kumar et al.
2021, Sec. 4.4)."""

import keras

from coltran_tf.data import keys
from coltran_tf.models.upsampler import ChannelUpsampler
from coltran_tf.utils import image_ops


@keras.saving.register_keras_serializable(package="coltran_tf")
class ColorUpsampler(ChannelUpsampler):
    """Gray of the low-resolution RGB plus its 3-bit channels -> 256-way logits."""


    symbols_per_channel = image_ops.NUM_SYMBOLS_PER_CHANNEL

    def __init__(self, resolution: int = 64, **kwargs):
        kwargs.setdefault("name", "color_upsampler")
        super().__init__(resolution, **kwargs)

    @property
    def input_key(self) -> str:
        return keys.targets(self.resolution if self.downsample else None)

    def inputs_from_batch(self, batch, training=False):
        rgb = batch[self.input_key]
        gray = image_ops.rgb_to_grayscale(rgb)
        if training:
            labels = batch[keys.targets(self.resolution if self.downsample else None,
                                        channel_slice=True)]
            channel_index = batch[keys.CHANNEL_INDEX]
        else:
            labels, channel_index = rgb, None
        return gray, image_ops.convert_bits(labels, 8, 3), channel_index, labels

    def sample_inputs(self, batch, previous=None):
        """(gray, 3-bit channels): the batch's low-resolution grayscale and the
        colorizer's coarse colours (`previous`, (B, R, R, 3) 8-bit) or, without
        them, the batch's own colours (the original conditions on ground truth)."""
        rgb = batch[self.input_key] if previous is None else previous
        gray = image_ops.rgb_to_grayscale(batch[self.input_key])
        return gray, image_ops.convert_bits(rgb, 8, 3)

    def dummy_inputs(self):
        res = self.resolution
        return {self.input_key: keras.KerasTensor((1, res, res, 3), dtype="int32")}
