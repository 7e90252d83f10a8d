"""Evaluation protocols of the colorization literature, as presets.

coltran_fid5k (Kumar et al. 2021, Table 2): FID-5K. Generated: the first 5,000
  examples of TFDS imagenet2012 validation in its default read order,
  colorized (the staged sampler's `test` split with batch_size x num_batches =
  5,000). Reference: 5,000 other real validation images, positions
  10,000-15,000 (as big_vision's ColTran evaluator). Both central-square
  cropped and area-resized with antialias to 256, rounded, as the training
  preprocessing does. Metrics: FID (and colourfulness).
ddcolor_val5k (Kang et al. 2023, DDColor's table): validation files
  ILSVRC2012_val_00000001..00005000, centre crop then resize to 256; FID
  against the same images' ground truth, colourfulness, PSNR.
ddcolor_val50k: the whole validation set, the whole image resized to 256x256.
"""

import dataclasses

from coltran_tf.evaluation import evaluate


@dataclasses.dataclass(frozen=True)
class Protocol:
    name: str
    reference: str
    preprocess: str
    metrics: tuple
    generated: str  # what the generated set must be, for the help and the warnings
    expected_images: int | None = None
    reference_names: tuple | None = None  # file names evaluated (both sets), e.g. val5k


def _val_names(count: int) -> tuple:
    return tuple(f"ILSVRC2012_val_{i:08d}" for i in range(1, count + 1))


PROTOCOLS = {
    "coltran_fid5k": Protocol(
        "coltran_fid5k", "tfds:imagenet2012:validation[10000:15000]", "center_crop_256",
        ("fid", "colorfulness"),
        "the colorizations of tfds imagenet2012 validation[:5000] (default read order)", 5000),
    "ddcolor_val5k": Protocol(
        "ddcolor_val5k", "tfds:imagenet2012:validation", "center_crop_256", evaluate.METRICS,
        "colorizations of ILSVRC2012_val_00000001..00005000, named by those files", 5000,
        _val_names(5000)),
    "ddcolor_val50k": Protocol(
        "ddcolor_val50k", "tfds:imagenet2012:validation", "resize_256", evaluate.METRICS,
        "colorizations of all 50,000 validation images, named by their files", 50000),
}
