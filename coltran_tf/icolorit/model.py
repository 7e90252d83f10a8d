"""The iColoriT model (Yun et al. 2023, Sec. 3): 4-channel input -> patch embedding + fixed 1-D
sinusoidal positions -> pre-norm ViT blocks with relative position bias ->
final LayerNorm -> local stabilizing head -> normalized ab."""

import keras
import numpy as np
from keras import ops

from coltran_tf.icolorit.block import LAYER_NORM_EPS, TransformerBlock
from coltran_tf.icolorit.head import LocalStabilizingHead, pixel_shuffle
from coltran_tf.icolorit.patch_embedding import PatchEmbedding
from coltran_tf.utils.precision import policy_scope

IMAGE_SIZE = 224
HINT_SIZE = 2  # hints are 2x2 cells on the even grid: 112 x 112 cells

# Yun et al. 2023, Sec. 4 and Table 1. "micro" is a test size, not a paper model.
PRESETS = {
    "T": {"patch_size": 16, "hidden_size": 192, "depth": 12, "num_heads": 3},
    "S": {"patch_size": 16, "hidden_size": 384, "depth": 12, "num_heads": 6},
    "B": {"patch_size": 16, "hidden_size": 768, "depth": 12, "num_heads": 12},
    "T-patch8": {"patch_size": 8, "hidden_size": 192, "depth": 12, "num_heads": 3},
    "T-patch32": {"patch_size": 32, "hidden_size": 192, "depth": 12, "num_heads": 3},
    "micro": {"patch_size": 16, "hidden_size": 32, "depth": 1, "num_heads": 2},
}
OFFICIAL_NAMES = {  # registered names of the official code -> preset
    "icolorit_tiny_4ch_patch16_224": "T", "icolorit_small_4ch_patch16_224": "S",
    "icolorit_base_4ch_patch16_224": "B", "icolorit_tiny_4ch_patch8_224": "T-patch8",
    "icolorit_tiny_4ch_patch32_224": "T-patch32",
}


def sinusoidal_positions(tokens: int, hidden: int) -> np.ndarray:
    """(N, d) float32: angle = p / 10000^(2 floor(j/2) / d), sin at even j, cos at
    odd j (interleaved), built in float64 (Sec. 3.2: sinusoidal position encoding)."""
    position = np.arange(tokens, dtype=np.float64)[:, None]
    exponent = 2 * (np.arange(hidden) // 2) / hidden
    angle = position / np.power(10000.0, exponent)[None]
    table = np.where(np.arange(hidden)[None] % 2 == 0, np.sin(angle), np.cos(angle))
    return table.astype(np.float32)


def _torch_default_uniform(fan_in: int):
    """PyTorch's Conv2d default init U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (the official
    patch embedding is a Conv2d)."""
    limit = 1.0 / np.sqrt(fan_in)
    return keras.initializers.RandomUniform(-limit, limit)


@keras.saving.register_keras_serializable(package="coltran_tf.icolorit")
class IColoriT(keras.Model):
    """(B, 224, 224, 4) [L_n, a_hint, b_hint, hint_mask] -> (B, 224, 224, 2) ab / 110.

    `tokens()` gives the official model's output, (B, N, 2P²) after tanh.
    """

    def __init__(self, patch_size: int = 16, hidden_size: int = 192, depth: int = 12,
                 num_heads: int = 3, mlp_ratio: int = 4, image_size: int = IMAGE_SIZE,
                 drop_path: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size} is not a multiple of "
                             f"patch_size={patch_size}.")
        self.patch_size, self.hidden_size, self.depth = patch_size, hidden_size, depth
        self.num_heads, self.mlp_ratio, self.image_size = num_heads, mlp_ratio, image_size
        self.drop_path = drop_path
        self.grid = image_size // patch_size
        fan_in = 4 * patch_size**2
        self.patch_embed = PatchEmbedding(
            patch_size, hidden_size, channels=4,
            kernel_initializer=_torch_default_uniform(fan_in),
            bias_initializer=_torch_default_uniform(fan_in), name="patch_embed")
        # Drop-path grows linearly from 0 at the first block to `drop_path` at the last.
        rates = np.linspace(0.0, drop_path, depth) if depth > 1 else [drop_path]
        self.blocks = [TransformerBlock(hidden_size, num_heads, self.grid, mlp_ratio,
                                        float(rate), name=f"block_{i}")
                       for i, rate in enumerate(rates)]
        self.norm = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPS, name="norm")
        self.head = LocalStabilizingHead(patch_size, self.grid, hidden_size, name="head")
        self._positions = sinusoidal_positions(self.grid**2, hidden_size)

    def build(self, input_shape=None):
        size = self.image_size
        self.patch_embed.build((None, size, size, 4))
        token_shape = (None, self.grid**2, self.hidden_size)
        for block in self.blocks:
            block.build(token_shape)
        self.norm.build(token_shape)
        self.head.build(token_shape)
        self.built = True

    def tokens(self, inputs, training=False):
        """(B, 224, 224, 4) -> (B, N, 2P²) in (-1, 1)."""
        x = self.patch_embed(ops.cast(inputs, "float32"))
        x = x + ops.cast(self._positions, x.dtype)
        for block in self.blocks:
            x = block(x, training=training)
        return self.head(self.norm(x))

    def call(self, inputs, training=False):
        """(B, 224, 224, 4) -> (B, 224, 224, 2) float32 ab (in bfloat16 too)."""
        tokens = ops.cast(self.tokens(inputs, training=training), "float32")
        return pixel_shuffle(tokens, self.grid, self.patch_size)

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size,
                "hidden_size": self.hidden_size, "depth": self.depth,
                "num_heads": self.num_heads, "mlp_ratio": self.mlp_ratio,
                "image_size": self.image_size, "drop_path": self.drop_path}


