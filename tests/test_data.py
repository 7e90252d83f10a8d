"""Tests of the input pipeline (spec COLTRAN.md §1): decoding, preprocessing, datasets.

Every image and TFRecord is generated into `tmp_path` with Pillow, small
(8-40 pixels a side) so that the whole file runs in seconds on two CPU cores.
Each preprocessing op is run eagerly and inside `tf.data`, and the two must
agree exactly. ImageNet is exercised through `tensorflow_datasets` mock data.
"""

import hashlib
import io
import os

import numpy as np
import pytest
import tensorflow as tf
from numpy.testing import assert_array_equal
from PIL import Image

from coltran_tf.data import datasets, decode, preprocess, sources
from coltran_tf.utils import image_ops
from configs import color_upsampler, colorizer

RES, LOW = 256, 64  # config resolution and downsample_res


# ----------------------------------------------------------------------------- helpers


def _save(path, image: Image.Image, **kwargs) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path, **kwargs)
    return str(path)


def _noise_png(path, height=8, width=8, seed=0) -> np.ndarray:
    array = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    _save(str(path), Image.fromarray(array, "RGB"))
    return array


def _folder_config(data_dir, valid=0.0, test=0.0, config=None):
    config = config or colorizer.get_config("tiny")
    config.dataset = "folder"
    config.data.data_dir = str(data_dir)
    config.data.valid_percent = valid
    config.data.test_percent = test
    return config


def _spec(config) -> sources.SourceSpec:
    return sources.SourceSpec.from_config(config)


def _as_numpy(dataset, limit=None) -> list[dict]:
    out = []
    for i, batch in enumerate(dataset):
        if limit is not None and i >= limit:
            break
        out.append({k: v.numpy() for k, v in batch.items()})
    return out


def _in_tf_data(fn, *inputs):
    """Runs `fn(*inputs)` as the map function of a one-element tf.data pipeline."""
    dataset = tf.data.Dataset.from_tensors(tuple(inputs)).map(fn)
    return next(iter(dataset))


# ----------------------------------------------------------------------------- 1. decoding


def _decoded(path) -> np.ndarray:
    rgb = decode.read_image(str(path))
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    return rgb


