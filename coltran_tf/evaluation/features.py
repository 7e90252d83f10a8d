"""Feature extractors for FID: the standard FID Inception, or any Keras model file.

The standard one is the Inception graph of 2015-12-05 (Szegedy et al. 2016)
that TTUR (Heusel et al. 2017) and TF-GAN compute FID with: its 2048-d `pool_3`
output, fed float RGB in [0, 255] through `ExpandDims:0` (the graph resizes to
299x299 bilinearly and scales to [-1, 1] itself). It is fetched once into the
toolkit's cache (utils.download) from INCEPTION_URL; the SHA-256 of the archive
is recorded there at the first fetch, and the graph file's own SHA-256 is
checked against it on every later load.

A Keras model file (`.keras`) works too: it must map float32 RGB in [0, 255]
at its input size to one feature vector per image (images of another size are
resized to it bilinearly). This allows other feature spaces, and offline tests.
"""

import hashlib
import json
import os
import tarfile

import numpy as np

from coltran_tf.utils import download
from coltran_tf.utils.files import write_json

INCEPTION_URL = "http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"
INCEPTION_GRAPH = "classify_image_graph_def.pb"
INCEPTION_INPUT, INCEPTION_OUTPUT = "ExpandDims:0", "pool_3:0"
INCEPTION_DIMENSIONS = 2048
URL_ENV = "COLTRAN_TF_INCEPTION_URL"  # a mirror of INCEPTION_URL (same archive)
CHECK_FILE = "graph.json"  # the graph file's SHA-256, written when it is extracted


class FeatureError(ValueError):
    """A feature extractor that cannot be loaded or used; the message says why."""


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _computes_below_float32(model) -> bool:
    """Whether the model or any layer in it computes in another dtype than float32
    (a model saved under mixed_bfloat16 loads with its layers in bfloat16 and
    the model itself in the policy of the moment)."""
    layers, seen = [model], set()
    while layers:
        layer = layers.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if getattr(layer, "compute_dtype", "float32") != "float32":
            return True
        layers.extend(getattr(layer, "layers", ()))
    return False


