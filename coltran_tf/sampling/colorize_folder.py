"""Colorizing a folder of photos with all three ColTran stages in one process.

For every image file under `img_dir` (any size and aspect ratio, grayscale or
colour; colour photos are recolorized from their luminance):
  1. the whole image is resized (area) to the spatial upsampler's square
     resolution (256) and to the colorizer's (64) — squeezed, not cropped, so
     every pixel gets a colour;
  2. the colorizer samples coarse colours (stage1/, with the per-pixel max
     probability in uncertainty/, white = certain), the color upsampler
     turns them into 8-bit colours (stage2/), the spatial upsampler into a
     256x256 image (final/);
  3. the chroma of the final image (YCbCr, BT.601) is resized back to the
     original size and combined with the original full-resolution luminance
     (fullres/), so sharpness and tones are the photo's own.

Outputs keep the input's relative path with a .png suffix (`_s<k>` per sample
when num_samples > 1). Each file is written under a temporary name and
renamed. A re-run skips outputs that exist and reuses stage-1 images (the
expensive stage) of unfinished ones; `run.json` records the models and
settings (precision included), and a re-run with other ones is refused, naming
the setting and both values, instead of mixing results. While a batch runs, a
progress line comes every 2 s (images done, the batch's photos, ETA).
"""

import json
import os
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from PIL import Image

from coltran_tf.configs import stages
from coltran_tf.data.decode import IMAGE_EXTENSIONS, find_images, is_grayscale, read_image
from coltran_tf.sampling.pipeline import Pipeline
from coltran_tf.sampling.sheets import contact_sheet
from coltran_tf.sampling.staged import uncertainty_image
from coltran_tf.utils.color import apply_chroma
from coltran_tf.utils.files import settings_changes, write_json
from coltran_tf.utils.images import TMP_SUFFIX, save_png
from coltran_tf.utils.precision import model_precision
from coltran_tf.utils.progress import Heartbeat, Rate, format_duration

STAGE_DIRS = ("uncertainty", "stage1", "stage2", "final", "fullres")  # in writing order
RUN_FILE = "run.json"
REPORT_FILE = "report.json"
SHEET_FILE = "contact_sheet.png"


class ColorizeError(ValueError):
    """Input or settings that stop a colorize run before it starts."""


# -- inputs --------------------------------------------------------------------

def list_images(img_dir: str, exclude: str | None = None) -> list[str]:
    """Image files under img_dir (recursively, sorted), relative to it."""
    if not os.path.isdir(img_dir):
        raise ColorizeError(f"--img_dir={img_dir!r} is not a directory; point it at a folder "
                            "of photos.")
    found, others = find_images(img_dir, exclude=exclude)
    if not found:
        raise ColorizeError(
            f"--img_dir={img_dir!r} holds no image files ({others} other file(s)); "
            f"supported extensions: {' '.join(IMAGE_EXTENSIONS)}.")
    return found


def output_stems(relpaths: list[str]) -> dict:
    """Relative input path -> output stem; 'a.jpg' and 'a.png' both present get
    'a_jpg' and 'a_png' so that neither overwrites the other."""
    stems = {rel: os.path.splitext(rel)[0] for rel in relpaths}
    counts = {}
    for stem in stems.values():
        counts[stem.lower()] = counts.get(stem.lower(), 0) + 1
    return {rel: (stem if counts[stem.lower()] == 1
                  else f"{stem}_{os.path.splitext(rel)[1][1:].lower()}")
            for rel, stem in stems.items()}


# -- the run ------------------------------------------------------------------------

@dataclass
class _Item:
    """One output to make: sample k of one input file."""
    rel: str
    stem: str
    k: int
    rgb: np.ndarray
    seed: int


def _name(stem: str, k: int, num_samples: int) -> str:
    return f"{stem}_s{k}.png" if num_samples > 1 else f"{stem}.png"


def _path(store_dir, stage, stem, k, num_samples):
    return os.path.join(store_dir, stage, _name(stem, k, num_samples))


def _check_run_file(store_dir: str, settings: dict, overwrite: bool) -> None:
    path = os.path.join(store_dir, RUN_FILE)
    if not overwrite and os.path.exists(path):
        with open(path) as f:
            if "precision" not in json.load(f):  # recorded before precision was: float32
                settings = {k: v for k, v in settings.items() if k != "precision"}
    changes = None if overwrite else settings_changes(path, settings)
    if changes:
        raise ColorizeError(
            f"--store_dir={store_dir!r} holds results of a run with other settings "
            f"({changes}). Use a new --store_dir, re-run with the earlier settings, or pass "
            "--overwrite to replace those results.")
    os.makedirs(store_dir, exist_ok=True)
    write_json(path, settings)


