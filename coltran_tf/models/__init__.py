"""ColTran models and the config-to-model seam."""

from coltran_tf.models.builder import build_model, model_kwargs, model_resolution
from coltran_tf.models.color_upsampler import ColorUpsampler
from coltran_tf.models.colorizer import ColTranCore
from coltran_tf.models.spatial_upsampler import SpatialUpsampler

__all__ = ["build_model", "model_kwargs", "model_resolution", "ColorUpsampler",
           "ColTranCore", "SpatialUpsampler"]
