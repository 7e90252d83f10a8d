"""The axial-attention encoder of the colorizer and of both upsamplers (Kumar et
al. 2021, Sec. 4.1 and 4.4: row then column attention per layer, no masks)."""

import keras

from coltran_tf.layers.axial_attention import AxialAttention
from coltran_tf.layers.feed_forward import FeedForward
from coltran_tf.layers.position_embedding import PositionEmbedding
from coltran_tf.layers.residual import PostLNResidual


@keras.saving.register_keras_serializable(package="coltran_tf")
class AxialEncoderLayer(keras.layers.Layer):
    """Row attention, FFN, column attention, FFN; each a post-LN residual."""

    def __init__(self, hidden_size: int, ff_size: int, num_heads: int, height: int,
                 width: int, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.ff_size = ff_size
        self.num_heads = num_heads
        self.height = height
        self.width = width
        self.dropout = dropout
        self.row_attention = AxialAttention(hidden_size, num_heads, "row", width,
                                            name="row_attention")
        self.row_attention_residual = PostLNResidual(hidden_size, dropout,
                                                     name="row_attention_residual")
        self.row_mlp = FeedForward(hidden_size, ff_size, name="row_mlp")
        self.row_mlp_residual = PostLNResidual(hidden_size, dropout, name="row_mlp_residual")
        self.column_attention = AxialAttention(hidden_size, num_heads, "column", height,
                                               name="column_attention")
        self.column_attention_residual = PostLNResidual(hidden_size, dropout,
                                                        name="column_attention_residual")
        self.column_mlp = FeedForward(hidden_size, ff_size, name="column_mlp")
        self.column_mlp_residual = PostLNResidual(hidden_size, dropout,
                                                  name="column_mlp_residual")

    def call(self, x, training=False):
        x = self.row_attention_residual(x, self.row_attention(x), training=training)
        x = self.row_mlp_residual(x, self.row_mlp(x), training=training)
        x = self.column_attention_residual(x, self.column_attention(x), training=training)
        return self.column_mlp_residual(x, self.column_mlp(x), training=training)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, ff_size=self.ff_size,
                      num_heads=self.num_heads, height=self.height, width=self.width,
                      dropout=self.dropout)
        return config


@keras.saving.register_keras_serializable(package="coltran_tf")
class AxialEncoder(keras.layers.Layer):
    """Position embedding, then `num_layers` unmasked AxialEncoderLayers.

    (B, H, W, D) -> (B, H, W, D). The original calls it FactorizedAttention.
    """

    def __init__(self, hidden_size: int, ff_size: int, num_heads: int, num_layers: int,
                 height: int, width: int, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.ff_size = ff_size
        self.num_heads = num_heads
        self.num_layers = num_layers
        self.height = height
        self.width = width
        self.dropout = dropout
        self.position_embedding = PositionEmbedding(height, width, hidden_size,
                                                    name="position_embedding")
        self.encoder_layers = [
            AxialEncoderLayer(hidden_size, ff_size, num_heads, height, width, dropout,
                              name=f"layer_{i}")
            for i in range(num_layers)
        ]

    def call(self, x, training=False):
        x = self.position_embedding(x)
        for layer in self.encoder_layers:
            x = layer(x, training=training)
        return x

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, ff_size=self.ff_size,
                      num_heads=self.num_heads, num_layers=self.num_layers,
                      height=self.height, width=self.width, dropout=self.dropout)
        return config
