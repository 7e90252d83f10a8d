"""Staged sampling: three stages chained through TFRecords, hosts, reruns."""

import os

import numpy as np
import pytest
import tensorflow as tf

from coltran_tf.data import keys
from coltran_tf.sampling import records, staged
from configs import color_upsampler, colorizer, spatial_upsampler
from conftest import Interrupted, interrupt_after, run_command, write_tiny_models


def _read(directory, res):
    out = []
    for _, path in records.gen_files(str(directory)):
        for record in tf.data.TFRecordDataset(path):
            image, label = records.parse_example(record, res, res)
            out.append((image.numpy(), int(label)))
    return out


def _config(module, log_dir, num_outputs=4, batch_size=2):
    config = module.get_config("tiny")
    config.sample.num_outputs, config.sample.batch_size = num_outputs, batch_size
    config.sample.mode, config.sample.log_dir = "argmax", log_dir
    return config


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Models of the three stages and stage 1's samples of the bundled images."""
    root = tmp_path_factory.mktemp("staged")
    write_tiny_models(root)
    staged.run_stage(_config(colorizer, "stage1"), str(root), "sample_test",
                     str(root / "colorizer"), report=lambda line: None)
    return root


def test_three_stages_chain_through_gen_data_dir(workdir, tmp_path):
    first = _read(workdir / "stage1", 64)
    assert len(first) == 4 and all(img.shape == (64, 64, 3) for img, _ in first)
    assert all((img % 32 == 0).all() for img, _ in first)  # coarse colours, x*32
    stage2 = _config(color_upsampler, "stage2")
    stage2.sample.gen_data_dir = str(workdir / "stage1")
    staged.run_stage(stage2, str(tmp_path), "sample_test", str(workdir / "color_upsampler"),
                     report=lambda line: None)
    second = _read(tmp_path / "stage2", 64)
    assert [label for _, label in second] == [label for _, label in first]
    ground_truth = _config(color_upsampler, "stage2_gt")
    staged.run_stage(ground_truth, str(tmp_path), "sample_test",
                     str(workdir / "color_upsampler"), report=lambda line: None)
    assert any(not np.array_equal(a, b) for (a, _), (b, _) in
               zip(second, _read(tmp_path / "stage2_gt", 64)))
    stage3 = _config(spatial_upsampler, "stage3")
    stage3.resolution = [128, 128]
    stage3.sample.gen_data_dir = str(tmp_path / "stage2")
    staged.run_stage(stage3, str(tmp_path), "sample_test", str(workdir / "spatial_upsampler"),
                     report=lambda line: None)
    lines, problems = records.check_gen_dir(str(tmp_path / "stage3"), expected_records=4)
    assert problems == [] and "4 records of 128x128x3" in lines[-1], (lines, problems)


def test_a_finished_shard_is_not_redone(workdir):
    before = os.path.getmtime(workdir / "stage1" / "gen0.tfrecords")
    lines = []
    staged.run_stage(_config(colorizer, "stage1"), str(workdir), "sample_test",
                     str(workdir / "colorizer"), report=lines.append)
    assert "already exists" in lines[0]
    assert os.path.getmtime(workdir / "stage1" / "gen0.tfrecords") == before


