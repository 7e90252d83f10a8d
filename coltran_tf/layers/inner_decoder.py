"""ColTran's inner decoder: pixels to the left in the current row (spec §4.5)."""

import keras
from keras import ops

from coltran_tf.layers.decoder_blocks import (AxialDecoder, DecoderAttentionBlock,
                                               DecoderMLPBlock)


def shift_right(x):
    """(B, H, W, D): column j <- column j-1, column 0 <- zeros."""
    return ops.pad(x[:, :, :-1], [[0, 0], [0, 0], [1, 0], [0, 0]])


@keras.saving.register_keras_serializable(package="coltran_tf")
class InnerDecoder(AxialDecoder):
    """x = pos(shift_right(pixel_emb)) [+ z + upper]; per layer: masked row
    attention and FFN, conditioned on concat(z, upper); conditional norms on z.

    call(embeddings, upper, z) with all (B, H, W, D) -> (B, H, W, D); the output
    at (i, j) depends on pixels (i, < j) and on `upper` at row i. While
    sampling, the inputs may be a single row (B, 1, W, D) with `row` giving its
    index; `norm_context` overrides what the conditional norms pool (the
    reference sampler feeds only the current row of z there, spec §5).
    """

    def layer_blocks(self, i, common):
        return [
            DecoderAttentionBlock(self.hidden_size, self.num_heads, "row", "future",
                                  name=f"row_attention_{i}", **common),
            DecoderMLPBlock(self.hidden_size, self.ff_size, name=f"row_mlp_{i}", **common),
        ]

    def embed(self, embeddings, upper, z, row=None):
        x = self.position_embedding(shift_right(embeddings), row=row)
        return x + z + upper if self.skip else x

    def call(self, embeddings, upper, z, norm_context=None, row=None, training=False):
        x = self.embed(embeddings, upper, z, row=row)
        context = ops.concatenate([z, upper], axis=-1)
        norm_context = z if norm_context is None else norm_context
        for block in self.blocks:
            x = block(x, context=context, norm_context=norm_context, training=training)
        return x
