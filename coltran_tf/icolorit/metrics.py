"""iColoriT's evaluation metrics as the official code computes them (Yun et al.
2023, Sec. 4.1), from the one registry (utils/metrics.py): images are (224,
224, 3) RGB in [0, 1] (predictions 8-bit quantized first), PSNR with an MSE
floor of 1e-5 (a 50 dB cap), B-PSNR and PEV over 16x16 patches (hard-coded in
the official code), colourfulness on 8-bit RGB."""

from coltran_tf.utils import metrics

MSE_FLOOR = 1e-5  # caps PSNR at 50 dB
PATCH = 16        # hard-coded in the official B-PSNR and PEV

# Result name -> (registry name, options).
OFFICIAL = {"PSNR": ("psnr", {"max_value": 1.0, "mse_floor": MSE_FLOOR}),
            "B-PSNR": ("b-psnr", {"patch": PATCH, "max_value": 1.0, "mse_floor": MSE_FLOOR}),
            "PEV": ("pev", {"patch": PATCH}),
            "CF": ("colorfulness", {"scale": 255.0})}
EVALUATED = ("PSNR", "B-PSNR", "PEV")  # what icolorit-evaluate reports (and LPIPS)


def create(label: str) -> metrics.Metric:
    """The registry's metric under its official settings."""
    name, options = OFFICIAL[label]
    return metrics.create(name, **options)


def value(label: str, predicted, target) -> float:
    """One image pair's value of metric `label`."""
    metric = create(label)
    metric.update(predicted, target) if metric.paired else metric.update(predicted)
    return metric.result()


def psnr(predicted, target) -> float:
    return value("PSNR", predicted, target)