def test_an_interrupted_shard_continues_where_it_stopped(workdir, tmp_path):
    def config():
        stage2 = _config(color_upsampler, "out", num_outputs=6)
        stage2.sample.mode = "sample"  # seeds matter: a redone batch would differ
        return stage2

    checkpoint = str(workdir / "color_upsampler")
    staged.run_stage(config(), str(tmp_path / "whole"), "sample_test", checkpoint,
                     report=lambda line: None)
    out = tmp_path / "parts" / "out"
    with pytest.raises(Interrupted):
        staged.run_stage(config(), str(tmp_path / "parts"), "sample_test", checkpoint,
                         report=interrupt_after(2))
    assert sorted(os.listdir(out)) == [".gen0.partial"]
    assert sorted(os.listdir(out / ".gen0.partial")) == ["batch0000000.tfrecords",
                                                         "plan.json"]
    with pytest.raises(records.GenDataError):
        records.check_gen_dir(str(out))  # no finished shard yet
    records.write_records(str(out / "gen9.tfrecords"), [], [])
    assert any("unfinished shards" in p for p in records.check_gen_dir(str(out))[1])
    os.remove(out / "gen9.tfrecords")

    changed = config()
    changed.seed = 7
    with pytest.raises(ValueError, match=r"seed: 0 then, 7 now.*delete that directory"):
        staged.run_stage(changed, str(tmp_path / "parts"), "sample_test", checkpoint,
                         report=lambda line: None)
    lines = []
    staged.run_stage(config(), str(tmp_path / "parts"), "sample_test", checkpoint,
                     report=lines.append)
    assert sum("done by an earlier run" in line for line in lines) == 1
    assert sorted(os.listdir(out)) == ["gen0.tfrecords"]
    whole, parts = _read(tmp_path / "whole" / "out", 64), _read(out, 64)
    assert len(whole) == len(parts) == 6
    for (a, la), (b, lb) in zip(whole, parts):
        np.testing.assert_array_equal(a, b)
        assert la == lb


def test_a_colorizer_shard_saves_uncertainty_maps_by_global_index_and_keeps_talking(
        workdir, tmp_path, monkeypatch):
    """save_uncertainty: one grey PNG per image, named by its index in the whole
    split (so hosts' maps never collide); a long batch reports its status."""
    from PIL import Image

    from coltran_tf.utils import progress

    monkeypatch.setattr(staged, "Heartbeat", lambda report, status: progress.Heartbeat(
        report, status, every=0.05))
    config = _config(colorizer, "maps", num_outputs=2, batch_size=1)
    config.sample.skip_batches, config.sample.save_uncertainty = 1, True
    lines = []
    staged.run_stage(config, str(tmp_path), "sample_test", str(workdir / "colorizer"),
                     report=lines.append)
    maps = sorted(os.listdir(tmp_path / "maps" / staged.UNCERTAINTY_DIR))
    labels = [label for _, label in _read(tmp_path / "maps", 64)]
    assert maps == [f"{index:05d}_label{label}.png" for index, label in zip((1, 2), labels)]
    for name in maps:
        with Image.open(tmp_path / "maps" / staged.UNCERTAINTY_DIR / name) as image:
            assert image.mode == "L" and image.size == (64, 64)
    assert any(line.startswith("0/2 images | sampling batch 1 | ") and
               line.endswith(" on this batch") for line in lines), lines


@pytest.mark.parametrize("hosts,expected", [
    (1, [(0, 3, "gen0")]),
    (2, [(0, 2, "gen0"), (2, 1, "gen1")]),
    (4, [(0, 1, "gen0"), (1, 1, "gen1"), (2, 1, "gen2"), (3, 0, "gen3")]),
])
def test_hosts_split_batches_contiguously(hosts, expected):
    sample = _config(colorizer, "x", num_outputs=5, batch_size=2).sample
    shards = [staged.plan_shard(sample, hosts, i) for i in range(hosts)]
    assert [(s.skip_batches, s.num_batches, s.gen_file) for s in shards] == expected
    for bad in (2, -1):
        with pytest.raises(ValueError) as error:
            staged.plan_shard(sample, 2, bad)
        assert str(error.value) == f"--host_index={bad} must be in [0, --num_hosts=2)."
    # One host by default: the config's own skip and file name.
    sample.skip_batches, sample.gen_file = 4, "mine"
    assert staged.plan_shard(sample) == staged.Shard(4, 3, "mine")
    assert staged.plan_shard(sample, 2, 1) == staged.Shard(4 + 2, 1, "gen1")


