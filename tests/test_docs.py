"""The reference's Python example runs as written (with the demo models in
place of the released ones, which would be a download), and the docs' links
lead somewhere."""

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


def test_every_relative_link_of_the_docs_points_at_a_file():
    docs = sorted(os.listdir(os.path.join(REPO_ROOT, "docs")))
    for page in ["README.md", "coltran_tf/demo/README.md", "data/README.md",
                 *[os.path.join("docs", name) for name in docs if name.endswith(".md")]]:
        with open(os.path.join(REPO_ROOT, page)) as f:
            text = f.read()
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target or target.startswith("mailto:"):
                continue
            path = os.path.normpath(os.path.join(REPO_ROOT, os.path.dirname(page), target))
            assert os.path.exists(path), f"{page} links {target}, which does not exist"
