"""Shared body of the two ColTran upsamplers (Kumar et al. 2021, Sec. 4.4)."""

import keras
from keras import ops

from coltran_tf.layers.axial_encoder import AxialEncoder
from coltran_tf.layers.symbol_embedding import SymbolEmbedding
from coltran_tf.models.losses import bits_per_dim

NUM_GRAY_LEVELS = 256
NUM_OUTPUT_LEVELS = 256
SAMPLE_MODES = ("argmax", "sample")


class ChannelUpsampler(keras.Model):
    """Per channel c: one_hot(value + S*c, 3S) -> Dense, concat gray embedding
    -> Dense -> axial encoder -> Dense(256). Channels share all weights and are
    processed one after another (bounded memory), stacked as (B, H, W, C, 256).

    Subclasses set `symbols_per_channel` (S) and `inputs_from_batch`.
    """

    symbols_per_channel: int = 0

    def __init__(self, resolution: int, hidden_size: int = 512, ff_size: int = 512,
                 num_heads: int = 4, num_encoder_layers: int = 4, dropout: float = 0.0,
                 downsample: bool = True, low_resolution: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.resolution = resolution
        self.hidden_size = hidden_size
        self.ff_size = ff_size
        self.num_heads = num_heads
        self.num_encoder_layers = num_encoder_layers
        self.dropout = dropout
        self.downsample = downsample
        self.low_resolution = low_resolution
        self.channel_embedding = SymbolEmbedding(3 * self.symbols_per_channel, hidden_size,
                                                 name="channel_embedding")
        self.gray_embedding = SymbolEmbedding(NUM_GRAY_LEVELS, hidden_size,
                                              name="gray_embedding")
        self.input_dense = keras.layers.Dense(hidden_size, name="input_dense")
        self.encoder = AxialEncoder(hidden_size, ff_size, num_heads, num_encoder_layers,
                                    resolution, resolution, dropout, name="encoder")
        self.final_dense = keras.layers.Dense(NUM_OUTPUT_LEVELS, name="final_dense")

    def channel_logits(self, gray_embedding, channel, offset, training=False):
        """One channel (B, H, W) with its one-hot offset -> (B, H, W, 256) float32."""
        embedding = self.channel_embedding(channel + self.symbols_per_channel * offset)
        hidden = self.input_dense(ops.concatenate([embedding, gray_embedding], axis=-1))
        return ops.cast(self.final_dense(self.encoder(hidden, training=training)), "float32")

    def upsample_logits(self, gray, channels, channel_index=None, training=False):
        """Logits (B, H, W, C, 256).

        Args:
          gray: (B, H, W, 1) 8-bit grayscale.
          channels: (B, H, W, C) conditioning channels (S levels each).
          channel_index: (B,) which colour channel a single slice (C = 1) is;
            None means the channels are R, G, B in order.
        """
        gray_embedding = self.gray_embedding(gray[..., 0])
        channels = ops.cast(channels, "int32")
        if channel_index is not None:
            channel_index = ops.reshape(ops.cast(channel_index, "int32"), (-1, 1, 1))
        logits = []
        for c in range(channels.shape[-1]):
            offset = c if channel_index is None else channel_index
            logits.append(self.channel_logits(gray_embedding, channels[..., c], offset,
                                              training))
        return ops.stack(logits, axis=-2)

    def inputs_from_batch(self, batch, training=False):
        """(gray, channels, channel_index, labels) from an example dict."""
        raise NotImplementedError

    def sample_inputs(self, batch, previous=None):
        """(gray, channels) to sample from, given an example dict and the previous
        stage's output (None: condition on the batch itself)."""
        raise NotImplementedError

    def call(self, batch, training=False):
        gray, channels, channel_index, _ = self.inputs_from_batch(batch, training)
        return {"logits": self.upsample_logits(gray, channels, channel_index, training)}

    def compute_outputs(self, batch, training=False):
        return self(batch, training=training)

    def batch_loss(self, batch, outputs, training=False):
        """{"loss", "loss_bits_per_dim"}: bits per sub-pixel (divided by H*W*C)."""
        labels = self.inputs_from_batch(batch, training)[3]
        loss = bits_per_dim(labels, outputs["logits"])
        return {"loss": loss, "loss_bits_per_dim": loss}

    def sample(self, batch, previous=None, mode: str = "argmax", seed=None):
        """This stage's output for an example dict and the previous stage's output
        (None: conditioned on the batch's ground truth): (B, R, R, 3) uint8.
        The colorizer's sampler (sampling.sample_colorizer) takes the same
        batch; the pipeline chains all three (sampling/pipeline.py)."""
        return self.sample_channels(*self.sample_inputs(batch, previous), mode=mode,
                                    seed=seed)

    def sample_channels(self, gray, channels, mode: str = "argmax", seed=None,
                        max_pixels: int = 65536):
        """One parallel pass -> (B, H, W, C) uint8, by argmax or categorical sampling.

        Memory stays bounded whatever the batch: images are processed in
        chunks of at most `max_pixels` pixels (at least one image) and the
        channels one after the other, so the paper's spatial upsampler at
        256x256 never holds more than one image's activations of one channel.
        Results do not depend on the chunking in argmax mode.
        """
        if mode not in SAMPLE_MODES:
            raise ValueError(f"mode={mode!r} is not supported; choose one of {SAMPLE_MODES}.")
        gray = ops.convert_to_tensor(gray, "int32")
        channels = ops.cast(ops.convert_to_tensor(channels), "int32")
        height, width = int(gray.shape[1]), int(gray.shape[2])
        chunk = max(1, max_pixels // (height * width))
        outputs = []
        for start in range(0, int(gray.shape[0]), chunk):
            per_channel = []
            for c in range(int(channels.shape[-1])):
                chunk_seed = None if seed is None else int(seed) + 3 * start + c
                per_channel.append(self._channel_pass(
                    gray[start:start + chunk], channels[start:start + chunk, ..., c], c,
                    mode, chunk_seed))
            outputs.append(ops.stack(per_channel, axis=-1))
        return ops.concatenate(outputs, axis=0)

    def _channel_pass(self, gray, channel, offset, mode, seed):
        gray_embedding = self.gray_embedding(gray[..., 0])
        logits = self.channel_logits(gray_embedding, channel, offset)
        if mode == "argmax":
            return ops.cast(ops.argmax(logits, axis=-1), "uint8")
        shape = ops.shape(logits)
        flat = ops.reshape(logits, (-1, NUM_OUTPUT_LEVELS))
        samples = keras.random.categorical(flat, 1, seed=seed)
        return ops.cast(ops.reshape(samples, shape[:-1]), "uint8")

    def get_config(self):
        config = super().get_config()
        config.update(resolution=self.resolution, hidden_size=self.hidden_size,
                      ff_size=self.ff_size, num_heads=self.num_heads,
                      num_encoder_layers=self.num_encoder_layers, dropout=self.dropout,
                      downsample=self.downsample, low_resolution=self.low_resolution)
        return config