def test_two_host_jobs_together_equal_one_job(workdir, tmp_path):
    """Multi-host sampling as the design card uses it: a base skip_batches, sample
    mode (each batch seeded by its index in the whole job): two hosts == one
    job, record for record (seeding by the index within a host's shard, or
    dropping the base skip on several hosts, fails it)."""
    def sample(logdir, **hosts):
        config = _config(colorizer, "out", num_outputs=4, batch_size=2)
        config.sample.mode, config.sample.skip_batches = "sample", 1
        staged.run_stage(config, str(logdir), "sample_test", str(workdir / "colorizer"),
                         report=lambda line: None, **hosts)
        return _read(logdir / "out", 64)

    for host in range(2):
        sample(tmp_path / "hosts", num_hosts=2, host_index=host)
    alone = sample(tmp_path / "single")
    assert sorted(os.listdir(tmp_path / "hosts" / "out")) == ["gen0.tfrecords",
                                                              "gen1.tfrecords"]
    together = _read(tmp_path / "hosts" / "out", 64)
    assert len(together) == len(alone) == 4
    for (a, la), (b, lb) in zip(together, alone):
        np.testing.assert_array_equal(a, b)
        assert la == lb


def test_each_batch_is_seeded_past_every_sample_of_the_batches_before_it(workdir, tmp_path,
                                                                         monkeypatch):
    """Batch b of B images, S samples each, starts at seed + b * B * S (image i,
    sample k then takes seed + b*B*S + i*S + k: no two draws of a job share a
    seed). The stage itself is stood in for: only the seeds asked for matter."""
    from coltran_tf.sampling.pipeline import Pipeline

    seeds = []

    def record(self, name, batch, previous, mode, num_samples, seed):
        seeds.append((mode, num_samples, seed))
        count = int(batch[keys.LABEL].shape[0])
        images = np.zeros((count, 64, 64 * num_samples, 3), np.uint8)
        return {"images": images}

    monkeypatch.setattr(Pipeline, "sample_stage_repeated", record)
    config = _config(colorizer, "out", num_outputs=6, batch_size=2)
    config.sample.mode, config.sample.num_samples, config.sample.skip_batches = "sample", 3, 1
    config.seed = 100
    staged.run_stage(config, str(tmp_path), "sample_test", str(workdir / "colorizer"),
                     report=lambda line: None, num_hosts=2, host_index=1)
    # 3 batches over 2 hosts after a base skip of 1: host 1 samples batch 1 + 2 = 3.
    assert seeds == [("sample", 3, 100 + 3 * 2 * 3)]


def test_tfrecords_to_images_and_contact_sheet(workdir, tmp_path):
    from PIL import Image

    from coltran_tf.sampling import sheets

    labels = [5, 7]
    images = np.random.default_rng(0).integers(0, 256, (2, 8, 16, 3))  # 2 samples of 8x8
    records.write_records(str(tmp_path / "two" / "gen0.tfrecords"), images, labels,
                          num_samples=2)
    paths = sheets.write_pngs(str(tmp_path / "two"), str(tmp_path / "split"),
                              split_samples=True)  # the records say 2 samples
    assert [os.path.basename(p) for p in paths] == [
        "00000_label5_s0.png", "00000_label5_s1.png", "00001_label7_s0.png",
        "00001_label7_s1.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(paths[1])), images[0][:, 8:])
    with pytest.raises(ValueError, match="num_samples"):
        sheets.read_images(str(tmp_path / "two"), num_samples=3)

    sheet = tmp_path / "sheet.png"
    result = run_command(
        "coltran_tf.commands.tfrecords_to_images", f"--gen_dir={workdir / 'stage1'}",
        f"--output_dir={tmp_path / 'pngs'}", f"--stage_dirs={workdir / 'stage1'}",
        "--config=colorizer:tiny", "--config.sample.batch_size=2",
        f"--contact_sheet={sheet}")
    assert result.returncode == 0, result.stderr[-3000:]
    pngs = sorted(os.listdir(tmp_path / "pngs"))
    assert pngs == [f"{i:05d}_label0.png" for i in range(4)]
    first = _read(workdir / "stage1", 64)[0][0]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "pngs" / pngs[0])), first)
    # 4 rows x (gray, ground truth, stage 1) cells of 128 px with 4 px gaps.
    assert Image.open(sheet).size == (3 * 128 + 4 * 4, 4 * 128 + 5 * 4)


