"""ColTran's outer decoder: context from the rows above (spec COLTRAN.md §4.4)."""

import keras
from keras import ops

from coltran_tf.layers.decoder_blocks import (AxialDecoder, DecoderAttentionBlock,
                                               DecoderMLPBlock)


def shift_down(x):
    """(B, H, W, D): row i <- row i-1, row 0 <- zeros."""
    return ops.pad(x[:, :-1], [[0, 0], [1, 0], [0, 0], [0, 0]])


@keras.saving.register_keras_serializable(package="coltran_tf")
class OuterDecoder(AxialDecoder):
    """x = pos(pixel_emb) [+ z]; per layer: unmasked row attention, FFN, masked
    column attention, FFN, all conditioned on z; then shift down by one row.

    call(embeddings (B, H, W, D), z (B, H, W, D)) -> (B, H, W, D), where output
    row i depends only on pixel rows < i.
    """

    def layer_blocks(self, i, common):
        hidden, heads = self.hidden_size, self.num_heads
        return [
            DecoderAttentionBlock(hidden, heads, "row", None, name=f"row_attention_{i}",
                                  **common),
            DecoderMLPBlock(hidden, self.ff_size, name=f"row_mlp_{i}", **common),
            DecoderAttentionBlock(hidden, heads, "column", "future",
                                  name=f"column_attention_{i}", **common),
            DecoderMLPBlock(hidden, self.ff_size, name=f"column_mlp_{i}", **common),
        ]

    def embed(self, embeddings, z):
        x = self.position_embedding(embeddings)
        return x + z if self.skip else x

    def call(self, embeddings, z, training=False):
        x = self.embed(embeddings, z)
        for block in self.blocks:
            x = block(x, context=z, norm_context=z, training=training)
        return shift_down(x)
