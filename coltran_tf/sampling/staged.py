"""The staged sampler: each ColTran stage as a shardable job, as the original
implementation samples (one job per stage, TFRecords between them).

Stage 1 (colorizer) samples coarse colours for grayscale images of a split;
stage 2 (color upsampler) and stage 3 (spatial upsampler) read the previous
stage's records from `config.sample.gen_data_dir` (or condition on ground
truth without it) and write their own, in the original's TFRecord schema.
"""

import math
import os
import shutil
from dataclasses import dataclass

import numpy as np

from coltran_tf.checkpoints.loading import load_weights
from coltran_tf.configs import stages
from coltran_tf.configs.sampler import SamplerOptions
from coltran_tf.data import datasets, keys
from coltran_tf.models.builder import build_model
from coltran_tf.sampling.pipeline import Pipeline
from coltran_tf.sampling.records import PARTIAL_SUFFIX, read_gen_dir, read_records, write_records
from coltran_tf.utils.files import settings_changes, write_json
from coltran_tf.utils.images import save_png
from coltran_tf.utils.progress import Heartbeat, Rate, format_duration

MODES = ("sample_train", "sample_valid", "sample_test")
UNCERTAINTY_DIR = "uncertainty"  # per-image PNGs of the colorizer's max probability


@dataclass(frozen=True)
class Shard:
    """Which batches this job samples and where it writes them."""
    skip_batches: int
    num_batches: int
    gen_file: str


def plan_shard(sample, num_hosts: int = 1, host_index: int = 0) -> Shard:
    """config.sample (+ hosts) -> this job's shard.

    With one host, the config's skip_batches and gen_file are used as they
    are. With H hosts, the ceil(num_outputs / batch_size) batches are split in
    H contiguous runs; host i starts at skip_batches + i * per_host and writes
    gen<i>, so the next stage reads the hosts' files in order.
    """
    if not 0 <= host_index < num_hosts:
        raise ValueError(f"--host_index={host_index} must be in [0, --num_hosts={num_hosts}).")
    total = math.ceil(int(sample.num_outputs) / int(sample.batch_size))
    if num_hosts == 1:
        return Shard(int(sample.skip_batches), total, str(sample.gen_file))
    per_host = math.ceil(total / num_hosts)
    count = max(0, min(per_host, total - host_index * per_host))
    return Shard(int(sample.skip_batches) + host_index * per_host, count, f"gen{host_index}")


def uncertainty_image(uncertainty) -> np.ndarray:
    """Per-pixel max probability (..., H, W) -> uint8 image, 255 = certain."""
    return np.round(np.clip(np.asarray(uncertainty), 0, 1) * 255).astype(np.uint8)


def _open_partial(directory: str, plan: dict) -> None:
    """Creates the directory of an unfinished shard, or checks that its batches
    were made by the same job (same shard, batch size, model, conditioning)."""
    path = os.path.join(directory, "plan.json")
    changes = settings_changes(path, plan)
    if changes:
        raise ValueError(
            f"{directory} holds batches of an interrupted run with other settings "
            f"({changes}). Re-run with the earlier settings to finish it, or delete that "
            "directory to start this shard afresh.")
    if not os.path.exists(path):
        os.makedirs(directory, exist_ok=True)
        write_json(path, plan)


