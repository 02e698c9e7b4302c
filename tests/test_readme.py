"""The Python examples in README.md run as written.

The blocks run in order in one namespace, as a reader would paste them,
inside a temporary directory (the examples create a swap file).  A block
that shows a failing call is run expecting the error its comment names.
"""

import os
import re

import pytest

import vswapfast

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def python_blocks():
    if not os.path.exists(README):
        pytest.skip("README.md is not beside the tests (installed without the source tree)")
    with open(README) as f:
        text = f.read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_examples_run(tmp_path, monkeypatch, capsys):
    blocks = python_blocks()
    assert blocks, "README.md has no python examples"
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for block in blocks:
        expected = re.search(r"#\s*(\w+Error):", block)
        if expected:
            with pytest.raises(getattr(vswapfast, expected.group(1))):
                exec(compile(block, README, "exec"), namespace)
        else:
            exec(compile(block, README, "exec"), namespace)
