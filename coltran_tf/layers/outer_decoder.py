"""ColTran's outer decoder: context from the rows above (spec COLTRAN.md §4.4)."""

import keras
from keras import ops

from coltran_tf.layers.conditioning import resolve_conditioning
from coltran_tf.layers.decoder_blocks import DecoderAttentionBlock, DecoderMLPBlock
from coltran_tf.layers.position_embedding import PositionEmbedding


def shift_down(x):
    """(B, H, W, D): row i <- row i-1, row 0 <- zeros."""
    return ops.pad(x[:, :-1], [[0, 0], [1, 0], [0, 0], [0, 0]])


@keras.saving.register_keras_serializable(package="coltran_tf")
class OuterDecoder(keras.layers.Layer):
    """x = pos(pixel_emb) [+ z]; per layer: unmasked row attention, FFN, masked
    column attention, FFN, all conditioned on z; then shift down by one row.

    call(embeddings (B, H, W, D), z (B, H, W, D)) -> (B, H, W, D), where output
    row i depends only on pixel rows < i.
    """

    def __init__(self, hidden_size: int, ff_size: int, num_heads: int, num_layers: int,
                 height: int, width: int, dropout: float = 0.0, skip: bool = True,
                 conditioning: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.ff_size = ff_size
        self.num_heads = num_heads
        self.num_layers = num_layers
        self.height = height
        self.width = width
        self.dropout = dropout
        self.skip = skip
        self.conditioning = resolve_conditioning(conditioning)
        self.position_embedding = PositionEmbedding(height, width, hidden_size,
                                                    name="position_embedding")
        common = dict(height=height, width=width, dropout=dropout,
                      conditioning=self.conditioning)
        self.blocks = []
        for i in range(num_layers):
            self.blocks += [
                DecoderAttentionBlock(hidden_size, num_heads, "row", None,
                                      name=f"row_attention_{i}", **common),
                DecoderMLPBlock(hidden_size, ff_size, name=f"row_mlp_{i}", **common),
                DecoderAttentionBlock(hidden_size, num_heads, "column", "future",
                                      name=f"column_attention_{i}", **common),
                DecoderMLPBlock(hidden_size, ff_size, name=f"column_mlp_{i}", **common),
            ]

    def embed(self, embeddings, z):
        x = self.position_embedding(embeddings)
        return x + z if self.skip else x

    def call(self, embeddings, z, training=False):
        x = self.embed(embeddings, z)
        for block in self.blocks:
            x = block(x, context=z, norm_context=z, training=training)
        return shift_down(x)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, ff_size=self.ff_size,
                      num_heads=self.num_heads, num_layers=self.num_layers,
                      height=self.height, width=self.width, dropout=self.dropout,
                      skip=self.skip, conditioning=self.conditioning)
        return config
