"""FID, colourfulness and PSNR of generated images against reference images.

One pass over each set: every readable image is preprocessed (the protocol's
crop and resize), its colourfulness recorded and its features added to the
set's running mean and covariance (frechet.RunningMoments), so memory does
not grow with the number of images. PSNR pairs generated images with
reference images (by key, or by position) and is averaged over generated
images. Unreadable images are counted and named in the result, never dropped
silently.
"""

import itertools
import time

import numpy as np

from coltran_tf.evaluation.image_sets import PREPROCESSING, SAMPLE_SUFFIX, EvaluationError
from coltran_tf.utils import metrics
from coltran_tf.utils.progress import Rate, format_duration

METRICS = ("fid", "colorfulness", "psnr")  # of the registry (utils/metrics.py)
PAIRINGS = ("auto", "name", "index")
_NAMED_ERRORS = 20  # unreadable files listed by name in the result (all are counted)


class _SetStats:
    """One set's images read, unreadable ones, and its colourfulness (a
    registry metric); FID's moments live in the shared Frechet metric."""

    def __init__(self, label: str, fid):
        self.label, self.fid = label, fid
        self.colorfulness = metrics.create("colorfulness")
        self.unreadable, self.images = [], 0

    def add(self, image: np.ndarray) -> None:
        self.images += 1
        self.colorfulness.update(image)
        if self.fid is not None:
            self.fid.update(**{self.label: image})

    @property
    def moments(self):
        return self.fid.moments[self.label]


def _pairs(generated, reference, pairing: str):
    """(generated Item | None, reference Item | None) in one pass over both sets.

    By name, a generated NAME_s<k> (colorize --num_samples) pairs with NAME."""
    if pairing == "index":
        yield from itertools.zip_longest(generated, reference)
        return
    lookup = reference if hasattr(reference, "get") else generated
    streamed = generated if lookup is reference else reference
    wanted, seen, matched = set(lookup.keys()), set(), set()
    for item in streamed:
        if item.key in seen:
            raise EvaluationError(f"{streamed.description} has the key {item.key!r} twice; "
                                  "pairing by name needs unique names (or --pair_by=index).")
        seen.add(item.key)
        key = item.key
        sample = SAMPLE_SUFFIX.fullmatch(key)
        if key not in wanted and sample and streamed is generated:
            key = sample.group(1)
        other = lookup.get(key) if key in wanted else None
        matched.add(key)
        yield (item, other) if streamed is generated else (other, item)
    for key in sorted(wanted - matched):  # only in the looked-up set: counted, then refused
        other = lookup.get(key)
        yield (other, None) if lookup is generated else (None, other)


def resolve_pairing(pairing: str, generated, reference) -> str:
    if pairing not in PAIRINGS:
        raise EvaluationError(f"--pair_by={pairing!r}: choose one of {list(PAIRINGS)}.")
    if pairing == "auto":
        pairing = "name" if generated.named and reference.named else "index"
    if pairing == "name" and not (hasattr(generated, "get") or hasattr(reference, "get")):
        raise EvaluationError(
            "Pairing by name needs one of the two sets to be a folder (its images are looked "
            f"up by name); got {generated.description} and {reference.description}. Use "
            "--pair_by=index when both are in the same order, or write one set to a folder.")
    if pairing == "name" and not (generated.named and reference.named):
        raise EvaluationError(f"Pairing by name needs named images on both sides; "
                              f"{(generated if not generated.named else reference).description}"
                              " has positions only. Use --pair_by=index.")
    return pairing


def evaluate(generated, reference, names=METRICS, extractor=None, preprocess: str = "none",
             pairing: str = "auto", batch_size: int = 50, report=print,
             every_seconds: float = 10.0) -> dict:
    """Evaluates two image sets (evaluation.image_sets); returns the result dict.

    Raises:
      EvaluationError: unknown metrics, an empty set, unpaired or differently
        sized images for PSNR, or FID without a feature extractor.
    """
    unknown = sorted(set(names) - set(METRICS))
    if unknown or not names:
        raise EvaluationError(f"--metrics: unknown {unknown}; choose from {list(METRICS)}.")
    if preprocess not in PREPROCESSING:
        raise EvaluationError(f"--preprocess={preprocess!r}: choose one of "
                              f"{list(PREPROCESSING)}.")
    if "fid" in names and extractor is None:
        raise EvaluationError("FID needs a feature extractor.")
    transform = PREPROCESSING[preprocess] or (lambda image: image)
    fid = metrics.create("fid", extractor=extractor, batch_size=batch_size) \
        if "fid" in names else None
    stats = {"generated": _SetStats("generated", fid), "reference": _SetStats("reference", fid)}
    psnr = metrics.create("psnr")
    paired = "psnr" in names
    if paired:
        pairing = resolve_pairing(pairing, generated, reference)
        stream = _pairs(generated, reference, pairing)
    else:
        pairing = None
        stream = itertools.chain(((g, None) for g in generated), ((None, r) for r in reference))
    total = (generated.count + reference.count
             if generated.count is not None and reference.count is not None else None)
    rate, last, done = Rate(0, total or 0), time.monotonic(), 0
    unpaired = {"generated": [], "reference": []}
    counted = {"generated": set(), "reference": set()}  # a reference shared by samples: once
    for g_item, r_item in stream:
        images = {}
        for label, item in (("generated", g_item), ("reference", r_item)):
            if item is None:
                continue
            first = item.key not in counted[label]
            counted[label].add(item.key)
            done += first
            if item.error:
                if first:
                    stats[label].unreadable.append(item.error)
                continue
            images[label] = [transform(image) for image in item.images]
            for image in images[label] if first else ():
                stats[label].add(image)
        if paired:
            if g_item is None or r_item is None:
                side = "generated" if r_item is None else "reference"
                unpaired[side].append((g_item or r_item).key)
            elif len(images) == 2:
                truth = images["reference"][0]
                for image in images["generated"]:
                    if image.shape != truth.shape:
                        raise EvaluationError(
                            f"Generated {g_item.key!r} is {image.shape[:2]} but its reference "
                            f"{r_item.key!r} is {truth.shape[:2]}; PSNR needs equal sizes "
                            "(pass --preprocess=center_crop_256 or resize_256, or use a "
                            "--protocol that sets one).")
                    psnr.update(image, truth)
        if time.monotonic() - last >= every_seconds:
            last = time.monotonic()
            per_second, eta = rate.update(done)
            report(f"{done}/{total or '?'} images | {per_second:.1f} images/s | "
                   f"ETA {format_duration(eta) if total else '?'}")
    return _result(stats, names, fid, extractor, psnr, unpaired, pairing, generated, reference)


