"""Factorised 2-D position embedding: a learned row table plus a learned column
table, as in the Axial Transformer (Ho et al. 2019) that ColTran builds on."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="coltran_tf")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned row table (H, 1, D) and a learned column table (W, D).

    Input and output: (B, H, W, D). With `row` given, the input is a single row
    (B, 1, W, D) and only that row's embedding is added (used while sampling).
    """

    def __init__(self, height: int, width: int, hidden_size: int, **kwargs):
        super().__init__(**kwargs)
        self.height = height
        self.width = width
        self.hidden_size = hidden_size

    def build(self, input_shape=None):
        init = keras.initializers.RandomNormal(stddev=self.hidden_size**-0.5)
        self.row_embedding = self.add_weight(
            name="row_embedding", shape=(self.height, 1, self.hidden_size), initializer=init
        )
        self.column_embedding = self.add_weight(
            name="column_embedding", shape=(self.width, self.hidden_size), initializer=init
        )

    def call(self, inputs, row=None):
        if row is None:
            row_table = self.row_embedding
        else:
            row_table = ops.expand_dims(ops.take(self.row_embedding, row, axis=0), 0)
        # Same addition order as the original: (x + rows) + columns.
        return inputs + row_table + self.column_embedding

    def get_config(self):
        config = super().get_config()
        config.update(height=self.height, width=self.width, hidden_size=self.hidden_size)
        return config
