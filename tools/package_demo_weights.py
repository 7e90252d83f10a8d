"""Packages trained demo runs into coltran_tf/demo/ (the last step of
tools/train_demo_weights.sh).

  python tools/package_demo_weights.py --runs=runs/demo --out=coltran_tf/demo

Copies each ColTran stage's exported EMA weights (LOGDIR/export) and training
log, stores iColoriT-T as float16 (half the size), draws the training curves
(training_curves.png) and writes manifest.json (steps, final losses, sizes,
the reproducing command).
"""

import json
import os
import shutil

import _paths  # noqa: F401
import numpy as np
from absl import app, flags
from PIL import Image, ImageDraw

from coltran_tf.configs.stages import NAMES as STAGES

flags.DEFINE_string("runs", "runs/demo", "Directory of the four training runs.")
flags.DEFINE_string("out", "coltran_tf/demo", "Where the packaged weights go.")
flags.DEFINE_list("models", [*STAGES, "icolorit"], "Which runs to package; the others keep "
                  "what --out holds (their manifest entries and logs feed the curves).")

COMMAND = "bash tools/train_demo_weights.sh"


def _read_log(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _read_manifest(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)["models"]


def _curve_panel(draw, box, title, steps, values, color):
    left, top, right, bottom = box
    draw.rectangle(box, outline=(90, 90, 90))
    draw.text((left + 6, top + 4), title, fill=(20, 20, 20))
    if len(values) < 2:
        return
    low, high = float(np.min(values)), float(np.max(values))
    high = high if high > low else low + 1.0
    x0, x1, y0, y1 = left + 40, right - 8, top + 20, bottom - 18
    draw.text((left + 2, y0 - 6), f"{high:.2f}", fill=(80, 80, 80))
    draw.text((left + 2, y1 - 6), f"{low:.2f}", fill=(80, 80, 80))
    draw.text((x1 - 60, bottom - 14), f"step {int(steps[-1])}", fill=(80, 80, 80))
    points = [(x0 + (x1 - x0) * (s - steps[0]) / max(1, steps[-1] - steps[0]),
               y1 - (y1 - y0) * (v - low) / (high - low)) for s, v in zip(steps, values)]
    draw.line(points, fill=color, width=2)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from coltran_tf.icolorit.convert import load_saved, save_compact

    f = flags.FLAGS
    os.makedirs(f.out, exist_ok=True)
    manifest, curves = {"command": COMMAND, "models": {}}, []
    kept_path = os.path.join(f.out, "manifest.json")
    kept = _read_manifest(kept_path)
    for stage in STAGES:
        run = os.path.join(f.runs, stage)
        target = os.path.join(f.out, stage)
        if stage not in f.models:
            manifest["models"][stage] = kept[stage]
            log = _read_log(os.path.join(target, "train_log.jsonl"))
            curves.append((f"{stage}: loss (bits/dim)", [r["step"] for r in log],
                           [r["loss_bits_per_dim"] for r in log]))
            continue
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(os.path.join(run, "export"), target)
        metadata_path = os.path.join(target, "metadata.json")
        with open(metadata_path) as fh:  # no absolute paths of this machine in the package
            metadata = json.load(fh)
        for key in ("checkpoint", "logdir"):
            if key in metadata:
                metadata[key] = os.path.relpath(metadata[key])
        with open(metadata_path, "w") as fh:
            json.dump(metadata, fh, indent=1)
            fh.write("\n")
        log = _read_log(os.path.join(run, "train_log.jsonl"))
        shutil.copy(os.path.join(run, "train_log.jsonl"), os.path.join(target, "train_log.jsonl"))
        with open(os.path.join(target, "config.json")) as fh:
            config = json.load(fh)
        manifest["models"][stage] = {
            "config": f"configs/{stage}.py:demo", "steps": log[-1]["step"],
            "final_loss_bits_per_dim": round(log[-1]["loss_bits_per_dim"], 4),
            "first_loss_bits_per_dim": round(log[0]["loss_bits_per_dim"], 4),
            "hidden_size": config["model"]["hidden_size"],
            "bytes": os.path.getsize(os.path.join(target, "model.weights.h5"))}
        curves.append((f"{stage}: loss (bits/dim)", [r["step"] for r in log],
                       [r["loss_bits_per_dim"] for r in log]))
    run = os.path.join(f.runs, "icolorit")
    target = os.path.join(f.out, "icolorit")
    if "icolorit" in f.models:
        shutil.rmtree(target, ignore_errors=True)
        model = load_saved(os.path.join(run, "model"))
        save_compact(model, target)
        shutil.copy(os.path.join(run, "log.jsonl"), os.path.join(target, "train_log.jsonl"))
    log = _read_log(os.path.join(target, "train_log.jsonl"))
    smooth = np.convolve([r["loss"] for r in log], np.ones(5) / 5, mode="valid")
    if "icolorit" in f.models:
        manifest["models"]["icolorit"] = {
            "config": "configs/icolorit.py:demo", "steps": log[-1]["step"],
            "data": "tools/make_hint_training_set.py (photos, recoloured photos, scenes)",
            "final_loss_mean_of_last_5_logs": round(float(smooth[-1]), 5),
            "first_loss_mean_of_first_5_logs": round(float(smooth[0]), 5),
            "parameters": int(model.count_params()),
            "bytes": os.path.getsize(os.path.join(target, "model.weights.npz"))}
    else:
        manifest["models"]["icolorit"] = kept["icolorit"]
    curves.append(("iColoriT-T: Huber loss (x200), mean of 5 logs",
                   [r["step"] for r in log][4:], list(smooth)))

    width, height = 900, 520
    sheet = Image.new("RGB", (width, height), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    colors = [(200, 60, 40), (40, 120, 200), (60, 150, 60), (150, 60, 170)]
    for i, (title, steps, values) in enumerate(curves):
        col, row = i % 2, i // 2
        box = (10 + col * 445, 10 + row * 255, 10 + col * 445 + 435, 10 + row * 255 + 245)
        _curve_panel(draw, box, title, steps, values, colors[i])
    sheet.save(os.path.join(f.out, "training_curves.png"))
    with open(os.path.join(f.out, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
        fh.write("\n")
    print(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    app.run(main)