def test_sample_command_reports_bad_input(workdir, tmp_path, monkeypatch):
    def run(*args):
        return run_command("coltran_tf.commands.sample", "--mode=sample_test", *args)

    missing = run("--config=configs/colorizer.py:tiny", f"--logdir={tmp_path / 'untrained'}")
    assert missing.returncode == 2
    assert "No checkpoint" in missing.stderr and "--checkpoint=PATH" in missing.stderr
    short = run("--config=color_upsampler:tiny", f"--logdir={tmp_path}",
                f"--checkpoint={workdir / 'color_upsampler'}",
                "--config.sample.num_outputs=6", "--config.sample.batch_size=2",
                f"--config.sample.gen_data_dir={workdir / 'stage1'}")
    assert short.returncode == 2
    assert "holds 4 records but 6 are needed" in short.stderr
    # Released weights that cannot be fetched (names the URL).
    monkeypatch.setenv("COLTRAN_TF_HOME", str(tmp_path / "cache"))
    offline = run("--config=colorizer:tiny", f"--logdir={tmp_path}",
                  "--checkpoint=http://127.0.0.1:9/coltran.zip:colorizer")
    assert offline.returncode == 2
    assert "cannot reach http://127.0.0.1:9/coltran.zip" in offline.stderr


@pytest.mark.slow  # both samplers over every stage; -m slow runs it
def test_cached_sampler_by_default_loop_on_request_and_uncertainty_maps(workdir, tmp_path,
                                                                       monkeypatch):
    """config.sample.sampler routes to the loop sampler. Its run is stood in for by
    what the cached sampler drew for the same images in reference mode: that the
    two samplers agree bit for bit is test_cached_sampler.py's, and running the
    4,096-step loop here cost ~40 s (sampling again, ~15 s)."""
    from PIL import Image

    from coltran_tf.sampling import cached_sampler

    calls, drawn = [], {}
    cached = cached_sampler.sample_colorizer_cached

    def recording(model, gray, **kwargs):
        drawn[np.asarray(gray).tobytes()] = out = cached(model, gray, **kwargs)
        return out

    def loop_stand_in(model, gray, mode, norm_context, seed):
        calls.append((mode, norm_context, seed))
        out = dict(drawn[np.asarray(gray).tobytes()])
        del out["uncertainty"]  # the loop sampler's output has none of its own
        return out

    monkeypatch.setattr(cached_sampler, "sample_colorizer_cached", recording)
    monkeypatch.setattr(cached_sampler, "sample_colorizer_loop", loop_stand_in)
    runs = {}
    for sampler in ("cached", "loop"):
        config = _config(colorizer, sampler, num_outputs=1, batch_size=1)
        config.sample.norm_context = "reference"
        config.sample.sampler = sampler
        config.sample.save_uncertainty = True
        staged.run_stage(config, str(tmp_path), "sample_test", str(workdir / "colorizer"),
                         report=lambda line: None)
        runs[sampler] = _read(tmp_path / sampler, 64)
        maps = sorted(os.listdir(tmp_path / sampler / staged.UNCERTAINTY_DIR))
        assert maps == ["00000_label0.png"]
        assert Image.open(tmp_path / sampler / staged.UNCERTAINTY_DIR / maps[0]).size == (64, 64)
    assert calls and calls[0][1] == "reference"
    for (a, _), (b, _) in zip(runs["cached"], runs["loop"]):
        np.testing.assert_array_equal(a, b)
    config = _config(colorizer, "bad", num_outputs=2)
    config.sample.sampler, config.sample.top_k = "loop", 5
    with pytest.raises(ValueError, match="top_k need the cached sampler"):
        staged.run_stage(config, str(tmp_path), "sample_test", str(workdir / "colorizer"),
                         report=lambda line: None)