def test_grayscale_l_becomes_three_equal_channels(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    rgb = _decoded(_save(tmp_path / "g.png", Image.fromarray(gray, "L")))
    assert rgb.shape == (3, 4, 3)
    for c in range(3):
        assert_array_equal(rgb[..., c], gray)


def test_rgba_alpha_is_composited_over_white(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 0)      # fully transparent -> white
    rgba[0, 1] = (10, 20, 30, 255)    # opaque -> its own colour
    rgba[1, 0] = (200, 0, 0, 128)     # half transparent -> blended with white
    rgba[1, 1] = (0, 0, 0, 255)
    rgb = _decoded(_save(tmp_path / "a.png", Image.fromarray(rgba, "RGBA"))).astype(int)
    assert_array_equal(rgb[0, 0], (255, 255, 255))
    assert_array_equal(rgb[0, 1], (10, 20, 30))
    assert_array_equal(rgb[1, 1], (0, 0, 0))
    alpha = 128 / 255
    expected = alpha * np.array([200, 0, 0]) + (1 - alpha) * 255
    assert np.abs(rgb[1, 0] - expected).max() <= 1
    # LA (gray + alpha) in memory, through to_rgb directly.
    la = Image.fromarray(np.array([[[50, 0], [50, 255]]], np.uint8), "LA")
    assert_array_equal(decode.to_rgb(la), [[[255, 255, 255], [50, 50, 50]]])


def test_palette_with_and_without_transparency(tmp_path):
    palette = [255, 0, 0, 0, 0, 255, 0, 128, 0] + [0] * (768 - 9)
    image = Image.new("P", (3, 1))
    image.putpalette(palette)
    for x, index in enumerate((0, 1, 2)):
        image.putpixel((x, 0), index)
    plain = _decoded(_save(tmp_path / "p.png", image))
    assert_array_equal(plain[0], [(255, 0, 0), (0, 0, 255), (0, 128, 0)])
    # Palette index 1 transparent: that pixel becomes white, the others keep colour.
    transparent = _decoded(_save(tmp_path / "pt.png", image, transparency=1))
    assert Image.open(tmp_path / "pt.png").mode == "P"
    assert_array_equal(transparent[0], [(255, 0, 0), (255, 255, 255), (0, 128, 0)])


def test_16bit_png_keeps_the_top_byte(tmp_path):
    values = np.array([[65535, 256 * 100], [0, 257 * 7]], np.uint16)
    path = _save(tmp_path / "g16.png", Image.fromarray(values))
    assert Image.open(path).mode.startswith("I;16")
    rgb = _decoded(path)
    for c in range(3):
        assert_array_equal(rgb[..., c], [[255, 100], [0, 7]])
    # A dark 16-bit image stays dark (its mode, not its values, says 16 bits).
    dark = _save(tmp_path / "dark16.png", Image.fromarray(np.array([[255, 200]], np.uint16)))
    assert_array_equal(_decoded(dark)[..., 0], [[0, 0]])


def test_32bit_integer_and_float_images(tmp_path):
    # 'I' with 8-bit range values is kept; with 16-bit range it keeps the top byte.
    small = np.array([[0, 17], [200, 255]], np.int32)
    large = np.array([[65535, 256 * 100], [0, 256 * 3]], np.int32)
    for name, values, expected in (("i8.tif", small, small),
                                   ("i16.tif", large, [[255, 100], [0, 3]])):
        path = _save(tmp_path / name, Image.fromarray(values))
        assert Image.open(path).mode == "I"
        assert_array_equal(_decoded(path)[..., 1], expected)
    # 'F' in [0, 1] is scaled by 255; 'F' in [0, 255] is rounded and clipped.
    unit = np.array([[0.0, 1.0], [0.5, 0.25]], np.float32)
    wide = np.array([[0.0, 17.4], [128.0, 300.0]], np.float32)
    for name, values, expected in (("f1.tif", unit, [[0, 255], [128, 64]]),
                                   ("f255.tif", wide, [[0, 17], [128, 255]])):
        path = _save(tmp_path / name, Image.fromarray(values, "F"))
        assert Image.open(path).mode == "F"
        rgb = _decoded(path)
        assert_array_equal(rgb[..., 0], expected)
        assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_cmyk_jpeg_decodes_to_rgb(tmp_path):
    for cmyk, rgb in (((0, 255, 255, 0), (255, 0, 0)), ((255, 0, 0, 0), (0, 255, 255)),
                      ((0, 0, 0, 0), (255, 255, 255))):
        path = _save(tmp_path / "cmyk.jpg", Image.new("CMYK", (16, 16), cmyk), quality=95)
        assert Image.open(path).mode == "CMYK"
        decoded = _decoded(path).astype(int)
        assert decoded.shape == (16, 16, 3)
        assert np.abs(decoded - np.array(rgb)).max() <= 8, (cmyk, decoded[8, 8])


def test_exif_rotated_jpeg_is_transposed(tmp_path):
    array = np.zeros((16, 32, 3), np.uint8)  # H=16, W=32: red left half, blue right half
    array[:, :16] = (255, 0, 0)
    array[:, 16:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    path = _save(tmp_path / "rot.jpg", Image.fromarray(array), exif=exif, quality=95)
    rgb = _decoded(path).astype(int)
    assert rgb.shape == (32, 16, 3)
    assert np.abs(rgb[4, 8] - (255, 0, 0)).max() <= 20   # left half is now on top
    assert np.abs(rgb[28, 8] - (0, 0, 255)).max() <= 20


def test_bilevel_in_memory():
    image = Image.fromarray(np.array([[0, 255]], np.uint8)).convert("1")
    assert_array_equal(decode.to_rgb(image), [[[0, 0, 0], [255, 255, 255]]])


# ----------------------------------------------------------------------------- 2. bad files


def _write_bad_files(root) -> list[str]:
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (32, 32, 3), np.uint8)).save(
        root / "full.tmp.png")
    data = (root / "full.tmp.png").read_bytes()
    os.remove(root / "full.tmp.png")
    (root / "truncated.png").write_bytes(data[: len(data) // 2])
    (root / "garbage.jpg").write_bytes(np.random.default_rng(6).bytes(500))
    (root / "empty.png").write_bytes(b"")
    return ["truncated.png", "garbage.jpg", "empty.png"]


def test_corrupt_files_are_skipped_and_counted(tmp_path):
    good = [_noise_png(tmp_path / f"good{i}.png", 10, 14, seed=i) for i in range(3)]
    bad = _write_bad_files(tmp_path)
    for name in bad:
        with pytest.raises((ValueError, OSError)):
            decode.read_image(str(tmp_path / name))
    stats = decode.DecodeStats()
    config = _folder_config(tmp_path)
    batches = _as_numpy(datasets.get_dataset(config, "eval_train", batch_size=1,
                                             training=False, stats=stats))
    assert len(batches) == len(good)
    assert stats.skipped == len(bad)
    assert stats.decoded == len(good)
    summary = stats.summary()
    assert summary.startswith(f"{len(bad)} unreadable image(s) skipped, {len(good)} decoded")
    for name in bad:
        assert name in summary
    # The good ones come through unharmed, in sorted-file order (eval does not shuffle).
    for batch, array in zip(batches, good):
        crop = array[2:12] if array.shape[0] > array.shape[1] else array[:, 2:12]
        expected = preprocess.resize_area(tf.constant(crop), RES).numpy()
        assert_array_equal(batch["targets"][0], expected)


# ----------------------------------------------------------------------------- 3. preprocess


def _row_image(height, width):
    """(H, W, 3) int32 whose value tells the pixel's row and column."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([rows, cols, rows * 2 + cols], axis=-1).astype(np.int32)


@pytest.mark.parametrize("shape", [(40, 24), (24, 40), (24, 24)])
def test_square_crop_central(shape):
    image = _row_image(*shape)
    side = min(shape)
    off_h, off_w = (shape[0] - side) // 2, (shape[1] - side) // 2
    expected = image[off_h:off_h + side, off_w:off_w + side]
    eager = preprocess.square_crop(tf.constant(image), training=False).numpy()
    graph = _in_tf_data(lambda x: preprocess.square_crop(x, training=False),
                        tf.constant(image)).numpy()
    assert_array_equal(eager, expected)
    assert_array_equal(graph, expected)


def test_square_crop_random_is_in_bounds_and_seeded():
    image = _row_image(40, 24)

    def crop(seed, in_tf_data=False):
        seed = tf.constant(seed, tf.int64)
        if in_tf_data:
            return _in_tf_data(lambda x, s: preprocess.square_crop(x, True, seed=s),
                               tf.constant(image), seed).numpy()
        return preprocess.square_crop(tf.constant(image), True, seed=seed).numpy()

    offsets = set()
    for s in range(10):
        out = crop([7, s])
        assert out.shape == (24, 24, 3)
        offset = int(out[0, 0, 0])
        assert 0 <= offset <= 16
        assert_array_equal(out, image[offset:offset + 24])  # a window of the image
        assert_array_equal(crop([7, s]), out)                # same seed, same crop
        assert_array_equal(crop([7, s], in_tf_data=True), out)
        offsets.add(offset)
    assert len(offsets) >= 3, offsets  # different seeds, different crops


def test_resize_area_matches_tf_resize_and_block_mean():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (100, 70, 3)).astype(np.int32)
    expected = tf.cast(tf.round(tf.image.resize(image, [64, 64], method="area",
                                                antialias=True)), tf.int32).numpy()
    eager = preprocess.resize_area(tf.constant(image), 64)
    graph = _in_tf_data(lambda x: preprocess.resize_area(x, 64), tf.constant(image))
    assert eager.dtype == tf.int32 and graph.dtype == tf.int32
    assert_array_equal(eager.numpy(), expected)
    assert_array_equal(graph.numpy(), expected)
    # 256 -> 64 is the rounded mean of 4x4 blocks (ties at .5 included).
    big = rng.integers(0, 256, (256, 256, 3)).astype(np.int32)
    block_mean = big.reshape(64, 4, 64, 4, 3).mean(axis=(1, 3))
    assert np.any(block_mean % 1 == 0.5)
    assert_array_equal(preprocess.resize_area(tf.constant(big), 64).numpy(),
                       np.round(block_mean).astype(np.int32))


def test_resize_area_upward_is_block_replication():
    low = np.random.default_rng(3).integers(0, 256, (64, 64, 3)).astype(np.int32)
    expected = np.repeat(np.repeat(low, 4, axis=0), 4, axis=1)
    assert_array_equal(preprocess.resize_area(tf.constant(low), 256).numpy(), expected)
    assert_array_equal(_in_tf_data(lambda x: preprocess.resize_area(x, 256),
                                   tf.constant(low)).numpy(), expected)


def _example_kwargs(config, training):
    return dict(resolution=config.resolution[0], downsample=config.downsample,
                downsample_res=config.downsample_res, random_channel=config.random_channel,
                training=training)


def _eager_and_graph(image, label, seed, kwargs):
    args = (tf.constant(image), tf.constant(label), tf.constant(seed, tf.int64))
    eager = {k: v.numpy() for k, v in preprocess.make_example(*args, **kwargs).items()}
    graph = _in_tf_data(lambda x, y, s: preprocess.make_example(x, y, s, **kwargs), *args)
    graph = {k: v.numpy() for k, v in graph.items()}
    assert eager.keys() == graph.keys()
    for key in eager:
        assert_array_equal(eager[key], graph[key], err_msg=key)
    return eager


def test_make_example_colorizer_keys_shapes_and_values():
    config = colorizer.get_config("tiny")
    image = np.random.default_rng(4).integers(0, 256, (300, 280, 3)).astype(np.uint8)
    example = _eager_and_graph(image, 7, [1, 2], _example_kwargs(config, training=False))
    assert set(example) == {"targets", "targets_64", "targets_64_up_back", "label"}
    shapes = {"targets": (RES, RES, 3), "targets_64": (LOW, LOW, 3),
              "targets_64_up_back": (RES, RES, 3), "label": ()}
    for key, shape in shapes.items():
        assert example[key].shape == shape, key
        assert example[key].dtype == np.int32, key
    assert example["label"] == 7
    central = image[10:290]
    assert_array_equal(example["targets"],
                       preprocess.resize_area(tf.constant(central), RES).numpy())
    assert_array_equal(example["targets_64"],
                       preprocess.resize_area(example["targets"], LOW).numpy())
    assert_array_equal(example["targets_64_up_back"],
                       np.repeat(np.repeat(example["targets_64"], 4, 0), 4, 1))


def test_make_example_random_channel_in_training():
    config = color_upsampler.get_config("tiny")
    assert config.random_channel and config.downsample
    image = np.random.default_rng(5).integers(0, 256, (300, 260, 3)).astype(np.uint8)
    kwargs = _example_kwargs(config, training=True)
    channels = set()
    for index in range(12):
        example = _eager_and_graph(image, 3, [11, index], kwargs)
        assert set(example) == {"targets", "targets_64", "targets_64_up_back", "label",
                                "targets_slice", "channel_index", "targets_slice_64",
                                "targets_slice_64_up_back"}
        c = int(example["channel_index"])
        assert 0 <= c <= 2
        channels.add(c)
        assert example["targets_slice"].shape == (RES, RES, 1)
        assert_array_equal(example["targets_slice"], example["targets"][..., c:c + 1])
        low = preprocess.resize_area(example["targets_slice"], LOW).numpy()
        assert_array_equal(example["targets_slice_64"], low)
        assert_array_equal(example["targets_slice_64_up_back"],
                           preprocess.resize_area(low, RES).numpy())
    assert channels == {0, 1, 2}
    # Outside training there is no channel slice (spec §1: training only).
    eval_example = _eager_and_graph(image, 3, [11, 0], _example_kwargs(config, training=False))
    assert "targets_slice" not in eval_example and "channel_index" not in eval_example


def test_targets_slice_has_static_shape_in_the_pipeline(tmp_path):
    for i in range(4):
        _noise_png(tmp_path / f"{i}.png", 12, 9, seed=i)
    config = _folder_config(tmp_path, config=color_upsampler.get_config("tiny"))
    config.data.shuffle_buffer = 4
    spec = datasets.get_dataset(config, "train", 2, training=True).element_spec
    assert spec["targets_slice"].shape == (2, RES, RES, 1)
    assert spec["targets_slice_64"].shape == (2, LOW, LOW, 1)
    assert spec["channel_index"].shape == (2,)


# ----------------------------------------------------------------------------- 4. grayscale


def test_pipeline_grayscale_matches_tf_rgb_to_grayscale():
    config = colorizer.get_config("tiny")
    image = np.random.default_rng(6).integers(0, 256, (256, 256, 3)).astype(np.uint8)
    example = _eager_and_graph(image, 0, [0, 0], _example_kwargs(config, training=False))
    for key in ("targets", "targets_64"):
        ours = np.asarray(image_ops.rgb_to_grayscale(example[key]))
        theirs = tf.image.rgb_to_grayscale(tf.constant(example[key], tf.int32)).numpy()
        assert ours.shape == theirs.shape == example[key].shape[:2] + (1,)
        assert_array_equal(ours, theirs, err_msg=key)


# ----------------------------------------------------------------------------- 5. folder splits


def _make_tree(root, names):
    for i, name in enumerate(names):
        Image.fromarray(np.full((8, 8, 3), i % 256, np.uint8)).save(root / name)


def _splits(config) -> dict:
    spec = _spec(config)
    return {split: sources.folder_files(spec, split)[1] for split in sources.SPLITS}


def test_folder_splits_are_deterministic_disjoint_and_stable(tmp_path):
    names = [f"img{i:02d}.png" for i in range(40)]
    _make_tree(tmp_path, names)
    config = _folder_config(tmp_path, valid=20.0, test=20.0)
    splits = _splits(config)
    assert splits == _splits(config)
    for split in ("train", "valid", "test"):
        assert splits[split], split
    assert splits["eval_train"] == splits["train"]
    train, valid, test = (set(splits[s]) for s in ("train", "valid", "test"))
    assert not (train & valid) and not (train & test) and not (valid & test)
    assert train | valid | test == set(names)
    # The split is a pure function of the relative path (md5, not Python's salted hash),
    # so it is the same in every process and on every machine.
    for name in names:
        bucket = int(hashlib.md5(name.encode()).hexdigest()[:8], 16) % 10000 / 100.0
        expected = "test" if bucket < 20 else "valid" if bucket < 40 else "train"
        assert name in splits[expected], name
    # Adding files never moves an existing file to another split.
    _make_tree(tmp_path, [f"new{i:02d}.png" for i in range(30)])
    grown = _splits(config)
    for split in ("train", "valid", "test"):
        old = set(splits[split])
        assert old <= set(grown[split]), split
        assert {f for f in grown[split] if f.startswith("img")} == old


def test_folder_labels_follow_sorted_subdirectories(tmp_path):
    for sub in ("b_dogs", "a_cats", "c_owls"):
        (tmp_path / sub).mkdir()
        _make_tree(tmp_path / sub, [f"{sub}{i}.png" for i in range(2)])
    (tmp_path / ".hidden").mkdir()
    _make_tree(tmp_path / ".hidden", ["x.png"])
    _make_tree(tmp_path / "a_cats", ["._a_cats0.png"])  # macOS AppleDouble side file
    (tmp_path / "notes.txt").write_text("not an image")
    config = _folder_config(tmp_path)
    _, files, labels = sources.folder_files(_spec(config), "eval_train")
    assert len(files) == 6
    expected = {"a_cats": 0, "b_dogs": 1, "c_owls": 2}
    for name, label in zip(files, labels):
        assert label == expected[os.path.dirname(name)], name
    batches = _as_numpy(datasets.get_dataset(config, "eval_train", 6, training=False))
    assert_array_equal(batches[0]["label"], labels)


def test_empty_split_raises(tmp_path):
    _make_tree(tmp_path, [f"img{i}.png" for i in range(5)])
    config = _folder_config(tmp_path, valid=0.0, test=0.0)
    with pytest.raises(datasets.DataError, match="valid_percent"):
        datasets.get_dataset(config, "valid", 1, training=False)
    with pytest.raises(datasets.DataError, match="Unknown split"):
        datasets.get_dataset(config, "validation", 1, training=False)


def test_bad_folder_paths_raise_naming_the_path(tmp_path):
    missing = tmp_path / "does_not_exist"
    empty = tmp_path / "empty"
    empty.mkdir()
    no_images = tmp_path / "no_images"
    no_images.mkdir()
    (no_images / "readme.txt").write_text("hello")
    for root in (missing, empty, no_images):
        with pytest.raises(datasets.DataError) as info:
            datasets.get_dataset(_folder_config(root), "eval_train", 1, training=False)
        assert str(root) in str(info.value)
    with pytest.raises(datasets.DataError, match="data_dir"):
        datasets.get_dataset(_folder_config(""), "eval_train", 1, training=False)
    config = _folder_config(tmp_path)
    config.dataset = "imagenet64"
    with pytest.raises(datasets.DataError, match="imagenet64"):
        datasets.get_dataset(config, "train", 1, training=True)


# ----------------------------------------------------------------------------- 6. bundled


def test_skip_grayscale_keeps_only_colour_photos(tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "a_gray.png")
    Image.fromarray(np.stack([gray] * 3, -1)).save(tmp_path / "b_gray_rgb.jpg", quality=80)
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(tmp_path / "c.png")
    config = colorizer.get_config("tiny")
    config.dataset, config.data.data_dir = "folder", str(tmp_path)
    config.data.valid_percent = config.data.test_percent = 0.0
    stats = decode.DecodeStats()
    everything = list(sources.source(_spec(config), "train", stats))
    config.data.skip_grayscale = True
    colour = list(sources.source(_spec(config), "train", stats))
    assert len(everything) == 3 and len(colour) == 1
    assert np.asarray(colour[0][0]).std(axis=-1).mean() > 10
    demo = colorizer.get_config("demo")
    assert demo.dataset == "bundled" and demo.data.skip_grayscale
    assert len(list(sources.source(_spec(demo), "train", stats))) >= 9



def test_bundled_dataset_is_the_repository_data_folder():
    config = colorizer.get_config("tiny")
    assert config.dataset == "bundled"
    spec = _spec(config)
    root, files, labels = sources.folder_files(spec, "train")
    assert os.path.realpath(root) == os.path.realpath(
        os.path.join(os.path.dirname(os.path.dirname(__file__)), "data"))
    assert len(files) >= 8
    assert labels == [0] * len(files)
    for split in sources.SPLITS:
        assert sources.folder_files(spec, split)[1] == files, split
    modes = {Image.open(os.path.join(root, f)).mode for f in files}
    assert "L" in modes and "RGB" in modes, modes
    batches = _as_numpy(datasets.get_dataset(config, "valid", 2, training=False,
                                             num_examples=2))
    assert len(batches) == 1
    batch = batches[0]
    assert set(batch) == {"targets", "targets_64", "targets_64_up_back", "label"}
    assert batch["targets"].shape == (2, RES, RES, 3)
    assert batch["targets_64"].shape == (2, LOW, LOW, 3)
    assert batch["targets"].min() >= 0 and batch["targets"].max() <= 255


# ----------------------------------------------------------------------------- 7. TFRecord


def _png_bytes(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _feature_bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _feature_int(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def _write_tfrecords(path, num_records=14, corrupt_index=5, alt_index=9):
    """Record i has label 100 + i and a 8x10 image filled with i; returns good labels."""
    good = {}
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(num_records):
            image = np.full((8, 10, 3), i, np.uint8)
            if i == corrupt_index:
                features = {"image": _feature_bytes(b"\x89PNG not really"),
                            "label": _feature_int(100 + i)}
            elif i == alt_index:
                features = {"image/encoded": _feature_bytes(_png_bytes(image)),
                            "image/class/label": _feature_int(100 + i)}
            else:
                features = {"image": _feature_bytes(_png_bytes(image)),
                            "label": _feature_int(100 + i)}
            if i != corrupt_index:
                good[100 + i] = i
            example = tf.train.Example(features=tf.train.Features(feature=features))
            writer.write(example.SerializeToString())
    return good


def _tfrecord_split(config, split):
    stats = decode.DecodeStats()
    batches = _as_numpy(datasets.get_dataset(config, split, 1, training=False, stats=stats))
    return {int(b["label"][0]): b for b in batches}, stats


def test_tfrecord_source(tmp_path):
    good = _write_tfrecords(tmp_path / "images.tfrecord")
    config = colorizer.get_config("tiny")
    config.dataset = "tfrecord"
    config.data.data_dir = str(tmp_path)
    config.data.valid_percent = config.data.test_percent = 0.0
    everything, stats = _tfrecord_split(config, "eval_train")
    assert set(everything) == set(good)  # labels carried through, both key flavours
    assert stats.skipped == 1 and stats.decoded == len(good)
    assert "record 5" in stats.summary()
    for label, batch in everything.items():
        assert_array_equal(batch["targets"][0], np.full((RES, RES, 3), good[label]))

    config.data.valid_percent = config.data.test_percent = 20.0
    parts = {}
    skipped = 0
    for split in ("train", "valid", "test"):
        labels, stats = _tfrecord_split(config, split)
        parts[split] = set(labels)
        skipped += stats.skipped
        assert parts[split], split
    assert skipped == 1
    assert not (parts["train"] & parts["valid"]) and not (parts["train"] & parts["test"])
    assert not (parts["valid"] & parts["test"])
    assert parts["train"] | parts["valid"] | parts["test"] == set(good)
    assert set(_tfrecord_split(config, "eval_train")[0]) == parts["train"]
    # Splits follow record indices, so they are the same on a second read.
    assert set(_tfrecord_split(config, "valid")[0]) == parts["valid"]


def test_tfrecord_malformed_records_are_skipped_and_counted(tmp_path):
    good = _write_tfrecords(tmp_path / "images.tfrecord")
    with tf.io.TFRecordWriter(str(tmp_path / "more.tfrecord")) as writer:
        writer.write(b"\xff\x00 this is not a tf.train.Example")
        writer.write(tf.train.Example().SerializeToString())  # no image at all
    config = colorizer.get_config("tiny")
    config.dataset = "tfrecord"
    config.data.data_dir = str(tmp_path)
    config.data.valid_percent = config.data.test_percent = 0.0
    labels, stats = _tfrecord_split(config, "eval_train")
    assert set(labels) == set(good)
    assert stats.skipped == 3  # the corrupt image of images.tfrecord plus these two
    assert "no encoded image" in stats.summary()


def test_tfrecord_missing_files_raise(tmp_path):
    config = colorizer.get_config("tiny")
    config.dataset = "tfrecord"
    config.data.data_dir = str(tmp_path)
    with pytest.raises(datasets.DataError, match="No TFRecord files"):
        datasets.get_dataset(config, "train", 1, training=True)


# ----------------------------------------------------------------------------- 8. determinism


def test_training_pipeline_is_deterministic(tmp_path):
    for i in range(12):
        _noise_png(tmp_path / f"{i:02d}.png", 12, 9, seed=i)
    config = _folder_config(tmp_path)
    config.seed = 3

    def first_batches():
        dataset = datasets.get_dataset(config, "train", 2, training=True)
        assert dataset.element_spec["targets"].shape == (2, RES, RES, 3)
        return _as_numpy(dataset, limit=3)

    a, b = first_batches(), first_batches()
    config.seed = 4
    c = first_batches()
    for batch_a, batch_b in zip(a, b):
        for key in batch_a:
            assert_array_equal(batch_a[key], batch_b[key], err_msg=key)
    assert any(not np.array_equal(x["targets"], y["targets"]) for x, y in zip(a, c))
    # Evaluation keeps the last partial batch, so its batch dimension is not static.
    eval_spec = datasets.get_dataset(config, "eval_train", 5, training=False).element_spec
    assert eval_spec["targets"].shape.as_list() == [None, RES, RES, 3]
    assert len(_as_numpy(datasets.get_dataset(config, "eval_train", 5, training=False))) == 3


def test_the_training_stream_resumes_from_any_position_with_the_same_examples(tmp_path):
    """What an exact resume rests on: the stream from a saved position is the tail
    of the stream from the start (across epochs, past an unreadable file), each
    example with the same crop and channel, and each epoch a new order."""
    for i in range(5):  # one class per photo: the labels name the photos
        (tmp_path / f"c{i}").mkdir()
        _noise_png(tmp_path / f"c{i}" / "photo.png", 12, 9, seed=i)
    (tmp_path / "c2" / "broken.png").write_bytes(b"not a png")
    config = _folder_config(tmp_path, config=color_upsampler.get_config("tiny"))
    whole = [b for b in _as_numpy(datasets.get_dataset(config, "train", 1, training=True),
                                  limit=16)]
    positions = [int(b[sources.POSITION][0]) for b in whole]
    epochs = [p >> 32 for p in positions]
    assert epochs == sorted(epochs) and len(set(epochs)) >= 3  # 5 readable photos an epoch
    assert len([e for e in epochs if e == 0]) == 5  # the broken one is skipped, not counted
    first, second = ([int(b["label"][0]) for b, e in zip(whole, epochs) if e == k]
                     for k in (0, 1))
    assert sorted(first) == sorted(second) == [0, 1, 2, 3, 4] and first != second
    for cut in (1, 4, 5, 7, 11):
        resumed = _as_numpy(datasets.get_dataset(config, "train", 1, training=True,
                                                 position=positions[cut - 1] + 1),
                            limit=16 - cut)
        for expected, batch in zip(whole[cut:], resumed):
            for key in expected:
                assert_array_equal(batch[key], expected[key], err_msg=f"{key} after {cut}")


# ----------------------------------------------------------------------------- 9. ImageNet


def test_imagenet_split_names():
    assert sources.IMAGENET_SPLITS == {"train": "train[:-10000]", "valid": "train[-10000:]",
                                        "test": "validation", "eval_train": "train"}


def test_imagenet_with_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    config = colorizer.get_config("tiny")
    config.dataset = "imagenet"
    config.data.data_dir = str(tmp_path)
    with tfds.testing.mock_data(num_examples=4):
        batches = _as_numpy(datasets.get_dataset(config, "valid", 2, training=False,
                                                 num_examples=4))
    assert len(batches) == 2
    for batch in batches:
        assert batch["targets"].shape == (2, RES, RES, 3)
        assert batch["targets_64"].shape == (2, LOW, LOW, 3)
        assert batch["label"].shape == (2,)


def test_imagenet_missing_manual_dir_raises(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    config = colorizer.get_config("tiny")
    config.dataset = "imagenet"
    config.data.data_dir = str(tmp_path / "tfds")
    config.data.manual_dir = str(tmp_path / "manual")
    with pytest.raises(datasets.DataError, match="ILSVRC2012_img_train.tar"):
        datasets.get_dataset(config, "train", 2, training=True)
