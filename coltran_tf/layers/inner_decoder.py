"""ColTran's inner decoder: pixels to the left in the current row (Kumar et al.
2021, Sec. 4.2)."""

import keras
from keras import ops

from coltran_tf.layers import decoding
from coltran_tf.layers.decoder_blocks import AxialDecoder, DecoderAttentionBlock, DecoderMLPBlock


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
    reference sampler feeds only the current row of z there).
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

    # -- incremental decoding: one pixel at a time -------------------------------------

    def empty_caches(self, batch):
        """Per block, the keys and values of the pixels decoded so far in the row
        ((B, heads, W, depth) each) or () (nothing to keep)."""
        return tuple(block.empty_cache(batch) for block in self.blocks)

    def norm_conditions(self, norm_context):
        """Per block, its conditional norm's (scale, shift) pooled over
        `norm_context`: the image's z, or the current row's (the original
        sampler's quirk)."""
        return [block.norm_conditions(norm_context) for block in self.blocks]

    def step_constants(self):
        """Per block, what its pixel steps need once per image (weights, biases)."""
        return [block.step_constants() for block in self.blocks]

    def start_row(self, z_row, upper_row, row, constants, norm_conditions):
        """What every pixel of row `row` needs: each input's additive offset
        (position embedding [+ z + upper], (W, B, D)), each block's conditioning
        at every column, and the norms' conditions as (B, D)."""
        position = self.position_embedding
        table = ops.take(position.row_embedding, row, axis=0) + position.column_embedding
        table = ops.cast(table, self.compute_dtype)
        offsets = decoding.columns_first(ops.broadcast_to(table, (1, 1, self.width,
                                                                  self.hidden_size)))
        if self.skip:
            offsets = offsets + decoding.columns_first(z_row + upper_row)
        context = ops.concatenate([z_row, upper_row], axis=-1)  # (B, 1, W, 2D)
        states = [block.step_state(context, c) for block, c in zip(self.blocks, constants)]
        norms = [decoding.flat_conditions(n) for n in norm_conditions]
        return offsets, states, norms

    def step(self, previous, col, caches, row_state, in_place=True):
        """Pixel `col` of the row that start_row() began.

        Args:
          previous: (B, D) the embedding of pixel `col` - 1 (zeros at column 0:
            the shift right of `call`).
          col: scalar int tensor.
          caches: empty_caches(), as returned by the previous step.

        Returns:
          ((B, D) the decoder's output at the pixel, updated caches).
        """
        offsets, states, norms = row_state
        x = previous + offsets[col]
        updated = []
        for block, cache, state, conditions in zip(self.blocks, caches, states, norms):
            x, cache = block.step(x, col, cache, state, conditions, in_place)
            updated.append(cache)
        return x, tuple(updated)
