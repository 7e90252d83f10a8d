"""coltran_tf: ColTran (ICLR 2021) and iColoriT (WACV 2023) in TensorFlow 2 / Keras 3."""

__version__ = "0.1.0"
