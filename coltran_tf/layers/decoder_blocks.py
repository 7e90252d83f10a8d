"""Conditional decoder sub-blocks: attention or MLP, each with its post-LN residual.

Every block takes `context` (what attention and MLP are conditioned on) and
`norm_context` (what the conditional LayerNorm pools), which differ in the
inner decoder (Kumar et al. 2021, Sec. 4.2-4.3: the inner decoder conditions
on the encoder output and the outer decoder's context, its layer norms on
the encoder output).

Both block kinds share one decoding interface, so the decoders step through
them without asking which kind they are: `empty_cache`, `norm_conditions`,
`decode_row` (a whole row against the rows above: the outer decoder) and
`step_constants` / `step_state` / `step` (one pixel against the pixels on the
left: the inner decoder).
"""

import keras

from coltran_tf.layers.axial_attention import AxialAttention
from coltran_tf.layers.conditioning import cond_att_kwargs, cond_ln_kwargs, resolve_conditioning
from coltran_tf.layers.feed_forward import ConditionalFeedForward, FeedForward
from coltran_tf.layers.position_embedding import PositionEmbedding
from coltran_tf.layers.residual import PostLNResidual


def _norm_conditions(residual, norm_context):
    return residual.norm.condition(norm_context) if residual.conditional else None


def _residual(hidden_size, dropout, height, width, conditioning):
    return PostLNResidual(
        hidden_size, dropout, conditional=conditioning["cond_ln"], height=height,
        width=width, cond_ln_kwargs=cond_ln_kwargs(conditioning), name="residual",
    )


@keras.saving.register_keras_serializable(package="coltran_tf")
class DecoderAttentionBlock(keras.layers.Layer):
    """x <- Norm(x + AxialAttention(x | context)) with optional conditioning."""

    def __init__(self, hidden_size: int, num_heads: int, axis: str, mask: str | None,
                 height: int, width: int, dropout: float = 0.0,
                 conditioning: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.axis = axis
        self.mask = mask
        self.height = height
        self.width = width
        self.dropout = dropout
        self.conditioning = resolve_conditioning(conditioning)
        length = width if axis == "row" else height
        self.attention = AxialAttention(hidden_size, num_heads, axis, length, mask=mask,
                                        name="attention", **cond_att_kwargs(self.conditioning))
        self.residual = _residual(hidden_size, dropout, height, width, self.conditioning)

    def call(self, x, context=None, norm_context=None, norm_conditions=None, training=False):
        att_context = context if self.attention.is_conditional else None
        y = self.attention(x, context=att_context)
        return self.residual(x, y, context=norm_context, conditions=norm_conditions,
                             training=training)

    # -- incremental decoding -------------------------------------------------------

    def norm_conditions(self, norm_context):
        """The conditional norm's (scale, shift) for `norm_context` (None if plain)."""
        return _norm_conditions(self.residual, norm_context)

    def empty_cache(self, batch, lines=None):
        """(keys, values) of a masked attention; () for unmasked (nothing to keep)."""
        return self.attention.empty_cache(batch, lines) if self.mask == "future" else ()

    def decode_row(self, x, context, row, cache, norm_conditions, in_place=True):
        """Row `row` (B, 1, W, D): unmasked row attention over the row itself, or
        masked column attention over the cached rows above. -> (out, cache)."""
        if cache:
            y, cache = self.attention(x, context=context, cache=cache, cache_update_index=row,
                                      in_place=in_place)
        else:
            y = self.attention(x, context=context if self.attention.is_conditional else None)
        return self.residual(x, y, conditions=norm_conditions), cache

    def step_constants(self):
        return self.attention.step_constants()

    def step_state(self, context, constants):
        """What every pixel step of one row needs: constants and the row's conditions."""
        return constants, self.attention.step_conditions(context)

    def step(self, x, index, cache, state, norm_conditions, in_place=True):
        """Pixel `index` (B, D) of a row -> ((B, D), cache)."""
        constants, conditions = state
        y, cache = self.attention.step(x, index, cache, constants, conditions, in_place)
        return self.residual(x, y, conditions=norm_conditions), cache

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, num_heads=self.num_heads, axis=self.axis,
                      mask=self.mask, height=self.height, width=self.width,
                      dropout=self.dropout, conditioning=self.conditioning)
        return config


@keras.saving.register_keras_serializable(package="coltran_tf")
class DecoderMLPBlock(keras.layers.Layer):
    """x <- Norm(x + FFN(x) [modulated by context])."""

    def __init__(self, hidden_size: int, ff_size: int, height: int, width: int,
                 dropout: float = 0.0, conditioning: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.ff_size = ff_size
        self.height = height
        self.width = width
        self.dropout = dropout
        self.conditioning = resolve_conditioning(conditioning)
        mode = self.conditioning["cond_mlp"]
        if mode:
            self.mlp = ConditionalFeedForward(hidden_size, ff_size, mode,
                                              self.conditioning["cond_mlp_act"], name="mlp")
        else:
            self.mlp = FeedForward(hidden_size, ff_size, name="mlp")
        self.residual = _residual(hidden_size, dropout, height, width, self.conditioning)

    @property
    def is_conditional(self) -> bool:
        return bool(self.conditioning["cond_mlp"])

    def call(self, x, context=None, norm_context=None, norm_conditions=None, training=False):
        y = self.mlp(x, context) if self.is_conditional else self.mlp(x)
        return self.residual(x, y, context=norm_context, conditions=norm_conditions,
                             training=training)

    # -- incremental decoding (see DecoderAttentionBlock) -----------------------------

    def norm_conditions(self, norm_context):
        return _norm_conditions(self.residual, norm_context)

    def empty_cache(self, batch, lines=None):
        return ()

    def decode_row(self, x, context, row, cache, norm_conditions, in_place=True):
        y = self.mlp(x, context) if self.is_conditional else self.mlp(x)
        return self.residual(x, y, conditions=norm_conditions), cache

    def step_constants(self):
        return None

    def step_state(self, context, constants):
        return self.mlp.step_conditions(context) if self.is_conditional else None

    def step(self, x, index, cache, state, norm_conditions, in_place=True):
        return self.residual(x, self.mlp.step(x, index, state), conditions=norm_conditions), cache

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, ff_size=self.ff_size, height=self.height,
                      width=self.width, dropout=self.dropout, conditioning=self.conditioning)
        return config


class AxialDecoder(keras.layers.Layer):
    """Shared constructor and config of the outer and inner decoders.

    Subclasses list the blocks of decoder layer `i` in `layer_blocks`.
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
        self.blocks = [block for i in range(num_layers) for block in self.layer_blocks(i, common)]

    def layer_blocks(self, index: int, common: dict) -> list:
        raise NotImplementedError

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, ff_size=self.ff_size,
                      num_heads=self.num_heads, num_layers=self.num_layers,
                      height=self.height, width=self.width, dropout=self.dropout,
                      skip=self.skip, conditioning=self.conditioning)
        return config
