"""The learning material must stay true to the code.

(a) examples/backprop_walkthrough.py runs, its hand-derived gradient matches the finite
    difference, and the loss falls after the optimizer step;
(b) the runnable code blocks of docs/how-tinynet-learns.md run;
(c) every function and test the docs name exists, every formula section names a test, and
    every backward formula names a finite-difference gradient check;
(d) every layer's docstring states its forward and backward math and its shapes.
"""

import ast
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinynet import data
from tinynet.errors import DataError
from tinynet.layers import LAYER_TYPES, Layer

ROOT = Path(__file__).resolve().parent.parent
WALKTHROUGH = ROOT / "examples" / "backprop_walkthrough.py"
DOC = ROOT / "docs" / "how-tinynet-learns.md"
TOLERANCE = 1e-6          # hand vs numeric gradient, relative error
GRADCHECK_CALLS = ("check_layer(", "check_model(", "numeric_gradient(")


# -- (a) the walkthrough ----------------------------------------------------------------

def _mnist_available():
    try:
        data.find_mnist(download=False)
        return True
    except DataError:
        return False


def _run_walkthrough(*args):
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(WALKTHROUGH), *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, time.monotonic() - start


def _number(pattern, text):
    match = re.search(pattern, text)
    assert match, f"walkthrough output has no line matching {pattern!r}"
    return float(match.group(1))


@pytest.mark.parametrize("args", [(), ("--synthetic",)], ids=["default", "synthetic"])
def test_walkthrough_gradients_match_and_loss_falls(args):
    out, seconds = _run_walkthrough(*args)
    if args or not _mnist_available():
        assert "SYNTHETIC" in out and "not MNIST" in out
    else:
        assert "MNIST training images" in out and "SYNTHETIC" not in out
    # every intermediate shape of the forward and backward pass is printed
    for shape in ["(8, 1, 28, 28)", "(8, 784)", "(8, 16)", "(8, 10)", "(784, 16)",
                  "(16, 10)", "(16,)", "(10,)"]:
        assert shape in out, shape
    # the chain rule, factor by factor, for one weight of the first Dense layer
    assert "dL/dz2[0,k]" in out and "[z1[n,j]>0]" in out and "a0[n,i]" in out
    hand = _number(r"dL/dW1\[\d+,\d+\] by hand\s+= (\S+)", out)
    library = _number(r"the library's backward \(dense1\.grads\['W'\]\)\s+= (\S+)", out)
    numeric = _number(r"= (\S+)\nhand vs numeric", out)
    rel = abs(hand - numeric) / (abs(hand) + abs(numeric))
    assert rel < TOLERANCE and abs(library - hand) <= 1e-12 * abs(hand)
    assert _number(r"hand vs numeric relative error: (\S+)", out) < TOLERANCE
    assert _number(r"conv vs numeric relative error: (\S+)", out) < TOLERANCE
    assert _number(r"All \d+ entries of W2 .*relative error (\S+)", out) < TOLERANCE
    assert f"(tolerance {TOLERANCE:g}): MATCH" in out and "MISMATCH" not in out
    before = _number(r"loss before step: (\S+)", out)
    after = _number(r"loss after step: +(\S+)", out)
    assert after < before
    assert seconds < 60, f"the walkthrough should take a few seconds, took {seconds:.0f}"


# -- (b) runnable code in the docs ------------------------------------------------------

RUNNABLE = re.compile(r"<!-- runnable -->\s*\n```python\n(.*?)```", re.S)


