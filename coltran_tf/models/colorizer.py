"""ColTran core: the autoregressive colorizer (Kumar et al. 2021, Sec. 4.1-4.3)."""

import keras
from keras import ops

from coltran_tf.data import keys
from coltran_tf.layers.axial_encoder import AxialEncoder
from coltran_tf.layers.conditioning import resolve_conditioning
from coltran_tf.layers.inner_decoder import InnerDecoder
from coltran_tf.layers.layer_norm import LayerNorm
from coltran_tf.layers.outer_decoder import OuterDecoder
from coltran_tf.layers.symbol_embedding import SymbolEmbedding
from coltran_tf.models.losses import bits_per_dim
from coltran_tf.utils import image_ops

ARCHITECTURES = ("decoder", "encoder_decoder")  # config.model.stage: without / with encoder
NUM_GRAY_LEVELS = 256


@keras.saving.register_keras_serializable(package="coltran_tf")
class ColTranCore(keras.Model):
    """Grayscale (B, R, R) -> logits over 512 coarse colours per pixel.

    Encoder on one_hot(gray); optional parallel head; outer decoder (rows
    above) and inner decoder (pixels to the left); final LayerNorm and Dense.
    `stage="decoder"` drops the parallel head (and its loss).
    """


    def __init__(self, resolution: int = 64, hidden_size: int = 512,
                 stage: str = "encoder_decoder", encoder_ff_size: int = 512,
                 encoder_num_heads: int = 4, num_encoder_layers: int = 4,
                 encoder_dropout: float = 0.0, decoder_ff_size: int = 512,
                 decoder_num_heads: int = 4, num_outer_layers: int = 2,
                 num_inner_layers: int = 2, decoder_dropout: float = 0.0,
                 skip: bool = True, conditioning: dict | None = None,
                 loss_factor: float = 0.99, encoder_loss_factor: float = 0.01,
                 downsample: bool = True, source_resolution: int = 256, **kwargs):
        kwargs.setdefault("name", "coltran_core")
        super().__init__(**kwargs)
        if stage not in ARCHITECTURES:
            raise ValueError(f"stage={stage!r} is not supported; choose one of "
                             f"{list(ARCHITECTURES)}.")
        self.resolution = resolution
        self.hidden_size = hidden_size
        self.stage = stage
        self.encoder_ff_size = encoder_ff_size
        self.encoder_num_heads = encoder_num_heads
        self.num_encoder_layers = num_encoder_layers
        self.encoder_dropout = encoder_dropout
        self.decoder_ff_size = decoder_ff_size
        self.decoder_num_heads = decoder_num_heads
        self.num_outer_layers = num_outer_layers
        self.num_inner_layers = num_inner_layers
        self.decoder_dropout = decoder_dropout
        self.skip = skip
        self.conditioning = resolve_conditioning(conditioning)
        self.loss_factor = loss_factor
        self.encoder_loss_factor = encoder_loss_factor
        self.downsample = downsample
        # The side of the images its inputs are area-downsampled from (the
        # spatial upsampler's resolution in the pipeline).
        self.source_resolution = source_resolution
        self.num_symbols = image_ops.NUM_COARSE_SYMBOLS
        res = resolution

        self.gray_embedding = SymbolEmbedding(NUM_GRAY_LEVELS, hidden_size, use_bias=True,
                                              name="gray_embedding")
        self.encoder = AxialEncoder(hidden_size, encoder_ff_size, encoder_num_heads,
                                    num_encoder_layers, res, res, encoder_dropout,
                                    name="encoder")
        if self.has_parallel_head:
            self.parallel_logits = keras.layers.Dense(self.num_symbols, use_bias=False,
                                                      name="parallel_logits")
        self.pixel_embedding = SymbolEmbedding(self.num_symbols, hidden_size,
                                               name="pixel_embedding")
        decoder_args = dict(hidden_size=hidden_size, ff_size=decoder_ff_size,
                            num_heads=decoder_num_heads, height=res, width=res,
                            dropout=decoder_dropout, skip=skip, conditioning=self.conditioning)
        self.outer_decoder = OuterDecoder(num_layers=num_outer_layers, name="outer_decoder",
                                          **decoder_args)
        self.inner_decoder = InnerDecoder(num_layers=num_inner_layers, name="inner_decoder",
                                          **decoder_args)
        self.final_norm = LayerNorm(epsilon=1e-3, name="final_norm")
        self.auto_logits = keras.layers.Dense(self.num_symbols, name="auto_logits")

    @property
    def has_parallel_head(self) -> bool:
        return self.stage == "encoder_decoder"

    @property
    def input_key(self) -> str:
        return keys.targets(self.resolution if self.downsample else None)

    def sample_inputs(self, batch, previous=None):
        """(gray,): the batch's grayscale at the colorizer's resolution (the first
        stage has no previous one)."""
        return (image_ops.rgb_to_grayscale(batch[self.input_key]),)

    # -- pieces (also used by the samplers) -----------------------------------

    def encode(self, gray, training=False):
        """(B, R, R, 1) int gray -> z (B, R, R, D)."""
        return self.encoder(self.gray_embedding(gray[..., 0]), training=training)

    def parallel_head(self, z):
        """z -> (B, R, R, 1, 512) parallel-head logits."""
        return ops.expand_dims(ops.cast(self.parallel_logits(z), "float32"), axis=-2)

    def final_logits(self, activations):
        """Inner-decoder activations (..., D) -> (..., 512) float32 logits (the
        losses and the samplers' probabilities stay float32 in bfloat16)."""
        return ops.cast(self.auto_logits(self.final_norm(activations)), "float32")

    def decode(self, symbols, z, training=False):
        """Teacher-forced logits (B, R, R, 1, 512) for (B, R, R) symbols."""
        embeddings = self.pixel_embedding(symbols)
        upper = self.outer_decoder(embeddings, z, training=training)
        inner = self.inner_decoder(embeddings, upper, z, training=training)
        return ops.expand_dims(self.final_logits(inner), axis=-2)

    # -- Keras entry points ---------------------------------------------------

    def call(self, rgb, training=False):
        """(B, R, R, 3) 8-bit RGB -> {"logits", ["encoder_logits"]}."""
        z = self.encode(image_ops.rgb_to_grayscale(rgb), training=training)
        outputs = {"logits": self.decode(image_ops.rgb_to_coarse_symbols(rgb), z, training)}
        if self.has_parallel_head:
            outputs["encoder_logits"] = self.parallel_head(z)
        return outputs

    def compute_outputs(self, batch, training=False):
        """Logits from an example dict of the data pipeline (data/keys.py)."""
        return self(batch[self.input_key], training=training)

    def batch_loss(self, batch, outputs, training=False):
        """{"loss" (weighted total), "loss_bits_per_dim", ["encoder_loss_bits_per_dim"]}."""
        labels = ops.expand_dims(image_ops.rgb_to_coarse_symbols(batch[self.input_key]), -1)
        decoder_loss = bits_per_dim(labels, outputs["logits"])
        losses = {"loss_bits_per_dim": decoder_loss, "loss": self.loss_factor * decoder_loss}
        if self.has_parallel_head:
            encoder_loss = bits_per_dim(labels, outputs["encoder_logits"])
            losses["encoder_loss_bits_per_dim"] = encoder_loss
            losses["loss"] = losses["loss"] + self.encoder_loss_factor * encoder_loss
        return losses

    def dummy_inputs(self):
        res = self.resolution
        return {self.input_key: keras.KerasTensor((1, res, res, 3), dtype="int32")}

    def get_config(self):
        config = super().get_config()
        config.update(
            resolution=self.resolution, hidden_size=self.hidden_size, stage=self.stage,
            encoder_ff_size=self.encoder_ff_size, encoder_num_heads=self.encoder_num_heads,
            num_encoder_layers=self.num_encoder_layers, encoder_dropout=self.encoder_dropout,
            decoder_ff_size=self.decoder_ff_size, decoder_num_heads=self.decoder_num_heads,
            num_outer_layers=self.num_outer_layers, num_inner_layers=self.num_inner_layers,
            decoder_dropout=self.decoder_dropout, skip=self.skip,
            conditioning=self.conditioning, loss_factor=self.loss_factor,
            encoder_loss_factor=self.encoder_loss_factor, downsample=self.downsample,
            source_resolution=self.source_resolution,
        )
        return config
