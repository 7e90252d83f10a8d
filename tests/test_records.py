"""The staged sampler's TFRecords: the original's schema, gen<N> order, checks."""

import os

import numpy as np
import pytest
import tensorflow as tf

from coltran_tf.sampling import records
from conftest import run_command


def _images(count, res=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, res, res, 3)), list(range(100, 100 + count))


def _original_write(path, images, labels):
    """Writes records the way the original sampler does, without our helpers."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for image, label in zip(images, labels):
            feature = {"image": tf.train.Feature(int64_list=tf.train.Int64List(
                value=[int(v) for v in np.reshape(image, [-1])])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}
            writer.write(tf.train.Example(features=tf.train.Features(
                feature=feature)).SerializeToString())


def _original_read(path, res):
    """The original's reader: fixed-length int64 lists reshaped to (R, R, 3)."""
    spec = {"image": tf.io.FixedLenFeature([res * res * 3], tf.int64),
            "label": tf.io.FixedLenFeature([1], tf.int64)}
    out = []
    for record in tf.data.TFRecordDataset(str(path)):
        example = tf.io.parse_single_example(record, spec)
        out.append((tf.reshape(example["image"], [res, res, 3]).numpy(),
                    int(example["label"][0])))
    return out


def test_our_files_read_with_the_original_schema_and_back(tmp_path):
    images, labels = _images(5)
    records.write_records(str(tmp_path / "gen0.tfrecords"), images, labels)
    for (image, label), want_image, want_label in zip(
            _original_read(tmp_path / "gen0.tfrecords", 8), images, labels):
        np.testing.assert_array_equal(image, want_image)
        assert label == want_label
    batches = list(records.read_gen_dir(str(tmp_path), resolution=8, batch_size=2))
    got = np.concatenate([b[0].numpy() for b in batches])
    np.testing.assert_array_equal(got, images)
    assert np.concatenate([b[1].numpy() for b in batches]).tolist() == labels
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_files_written_in_the_original_layout_are_read_in_gen_order(tmp_path):
    images, labels = _images(12)
    # gen10 sorts before gen2 as text; the order must be numeric.
    for n, chunk in zip((0, 1, 2, 10), range(4)):
        part = slice(3 * chunk, 3 * chunk + 3)
        _original_write(tmp_path / f"gen{n}.tfrecords", images[part], labels[part])
    assert [n for n, _ in records.gen_files(str(tmp_path))] == [0, 1, 2, 10]
    dataset = records.read_gen_dir(str(tmp_path), resolution=8, batch_size=2, skip_batches=1,
                                   num_batches=3)
    got = [label for _, batch in dataset for label in batch.numpy().tolist()]
    assert got == labels[2:8]


def test_read_gen_dir_names_the_problem(tmp_path):
    with pytest.raises(records.GenDataError, match="does not exist"):
        records.read_gen_dir(str(tmp_path / "nope"))
    with pytest.raises(records.GenDataError, match="No gen<N>.tfrecords"):
        records.read_gen_dir(str(tmp_path))
    images, labels = _images(3, res=8)
    records.write_records(str(tmp_path / "gen0.tfrecords"), images, labels)
    with pytest.raises(records.GenDataError, match="another resolution"):
        records.read_gen_dir(str(tmp_path), resolution=64)
    with pytest.raises(records.GenDataError, match="holds 3 records but 4 are needed"):
        records.read_gen_dir(str(tmp_path), resolution=8, batch_size=2, skip_batches=1,
                             num_batches=1)


def test_an_interrupted_write_leaves_no_file(tmp_path):
    images, labels = _images(3)

    def failing():
        yield images[0]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        records.write_records(str(tmp_path / "gen0.tfrecords"), failing(), labels)
    assert os.listdir(tmp_path) == []


def test_check_gen_dir_finds_missing_duplicate_and_malformed_shards(tmp_path):
    images, labels = _images(4)
    records.write_records(str(tmp_path / "gen0.tfrecords"), images[:2], labels[:2])
    records.write_records(str(tmp_path / "gen1.tfrecords"), images[2:], labels[2:])
    lines, problems = records.check_gen_dir(str(tmp_path), resolution=8, expected_records=4)
    assert problems == [] and "4 records of 8x8x3" in lines[-1]
    _, problems = records.check_gen_dir(str(tmp_path), resolution=8, expected_records=5)
    assert problems == ["4 records, expected 5"]

    records.write_records(str(tmp_path / "gen3.tfrecords"), _images(1, res=4)[0], [0])
    records.write_records(str(tmp_path / "gen01.tfrecords"), images[:1], labels[:1])
    (tmp_path / ".gen4.tfrecords.x.tmp").write_bytes(b"")
    _, problems = records.check_gen_dir(str(tmp_path), resolution=8)
    text = "\n".join(problems)
    assert "duplicate shard indices [1]" in text
    assert "missing shards: gen2" in text
    assert "gen3.tfrecords record 0: image has 48 values, expected 192" in text
    assert "interrupted write" in text
    with pytest.raises(records.GenDataError, match="same gen index"):
        records.read_gen_dir(str(tmp_path), resolution=8)

    result = run_command("coltran_tf.commands.check_gen_dir", str(tmp_path))
    assert result.returncode == 1 and "PROBLEM: missing shards: gen2" in result.stdout
    assert "mixes records of different runs" in result.stdout  # gen3 holds 4x4 images
    os.remove(tmp_path / "gen3.tfrecords")
    os.remove(tmp_path / "gen01.tfrecords")
    os.remove(tmp_path / ".gen4.tfrecords.x.tmp")
    result = run_command("coltran_tf.commands.check_gen_dir", str(tmp_path), "--expected_records=4")
    assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result.stdout
    assert "4 records of 8x8x3" in result.stdout  # the size comes from the records
    result = run_command("coltran_tf.commands.check_gen_dir", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and result.stderr.startswith("Error: ")


def test_records_say_their_shape_and_foreign_ones_are_read_as_square(tmp_path):
    """Ours carry height/width/num_samples; the original's (image and label only)
    are square with one sample unless told otherwise."""
    import tensorflow as tf

    images = np.random.default_rng(0).integers(0, 256, (3, 6, 12, 3))  # 2 samples of 6x6
    records.write_records(str(tmp_path / "ours" / "gen0.tfrecords"), images, [0, 1, 2],
                          num_samples=2)
    assert records.gen_dir_shape(str(tmp_path / "ours")) == (6, 2)
    os.makedirs(tmp_path / "original")
    with tf.io.TFRecordWriter(str(tmp_path / "original" / "gen0.tfrecords")) as writer:
        for image in images:
            feature = {"image": tf.train.Feature(int64_list=tf.train.Int64List(
                value=image.reshape(-1).tolist())),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[0]))}
            writer.write(tf.train.Example(features=tf.train.Features(
                feature=feature)).SerializeToString())
    with pytest.raises(records.GenDataError, match="--num_samples"):
        records.gen_dir_shape(str(tmp_path / "original"))  # 216 values: not R*R*3
    assert records.gen_dir_shape(str(tmp_path / "original"), num_samples=2) == (6, 2)