def _remove_leftovers(store_dir: str) -> None:
    """Temporary files of a run that was killed while writing."""
    for stage in STAGE_DIRS:
        for root, _, files in os.walk(os.path.join(store_dir, stage)):
            for name in files:
                if name.endswith(TMP_SUFFIX):
                    os.remove(os.path.join(root, name))


def _cached_stage1(path: str, low: int):
    """A stage-1 image of an earlier run, or None if absent or not coarse."""
    if not os.path.exists(path):
        return None
    try:
        image = np.asarray(Image.open(path).convert("RGB"))
    except OSError:
        return None
    if image.shape != (low, low, 3) or (image % 32).any():
        return None
    return image


def _run_batch(pipeline, items, store_dir, num_samples, mode, upsampler_mode, seed):
    low = pipeline.low
    batch = pipeline.prepare([item.rgb for item in items])
    paths = {stage: [_path(store_dir, stage, item.stem, item.k, num_samples) for item in items]
             for stage in STAGE_DIRS}
    coarse = np.zeros((len(items), low, low, 3), np.uint8)
    todo = []
    for i, path in enumerate(paths["stage1"]):
        cached = _cached_stage1(path, low)
        if cached is None:
            todo.append(i)
        else:
            coarse[i] = cached
    if todo:  # the first stage, for the images an earlier run has not done
        subset = {key: tf.gather(value, todo) for key, value in batch.items()}
        sampled = pipeline.chain(subset, [mode], [[items[i].seed for i in todo]],
                                 stop=1)[0]
        coarse[todo] = sampled["images"]
        for j, i in enumerate(todo):  # the map first: a stage-1 image implies its map
            save_png(uncertainty_image(sampled["uncertainty"][j]), paths["uncertainty"][i])
            save_png(coarse[i], paths["stage1"][i])
    colors, final = (out["images"] for out in pipeline.chain(
        batch, upsampler_mode, seed, previous=coarse, start=1))
    for i, item in enumerate(items):
        save_png(colors[i], paths["stage2"][i])
        save_png(final[i], paths["final"][i])
        save_png(apply_chroma(item.rgb, final[i]), paths["fullres"][i])  # written last
    return len(items) - len(todo)


def _write_sheet(store_dir, img_dir, done_files, stems, num_samples, max_rows):
    rows = done_files[:max_rows]
    if not rows:
        return None
    columns = [[read_image(os.path.join(img_dir, rel)) for rel in rows]]

    def load(stage, rel, k):
        path = _path(store_dir, stage, stems[rel], k, num_samples)
        if not os.path.exists(path):  # e.g. no map from an interrupted older run
            return np.zeros((8, 8, 3), np.uint8)
        return np.asarray(Image.open(path).convert("RGB"))

    for k in range(num_samples):  # each sample, then its uncertainty (white = certain)
        columns.append([load("fullres", rel, k) for rel in rows])
        columns.append([load("uncertainty", rel, k) for rel in rows])
    path = os.path.join(store_dir, SHEET_FILE)
    save_png(contact_sheet(columns, cell=160, max_width=320, resample=Image.BILINEAR), path)
    return path


def _precision(pipeline: Pipeline) -> str:
    """The precision the stages compute in (float32 or bfloat16; one name when all
    agree, else stage=precision pairs)."""
    found = {name: model_precision(model) for name, model in pipeline.models.items()}
    if len(set(found.values())) == 1:
        return next(iter(found.values()))
    return ", ".join(f"{name}={value}" for name, value in found.items())