def run_stage(config, logdir: str, mode: str, checkpoint: str | None = None,
              num_hosts: int = 1, host_index: int = 0, report=print) -> str:
    """Samples this job's shard and writes it; returns the records' path.

    Every finished batch is written at once (atomically) to
    `.<gen_file>.partial/` beside the output, so an interrupted job continues
    with the next batch when re-run; the shard file itself is written under a
    temporary name and renamed when all batches are done, so a job whose file
    exists is complete and is skipped. Sample mode seeds each batch with
    config.seed + its index in the whole job, so shards split over hosts
    sample what one host would.
    """
    if mode not in MODES:
        raise ValueError(f"--mode={mode!r}; choose one of {MODES}.")
    sample = config.sample
    shard = plan_shard(sample, num_hosts, host_index)
    out_dir = os.path.join(logdir, sample.log_dir)
    path = os.path.join(out_dir, f"{shard.gen_file}.tfrecords")
    if os.path.exists(path):
        report(f"{path} already exists (a finished shard); nothing to do.")
        return path
    model, source = load_weights(build_model(config), checkpoint or logdir)
    stage = stages.of_model_name(model.name)
    pipeline = Pipeline(model, options=SamplerOptions.from_mapping(sample))
    sampler = pipeline.samplers[stage.name]
    batch_size, num_samples = int(sample.batch_size), int(sample.num_samples)
    data = datasets.get_dataset(config, mode[len("sample_"):], batch_size, training=False)
    data = data.skip(shard.skip_batches).take(shard.num_batches)
    gen_dir = sample.get("gen_data_dir", "")  # the colorizer's config has none
    previous = (read_gen_dir(gen_dir, int(config.downsample_res), batch_size,
                             shard.skip_batches, shard.num_batches) if gen_dir else None)
    partial = os.path.join(out_dir, f".{shard.gen_file}{PARTIAL_SUFFIX}")
    save_uncertainty = bool(sample.get("save_uncertainty", False))  # a colorizer's option
    _open_partial(partial, {
        "split": mode, "skip_batches": shard.skip_batches, "num_batches": shard.num_batches,
        "batch_size": batch_size, "num_samples": num_samples, "mode": str(sample.mode),
        "seed": int(config.seed), "model": source,
        "sampler": sampler.settings(),
        "gen_data_dir": os.path.abspath(gen_dir) if gen_dir else ""})
    condition = ("" if stage.takes is None else
                 f" conditioned on {gen_dir}" if gen_dir else " conditioned on ground truth")
    report(f"Sampling {shard.num_batches} batch(es) of {batch_size} with {source}{condition} "
           f"-> {path}")
    images, labels = [], []
    rate, total = Rate(0, shard.num_batches * batch_size), shard.num_batches * batch_size
    pairs = zip(data, previous) if previous is not None else ((b, None) for b in data)
    resolution = model.resolution
    for index, (batch, prev) in enumerate(pairs):
        batch_index = shard.skip_batches + index
        chunk = os.path.join(partial, f"batch{batch_index:07d}.tfrecords")
        if os.path.exists(chunk):
            out, batch_labels = read_records(chunk, resolution, resolution * num_samples)
            rate.resumed(len(out))
            report(f"batch {batch_index}: done by an earlier run, reusing {chunk}")
        else:
            status = f"{len(images)}/{total} images | sampling batch {batch_index}"
            with Heartbeat(report, lambda status=status: status):
                sampled = pipeline.sample_stage_repeated(
                    stage.name, batch, None if prev is None else prev[0], str(sample.mode),
                    num_samples, int(config.seed) + batch_index * batch_size * num_samples)
            out = sampled["images"]
            batch_labels = batch[keys.LABEL].numpy().tolist()
            if save_uncertainty and "uncertainty" in sampled:  # before the chunk: a reused
                # chunk has its maps
                for i, (map_, label) in enumerate(zip(sampled["uncertainty"], batch_labels)):
                    save_png(uncertainty_image(map_), os.path.join(
                        out_dir, UNCERTAINTY_DIR,
                        f"{batch_index * batch_size + i:05d}_label{label}.png"))
            write_records(chunk, out, batch_labels, num_samples)
        images.extend(out)
        labels.extend(batch_labels)
        per_sec, eta = rate.update(len(images))
        report(f"{len(images)}/{total} images | {per_sec:.2f} images/s | "
               f"ETA {format_duration(eta)}")
    if len(images) < shard.num_batches * batch_size and shard.num_batches:
        report(f"Note: the split ran out after {len(images)} images.")
    write_records(path, images, labels, num_samples)
    shutil.rmtree(partial, ignore_errors=True)
    return path
