"""The reference's Python example runs as written (with the demo models in
place of the released ones, which would be a download)."""

import os
import re

import numpy as np
from PIL import Image

from conftest import REPO_ROOT


def test_the_python_example_of_the_reference_runs():
    with open(os.path.join(REPO_ROOT, "docs", "reference.md")) as f:
        text = f.read()
    example = next(block for block in re.findall(r"```python\n(.*?)```", text, re.S)
                   if "pipeline.chain" in block)
    photo = np.asarray(Image.open(os.path.join(REPO_ROOT, "data", "chelsea.png")).convert("RGB"))
    scope = {"photo": photo}
    exec(compile(example.replace('"released"', '"demo"'), "reference.md", "exec"), scope)
    demo_side = scope["pipeline"].high
    assert scope["final"]["images"].shape == (1, demo_side, demo_side, 3)
    assert scope["coarse"]["images"].shape == (1, 64, 64, 3)
    assert scope["out"]["proba"].shape == (1, 64, 64, 512)