def build_icolorit(preset: str | dict = "T", precision: str = "float32",
                   **overrides) -> IColoriT:
    """A built IColoriT from a preset name (PRESETS or an official registered name)
    or a dict of constructor arguments, computing in `precision` ("float32",
    "bfloat16": mixed, float32 variables; or "auto")."""
    if isinstance(preset, str):
        name = OFFICIAL_NAMES.get(preset, preset)
        if name not in PRESETS:
            raise ValueError(f"Unknown iColoriT preset {preset!r}; choose one of "
                             f"{sorted(PRESETS)} (or {sorted(OFFICIAL_NAMES)}).")
        preset = PRESETS[name]
    with policy_scope(precision):
        model = IColoriT(**{**preset, **overrides}, name="icolorit")
        model.build()
    return model


def network_input(lab_n, mask_not_hint):
    """The official forward's input construction (Sec. 3.1; avg_hint=True).

    Args:
      lab_n: (B, 224, 224, 3) normalized Lab of the full-colour image.
      mask_not_hint: (B, 112*112), row-major over 2x2 cells, 1/True = NOT hinted.

    Returns:
      (B, 224, 224, 4) [L_n, a_hint, b_hint, hint_mask]: a cell's hint is the mean
      of its 2x2 normalized Lab; un-hinted cells hold 0 and mask 0.
    """
    lab_n = ops.cast(lab_n, "float32")
    batch, size = ops.shape(lab_n)[0], lab_n.shape[1]
    cells = size // HINT_SIZE
    means = ops.mean(ops.reshape(lab_n, (batch, cells, HINT_SIZE, cells, HINT_SIZE, 3)),
                     axis=(2, 4))
    hinted = 1.0 - ops.reshape(ops.cast(mask_not_hint, "float32"), (batch, cells, cells, 1))
    cell_input = ops.concatenate([means[..., 1:] * hinted, hinted], axis=-1)
    upsampled = ops.repeat(ops.repeat(cell_input, HINT_SIZE, axis=1), HINT_SIZE, axis=2)
    return ops.concatenate([lab_n[..., :1], upsampled], axis=-1)
