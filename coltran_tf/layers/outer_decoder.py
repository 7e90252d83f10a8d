"""ColTran's outer decoder: context from the rows above (Kumar et al. 2021, Sec. 4.2)."""

import keras
from keras import ops

from coltran_tf.layers.decoder_blocks import AxialDecoder, DecoderAttentionBlock, DecoderMLPBlock


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

    # -- incremental decoding: one row at a time ------------------------------------

    def empty_caches(self, batch):
        """Per block, the keys and values of the rows decoded so far (masked column
        attention: (B, W, heads, H, depth) each) or () (nothing to keep)."""
        return tuple(block.empty_cache(batch, lines=self.width) for block in self.blocks)

    def norm_conditions(self, z):
        """Per block, its conditional norm's (scale, shift) of the image (or None)."""
        return [block.norm_conditions(z) for block in self.blocks]

    def decode_row(self, embeddings, z_row, row, caches, norm_conditions, in_place=True):
        """Row `row` of `call`'s output before the shift down, computed alone.

        Args:
          embeddings: (B, 1, W, D) pixel embeddings of row `row`.
          z_row: (B, 1, W, D) the encoder output of that row.
          row: scalar int tensor.
          caches, norm_conditions: empty_caches() (updated by earlier rows) and
            norm_conditions(z).

        Returns:
          ((B, 1, W, D): the context of row `row` + 1, updated caches).
        """
        x = self.position_embedding(embeddings, row=row)
        x = x + z_row if self.skip else x
        updated = []
        for block, cache, conditions in zip(self.blocks, caches, norm_conditions):
            x, cache = block.decode_row(x, z_row, row, cache, conditions, in_place)
            updated.append(cache)
        return x, tuple(updated)
