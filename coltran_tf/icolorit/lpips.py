"""LPIPS (Zhang et al. 2018, `lpips` 0.1.4, net='vgg', version 0.1) from weights
the user supplies: no weights are downloaded.

Weights: an .npz of `lpips.LPIPS(net='vgg').state_dict()` (keys
`net.slice{1..5}.{i}.weight|bias` = torchvision VGG16 `features.{i}`, and
`lin{0..4}.model.1.weight`), e.g. written on a machine with the package:
  python -c "import numpy, lpips; numpy.savez('lpips_vgg.npz', **{k: v.numpy()
             for k, v in lpips.LPIPS(net='vgg').state_dict().items()})"

Always float32, whatever a model's precision: the metric must not depend on it (and
bfloat16 convolutions are where oneDNN's AMX kernels have been wrong).

Like the official iColoriT evaluation, images are fed as given (it passes
[0, 1] images to a network that expects [-1, 1]).
"""

import numpy as np
import tensorflow as tf

SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
SCALE = np.array([0.458, 0.448, 0.450], np.float32)
# torchvision VGG16 `features` indices of the convolutions, per LPIPS slice.
SLICES = ((0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28))
CHANNELS = (64, 128, 256, 512, 512)


class LPIPS:
    """distance(a, b): (B, H, W, 3) images -> (B,) LPIPS distances."""

    def __init__(self, weights: dict):
        self.convs, self.lins = [], []
        try:
            for number, indices in enumerate(SLICES, 1):
                self.convs.append([
                    (tf.constant(np.transpose(weights[f"net.slice{number}.{i}.weight"],
                                              (2, 3, 1, 0)), tf.float32),
                     tf.constant(weights[f"net.slice{number}.{i}.bias"], tf.float32))
                    for i in indices])
            for k, channels in enumerate(CHANNELS):
                lin = np.asarray(weights[f"lin{k}.model.1.weight"], np.float32)
                self.lins.append(tf.constant(lin.reshape(channels)))
        except KeyError as error:
            raise ValueError(f"LPIPS weights lack {error}; export them from "
                             "lpips.LPIPS(net='vgg').state_dict() (see the module docstring)."
                             ) from None

    @classmethod
    def from_file(cls, path: str) -> "LPIPS":
        with np.load(path) as data:
            return cls({key: data[key] for key in data.files})

    def _features(self, images):
        x = (tf.cast(images, tf.float32) - SHIFT) / SCALE
        features = []
        for number, convs in enumerate(self.convs):
            if number:
                x = tf.nn.max_pool2d(x, 2, 2, "VALID")
            for kernel, bias in convs:
                x = tf.nn.relu(tf.nn.conv2d(x, kernel, 1, [[0, 0], [1, 1], [1, 1], [0, 0]])
                               + bias)
            features.append(x)
        return features

    def distance(self, images_a, images_b) -> np.ndarray:
        total = 0.0
        for fa, fb, lin in zip(self._features(images_a), self._features(images_b), self.lins):
            na = fa / (tf.sqrt(tf.reduce_sum(fa**2, -1, keepdims=True)) + 1e-10)
            nb = fb / (tf.sqrt(tf.reduce_sum(fb**2, -1, keepdims=True)) + 1e-10)
            total += tf.reduce_mean(tf.reduce_sum((na - nb) ** 2 * lin, -1), axis=(1, 2))
        return np.asarray(total)