def colorize_folder(pipeline: Pipeline, img_dir: str, store_dir: str, num_samples: int = 1,
                    batch_size: int = 4, mode: str = "sample", upsampler_mode: str = "argmax",
                    seed: int = 0, overwrite: bool = False, sheet_rows: int = 32,
                    report=print) -> dict:
    """Colorizes every image under img_dir into store_dir; returns a summary.

    Args:
      pipeline: the three stages, and how the colorizer samples (its options).
      num_samples: colourings per image (coloured independently).
      batch_size: outputs computed together.
      mode: the colorizer's "sample" (diverse) or "argmax" (most likely colours).
      upsampler_mode: the upsamplers' "argmax" (the paper's choice) or "sample".
      seed: sample k of the n-th image (sorted paths) uses seed + n * num_samples
        + k, whatever the batching or an interruption (upsamplers in "sample"
        mode: seed + the batch's index).
      overwrite: recompute outputs that exist (and accept changed settings).
      sheet_rows: at most this many images in contact_sheet.png (0: none).

    Returns:
      (also written to report.json) {"colorized": [relative paths of every image
      done, this run or earlier], "resumed": images finished by an earlier run,
      "reused_stage1": stage-1 images of an earlier run reused, "skipped":
      [{"file", "reason"}], "contact_sheet": path or None, "grayscale" / "color":
      images of each kind colorized this run}.
    """
    if pipeline.names != stages.NAMES:
        raise ColorizeError(f"Colorizing needs every stage ({', '.join(stages.NAMES)}); this "
                            f"pipeline has {', '.join(pipeline.names)}.")
    if num_samples < 1 or batch_size < 1:
        raise ColorizeError(f"--num_samples={num_samples} and --batch_size={batch_size} must "
                            "be at least 1.")
    relpaths = list_images(img_dir, exclude=store_dir)
    stems = output_stems(relpaths)
    order = {rel: n for n, rel in enumerate(relpaths)}
    settings = {"models": pipeline.sources, "num_samples": num_samples, "mode": mode,
                "upsampler_mode": upsampler_mode, "seed": seed,
                "sampler": pipeline.options.as_dict(), "precision": _precision(pipeline)}
    _check_run_file(store_dir, settings, overwrite)
    _remove_leftovers(store_dir)

    def missing(rel):
        return [k for k in range(num_samples) if overwrite or not os.path.exists(
            _path(store_dir, "fullres", stems[rel], k, num_samples))]

    pending = {rel: ks for rel in relpaths if (ks := missing(rel))}
    finished_before = len(relpaths) - len(pending)
    total = sum(len(ks) for ks in pending.values())
    report(f"{len(relpaths)} image(s) in {img_dir}: {finished_before} already colorized, "
           f"{len(pending)} to do ({total} output(s)) -> {store_dir}")
    for stage, source in pipeline.sources.items():
        report(f"  {stage}: {source}")
    if overwrite:  # recompute stage 1 instead of reusing it
        for rel, ks in pending.items():
            for k in ks:
                path = _path(store_dir, "stage1", stems[rel], k, num_samples)
                if os.path.exists(path):
                    os.remove(path)

    skipped, kinds, done_outputs, reused, batch_index = [], {"grayscale": 0, "color": 0}, 0, 0, 0
    rate = Rate(0, total)
    queue: list[_Item] = []

    def status(items):
        eta = rate.update(done_outputs)[1]
        eta_text = format_duration(eta) if done_outputs else "?"
        names = ", ".join(dict.fromkeys(item.rel for item in items))
        return f"{done_outputs}/{total} colorized | working on {names} | ETA {eta_text}"

    def flush(items):
        nonlocal done_outputs, reused, batch_index
        with Heartbeat(report, lambda: status(items)):
            reused += _run_batch(pipeline, items, store_dir, num_samples, mode,
                                 upsampler_mode, seed + batch_index)
        batch_index += 1
        done_outputs += len(items)
        per_sec, eta = rate.update(done_outputs)
        extra = f" | {len(skipped)} skipped" if skipped else ""
        report(f"{done_outputs}/{total} colorized | {per_sec:.2f} images/s | "
               f"ETA {format_duration(eta)}{extra}")

    for rel, ks in pending.items():
        try:
            rgb = read_image(os.path.join(img_dir, rel))
        except Exception as error:  # noqa: BLE001 - one bad file never stops the others
            skipped.append((rel, f"{type(error).__name__}: {error}"))
            total -= len(ks)
            rate.total = total
            report(f"Skipping {rel}: unreadable ({type(error).__name__}: {error})")
            continue
        kinds["grayscale" if is_grayscale(rgb) else "color"] += 1
        first = seed + order[rel] * num_samples
        queue += [_Item(rel, stems[rel], k, rgb, first + k) for k in ks]
        while len(queue) >= batch_size:
            flush(queue[:batch_size])
            queue = queue[batch_size:]
    if queue:
        flush(queue)

    skipped_files = {rel for rel, _ in skipped}
    colorized = [rel for rel in relpaths if rel not in skipped_files]
    sheet = _write_sheet(store_dir, img_dir, colorized, stems, num_samples, sheet_rows)
    summary = {"colorized": colorized, "resumed": finished_before, "reused_stage1": reused,
               "skipped": [{"file": rel, "reason": reason} for rel, reason in skipped],
               "contact_sheet": sheet, **kinds}
    write_json(os.path.join(store_dir, REPORT_FILE), summary, sort_keys=False)
    report(f"Done: {len(colorized)} image(s) colorized in {store_dir}/fullres "
           f"({kinds['grayscale']} grayscale, {kinds['color']} colour recolorized from their "
           f"luminance this run; {finished_before} finished by an earlier run).")
    if sheet:
        report(f"Contact sheet: {sheet}")
    if skipped:
        report(f"{len(skipped)} file(s) skipped:")
        for rel, reason in skipped:
            report(f"  {rel}: {reason}")
    return summary