def test_runnable_doc_blocks_execute():
    blocks = RUNNABLE.findall(DOC.read_text())
    assert len(blocks) >= 2, "the docs lost their runnable layer example"
    assert any("class Softplus(Layer)" in b for b in blocks)
    assert any("check_layer(" in b for b in blocks)
    namespace = {"__name__": "doc_example"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{DOC.name} runnable block {i + 1}", "exec"), namespace)


# -- (c) the docs name real code and real tests ----------------------------------------

def _sections(text):
    """{heading: body} for every ## and ### heading (a ## body stops at its first ###)."""
    parts = re.split(r"^(#{2,3} .+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def _backticked(line):
    return re.findall(r"`([^`]+)`", line)


def _defined_names(path):
    """'func' and 'Class.method' for everything defined at the top of a module."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names.update(f"{node.name}.{item.name}" for item in node.body
                         if isinstance(item, ast.FunctionDef))
    return names


def _test_source(ref):
    """The source of the test function ``tests/file.py::name``, or None."""
    file, name = ref.split("::")
    path = ROOT / file
    if not path.is_file():
        return None
    source = path.read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(source, node)
    return None


def _refs(body, label):
    refs = []
    for line in body.splitlines():
        if line.startswith(label):
            refs += _backticked(line)
    return refs


def test_doc_code_pointers_exist():
    text = DOC.read_text()
    pointed = set()
    lines = [line for line in text.splitlines() if line.startswith("Code:")]
    assert len(lines) >= 10
    for line in lines:
        path = None
        for item in _backticked(line):
            if item.endswith(".py"):
                path = ROOT / item
                assert path.is_file(), f"docs point to a missing file {item}"
                names = _defined_names(path)
            else:
                assert path is not None, line
                assert item in names, f"docs name {item} in {path.relative_to(ROOT)}, " \
                                      "which does not define it"
                pointed.add(item.split(".")[0])
    missing = sorted(set(LAYER_TYPES) - pointed)
    assert not missing, f"layers the docs do not point to: {missing}"


def test_every_formula_names_an_existing_test():
    sections = _sections(DOC.read_text())
    named = 0
    for heading, body in sections.items():
        refs = _refs(body, "Checked by:")
        for ref in refs:
            assert re.fullmatch(r"tests/test_\w+\.py::test_\w+", ref), ref
            assert _test_source(ref) is not None, f"{heading}: names {ref}, which does not exist"
        named += len(refs)
        if "$$" in body:
            assert refs, f"section {heading!r} has formulas but names no test that checks them"
    assert named >= 15


def test_every_backward_formula_has_a_gradient_check():
    sections = _sections(DOC.read_text())
    text = DOC.read_text()
    layer_part = text.split("## 3. Layer by layer")[1].split("\n## ")[0]
    headings = re.findall(r"^### (.+)$", layer_part, flags=re.M)
    for required in ["Dense", "ReLU", "Softmax cross-entropy", "Convolution", "Max-pool",
                     "Batch normalisation", "Dropout"]:
        assert any(h.startswith(required) for h in headings), f"no section for {required}"
    for heading in headings:
        refs = _refs(sections["### " + heading], "Checked by:")
        sources = [_test_source(ref) or "" for ref in refs]
        assert any(call in s for s in sources for call in GRADCHECK_CALLS), \
            f"{heading}: none of {refs} compares backward with finite differences"


def test_readme_tour_points_to_the_walkthrough_and_the_docs():
    readme = (ROOT / "README.md").read_text()
    tour = readme.split("## A tour of the code, for learners")[1].split("\n## ")[0]
    assert "examples/backprop_walkthrough.py" in tour
    assert "docs/how-tinynet-learns.md" in tour
    assert tour.index("backprop_walkthrough") < tour.index("how-tinynet-learns")


# -- (d) layer docstrings ---------------------------------------------------------------

EXAMPLE_ARGS = {"Dense": (3, 2), "Conv2D": (1, 2, 3), "BatchNorm": (2,)}


@pytest.mark.parametrize("name", sorted(LAYER_TYPES))
def test_layer_docstring_states_forward_backward_and_shapes(name):
    cls = LAYER_TYPES[name]
    assert issubclass(cls, Layer)
    doc = cls.__dict__.get("__doc__") or ""
    assert re.search(r"\by(\[[^\]]*\])?\s*=", doc), f"{name}: no forward formula 'y = ...'"
    assert "backward" in doc.lower(), f"{name}: the docstring does not describe backward"
    assert "shape" in doc.lower(), f"{name}: the docstring does not state shapes"
    assert "dL/dx" in doc, f"{name}: no input gradient dL/dx"
    for param in cls(*EXAMPLE_ARGS.get(name, ())).params:
        assert f"dL/d{param}" in doc, f"{name}: no gradient formula for parameter {param}"


def test_every_exported_layer_is_registered():
    import tinynet.layers as layers

    exported = {n for n in layers.__all__ if isinstance(getattr(layers, n), type)
                and issubclass(getattr(layers, n), Layer) and n != "Layer"}
    assert exported == set(LAYER_TYPES)