def _in_float32(model, path: str):
    """The same model computing in float32. FID features are compared across runs,
    machines and papers, so they are never computed in reduced precision; and feature
    extractors are full of strided convolutions, whose bfloat16 oneDNN kernels gave
    wrong results on CPUs with AMX (TensorFlow 2.21)."""
    import keras

    def float32_layer(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    try:
        clone = keras.models.clone_model(model, clone_function=float32_layer)
        clone.set_weights(model.get_weights())
    except Exception as error:  # noqa: BLE001 - subclassed models cannot be cloned
        raise FeatureError(f"{path} computes in {model.compute_dtype} and could not be "
                           f"rebuilt in float32 ({str(error)[:200]}); save the extractor "
                           "with the float32 dtype policy.") from None
    return clone


class KerasFeatures:
    """A Keras model file: float32 RGB [0, 255] at its input size -> (B, D) features."""

    def __init__(self, path: str):
        import keras

        if not os.path.isfile(path):
            raise FeatureError(f"--feature_extractor={path}: no such file (a .keras model, "
                               "or 'inception' for the standard FID Inception).")
        try:
            self.model = keras.saving.load_model(path, compile=False)
        except Exception as error:  # noqa: BLE001 - any load failure gets the same advice
            raise FeatureError(f"--feature_extractor={path} is not a Keras model file this "
                               f"Keras can load: {str(error)[:300]}") from None
        if _computes_below_float32(self.model):
            self.model = _in_float32(self.model, path)
        shape = tuple(self.model.input_shape)
        if len(shape) != 4 or shape[-1] != 3:
            raise FeatureError(f"{path} takes inputs of shape {shape}; a feature extractor "
                               "takes (batch, height, width, 3) RGB.")
        self.size = tuple(shape[1:3]) if None not in shape[1:3] else None
        self.name = f"keras:{os.path.basename(path)}"
        self.dimensions = int(np.prod(self.model.output_shape[1:]))

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        images = tf.convert_to_tensor(np.asarray(images, np.float32))
        if self.size is not None and tuple(images.shape[1:3]) != self.size:
            images = tf.image.resize(images, self.size, method="bilinear")
        features = np.asarray(self.model(images, training=False), np.float64)
        return features.reshape(len(features), -1)


class InceptionFeatures:
    """The FID Inception graph: float RGB [0, 255], any size -> (B, 2048) pool_3.

    The graph's constants and ops are float32, whatever precision a model uses."""

    def __init__(self, graph_path: str):
        import tensorflow as tf

        self.name = "fid_inception_2015-12-05"
        self.dimensions, self.size = INCEPTION_DIMENSIONS, None
        graph_def = tf.compat.v1.GraphDef()
        try:
            with open(graph_path, "rb") as f:
                graph_def.ParseFromString(f.read())
        except Exception as error:  # noqa: BLE001 - a corrupt or foreign file
            raise FeatureError(f"{graph_path} is not a TensorFlow GraphDef: {error}") from None
        names = {node.name for node in graph_def.node}
        missing = [t for t in (INCEPTION_INPUT, INCEPTION_OUTPUT) if t.split(":")[0] not in names]
        if missing:
            raise FeatureError(f"{graph_path} has no {missing} node: not the FID Inception graph "
                               f"({INCEPTION_GRAPH} of {INCEPTION_URL}).")

        def imported(images):
            tf.compat.v1.import_graph_def(graph_def, input_map={INCEPTION_INPUT: images},
                                          name="")

        wrapped = tf.compat.v1.wrap_function(
            imported, [tf.TensorSpec([None, None, None, 3], tf.float32)])
        self._pool = wrapped.prune(wrapped.inputs[0],
                                   wrapped.graph.get_tensor_by_name(INCEPTION_OUTPUT))

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        batch = tf.convert_to_tensor(np.asarray(images, np.float32))
        features = np.asarray(self._pool(batch), np.float64)
        features = features.reshape(len(features), -1)
        if features.shape[1] != self.dimensions:
            raise FeatureError(f"pool_3 gave {features.shape[1]} values per image, not "
                               f"{self.dimensions}: not the FID Inception graph.")
        return features


def _prepare_inception(archive: str, staging: str, info: dict) -> None:
    """fetch_cached's prepare: extract the graph and record its hash."""
    try:
        with tarfile.open(archive) as tar:
            member = next((m for m in tar.getmembers()
                           if os.path.basename(m.name) == INCEPTION_GRAPH and m.isfile()), None)
            if member is None:
                raise FeatureError(f"the archive holds no {INCEPTION_GRAPH}")
            with tar.extractfile(member) as source, \
                    open(os.path.join(staging, INCEPTION_GRAPH), "wb") as target:
                target.write(source.read())
    except tarfile.TarError as error:
        raise FeatureError(f"not a readable .tgz archive ({error})") from None
    graph = os.path.join(staging, INCEPTION_GRAPH)
    InceptionFeatures(graph)  # the right graph, or a clear error before it is cached
    write_json(os.path.join(staging, CHECK_FILE),
               {"sha256": _sha256(graph), "archive_sha256": info["sha256"]})


def inception_graph(url: str | None = None, report=print) -> str:
    """The cached FID Inception graph file, fetched on first use."""
    url = url or os.environ.get(URL_ENV) or INCEPTION_URL
    manual = (f"Without network: download {INCEPTION_URL} elsewhere, extract "
              f"{INCEPTION_GRAPH} from it and pass --feature_extractor=PATH/{INCEPTION_GRAPH} "
              f"(or set {URL_ENV} to a mirror).")
    entry = download.fetch_cached(url, "fid_inception", _prepare_inception, manual, report)
    graph = os.path.join(entry, INCEPTION_GRAPH)
    with open(os.path.join(entry, CHECK_FILE)) as f:
        expected = json.load(f)["sha256"]
    if not os.path.isfile(graph) or _sha256(graph) != expected:
        raise FeatureError(f"The cached {graph} is missing or changed since it was fetched "
                           f"(SHA-256 check). Delete {entry} to fetch it again.")
    return graph


def load_feature_extractor(spec: str, report=print):
    """'inception' (fetched and cached), a .pb Inception graph, or a .keras model file."""
    if spec == "inception":
        return InceptionFeatures(inception_graph(report=report))
    if spec.endswith(".pb"):
        if not os.path.isfile(spec):
            raise FeatureError(f"--feature_extractor={spec}: no such file.")
        return InceptionFeatures(spec)
    if spec.endswith(".keras"):
        return KerasFeatures(spec)
    raise FeatureError(f"--feature_extractor={spec!r}: use 'inception', a path to "
                       f"{INCEPTION_GRAPH}, or a .keras model file.")
