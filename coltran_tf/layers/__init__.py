"""Keras 3 building blocks of ColTran (Kumar et al. 2021, Sec. 3-4)."""

from coltran_tf.layers.axial_attention import AxialAttention
from coltran_tf.layers.axial_encoder import AxialEncoder, AxialEncoderLayer
from coltran_tf.layers.conditional_layer_norm import ConditionalLayerNorm
from coltran_tf.layers.decoder_blocks import DecoderAttentionBlock, DecoderMLPBlock
from coltran_tf.layers.feed_forward import ConditionalFeedForward, FeedForward
from coltran_tf.layers.inner_decoder import InnerDecoder
from coltran_tf.layers.layer_norm import LayerNorm
from coltran_tf.layers.outer_decoder import OuterDecoder
from coltran_tf.layers.position_embedding import PositionEmbedding
from coltran_tf.layers.residual import PostLNResidual
from coltran_tf.layers.symbol_embedding import SymbolEmbedding

__all__ = [
    "AxialAttention", "AxialEncoder", "AxialEncoderLayer", "ConditionalLayerNorm",
    "DecoderAttentionBlock", "DecoderMLPBlock", "ConditionalFeedForward", "FeedForward",
    "InnerDecoder", "LayerNorm", "OuterDecoder", "PositionEmbedding", "PostLNResidual",
    "SymbolEmbedding",
]
