"""PSNR@N, B-PSNR@N and PEV@N on a folder of photos with fixed hint files
(Yun et al. 2023, Sec. 4.1): the official protocol.

Per image: PIL bilinear resize to 224x224 (squeezed); hints read from
`<hint_dir>/h2-n<N>/<stem>.txt` with the ground truth's 2x2 Lab mean as
colour; prediction = [L of the ground truth, predicted ab] -> RGB, clipped and
8-bit quantized; metrics against the resized ground truth; means over images.
"""

import os

import numpy as np
from PIL import Image

from coltran_tf.data.decode import read_image
from coltran_tf.data.sources import list_image_files
from coltran_tf.icolorit.color import AB_NORM, lab_to_uint8, normalize_lab, rgb_to_lab
from coltran_tf.icolorit.hints import EVAL_HINT_COUNTS, read_hint_file
from coltran_tf.icolorit.inference import forward
from coltran_tf.icolorit.metrics import EVALUATED, create
from coltran_tf.icolorit.model import IMAGE_SIZE, network_input
from coltran_tf.utils import metrics
from coltran_tf.utils.files import write_json
from coltran_tf.utils.image_metrics import EvaluationError
from coltran_tf.utils.images import save_png


def image_dir(data_dir: str) -> str:
    """The official layout keeps images in <root>/imgs/; a plain folder works too."""
    nested = os.path.join(data_dir, "imgs")
    return nested if os.path.isdir(nested) else data_dir


def load_ground_truth(path: str) -> np.ndarray:
    """(224, 224, 3) float in [0, 1]: 8-bit, PIL-bilinear squeezed."""
    image = Image.fromarray(read_image(path)).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
    return np.asarray(image, np.float32) / 255.0


def predict(model, ground_truth: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(B, 224, 224, 3) [0, 1] + (B, 12544) mask_not_hint -> (B, 224, 224, 3) 8-bit/255."""
    lab = np.asarray(rgb_to_lab(ground_truth))
    ab = forward(model, network_input(normalize_lab(lab), masks)) * AB_NORM
    return lab_to_uint8(lab[..., :1], ab) / 255.0


def evaluate_folder(model, data_dir: str, hint_dir: str, counts=EVAL_HINT_COUNTS,
                    batch_size: int = 16, store_dir: str | None = None, lpips=None) -> dict:
    """{N: {"PSNR": .., "B-PSNR": .., "PEV": .., ["LPIPS": ..,] "images": n}} per hint count N.

    store_dir: also write the predictions as <store_dir>/h2-n<N>/<stem>.png.
    lpips: an icolorit.lpips.LPIPS (user-supplied weights) to add LPIPS.
    """
    root = image_dir(data_dir)
    files = list_image_files(root)
    stems = [os.path.splitext(f)[0] for f in files]
    results = {}
    for count in counts:
        folder = os.path.join(hint_dir, f"h2-n{count}")
        missing = [s for s in stems if not os.path.exists(os.path.join(folder, s + ".txt"))]
        if missing:
            raise EvaluationError(
                f"{len(missing)} hint files missing in {folder} (e.g. {missing[0]}.txt); "
                "write a fixed set with --make_hints or point --hint_dir at the official ones.")
        scores = {name: create(name) for name in EVALUATED}
        if lpips is not None:
            scores["LPIPS"] = metrics.create("lpips", distance=lpips.distance)
        for start in range(0, len(files), batch_size):
            chunk = range(start, min(start + batch_size, len(files)))
            truth = np.stack([load_ground_truth(os.path.join(root, files[i])) for i in chunk])
            masks = np.stack([read_hint_file(os.path.join(folder, stems[i] + ".txt"))
                              for i in chunk])
            predicted = predict(model, truth, masks)
            if lpips is not None:
                scores["LPIPS"].update(predicted, truth)
            for i, p, t in zip(chunk, predicted, truth):
                for name in EVALUATED:
                    scores[name].update(p, t)
                if store_dir:
                    save_png((p * 255).round().astype(np.uint8),
                             os.path.join(store_dir, f"h2-n{count}", stems[i] + ".png"))
        results[count] = {name: _mean(metric) for name, metric in scores.items()}
        results[count]["images"] = len(files)
    return results


def _mean(metric) -> float:
    """The mean over images, the capped PSNR's 50 dB included (never infinite)."""
    return float(np.mean(metric.values + [np.inf] * metric.nonfinite)) if metric.count \
        else float("nan")


def results_table(results: dict, title: str) -> str:
    """A Markdown table: one row per hint count."""
    names = [name for name in next(iter(results.values())) if name != "images"]
    lines = [f"### {title}", "", "| hints | " + " | ".join(names) + " | images |",
             "|---:|" + "---:|" * (len(names) + 1)]
    for count, row in results.items():
        lines.append(f"| {count} | " + " | ".join(f"{row[n]:.3f}" for n in names)
                     + f" | {row['images']} |")
    return "\n".join(lines) + "\n"


def write_results(results: dict, title: str, store_dir: str) -> str:
    os.makedirs(store_dir, exist_ok=True)
    write_json(os.path.join(store_dir, "results.json"), {str(k): v for k, v in results.items()})
    table = results_table(results, title)
    with open(os.path.join(store_dir, "results.md"), "w") as f:
        f.write(table)
    return table


def psnr_by_hint_count(model, truths: np.ndarray, counts, draws: int = 8,
                       seed: int = 0) -> dict:
    """{N: mean PSNR over photos and draws} with N hints at random distinct 2x2
    cells in each of `draws` sets per photo, coloured from the ground truth
    (the paper's protocol with random hint sets; truths: (P, 224, 224, 3) in
    [0, 1], as load_ground_truth gives)."""
    cells = (IMAGE_SIZE // 2) ** 2
    rng = np.random.default_rng(seed)
    results = {}
    for count in counts:
        masks = np.ones((draws * len(truths), cells), np.float32)
        for row in masks:
            row[rng.choice(cells, size=int(count), replace=False)] = 0.0
        repeated = np.repeat(truths, draws, axis=0)
        metric = create("PSNR")
        for predicted, truth in zip(predict(model, repeated, masks), repeated):
            metric.update(predicted, truth)
        results[count] = _mean(metric)
    return results