def _result(stats, names, fid, extractor, psnr, unpaired, pairing, generated,
            reference) -> dict:
    g, r = stats["generated"], stats["reference"]
    for s, source in ((g, generated), (r, reference)):
        if s.images == 0:
            raise EvaluationError(f"No readable images in the {s.label} set "
                                  f"({source.description}, {len(s.unreadable)} unreadable).")
    if unpaired["generated"] or unpaired["reference"]:
        raise EvaluationError(
            f"PSNR pairs images by {pairing}, and {len(unpaired['generated'])} generated and "
            f"{len(unpaired['reference'])} reference images have no partner (e.g. "
            f"{(unpaired['generated'] or unpaired['reference'])[:3]}); "
            f"{generated.description} vs {reference.description}. Evaluate matching sets, "
            "or leave psnr out of --metrics.")
    result = {"num_images": g.images, "num_reference_images": r.images,
              "metrics": list(names), "warnings": [],
              "unreadable": {s.label: len(s.unreadable) for s in (g, r)},
              "unreadable_files": {s.label: s.unreadable[:_NAMED_ERRORS] for s in (g, r)},
              "generated": generated.description, "reference": reference.description}
    if "fid" in names:
        fid.flush()
        result["feature_extractor"] = extractor.name
        dimensions = g.moments.dimensions
        for s in (g, r):
            if s.moments.count < 2:
                raise EvaluationError(f"FID needs at least 2 {s.label} images, got "
                                      f"{s.moments.count}.")
            if s.moments.count <= dimensions:
                result["warnings"].append(
                    f"FID from {s.moments.count} {s.label} images and {dimensions}-d features: "
                    "the covariance has rank below its dimension, so the value is biased and "
                    "not comparable with published FIDs (use more images than feature "
                    "dimensions; papers use 5,000 or more).")
        result["fid"] = fid.result()
    if "colorfulness" in names:
        generated_cf, reference_cf = g.colorfulness.result(), r.colorfulness.result()
        result.update(colorfulness=generated_cf, colorfulness_reference=reference_cf,
                      delta_colorfulness=abs(generated_cf - reference_cf))
    if "psnr" in names:
        result.update(psnr=psnr.result() if psnr.count else float("inf"),
                      psnr_pairs=psnr.count, psnr_identical=psnr.nonfinite, pairing=pairing)
        if psnr.nonfinite:
            result["warnings"].append(f"{psnr.nonfinite} generated images equal their "
                                      "reference (infinite PSNR); the mean is over the others.")
    for s in (g, r):
        if s.unreadable:
            result["warnings"].append(f"{len(s.unreadable)} {s.label} images could not be read "
                                      f"and were left out (e.g. {s.unreadable[0]}).")
    return result


def markdown_table(result: dict) -> str:
    """The result as a one-row Markdown table."""
    columns = [("FID", "fid", "{:.2f}"), ("CF", "colorfulness", "{:.2f}"),
               ("CF ref", "colorfulness_reference", "{:.2f}"),
               ("dCF", "delta_colorfulness", "{:.2f}"), ("PSNR", "psnr", "{:.2f}"),
               ("images", "num_images", "{}"), ("reference images", "num_reference_images", "{}")]
    shown = [(title, key, form) for title, key, form in columns if key in result]
    lines = ["| protocol | " + " | ".join(t for t, _, _ in shown) + " |",
             "|---|" + "---:|" * len(shown),
             f"| {result.get('protocol') or 'custom'} | "
             + " | ".join(form.format(result[key]) for _, key, form in shown) + " |"]
    return "\n".join(lines)
