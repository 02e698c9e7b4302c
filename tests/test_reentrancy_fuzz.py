"""The re-entrancy fuzzer (tests/reentrancy_fuzz.py), for each core, in a
child process so that a crash is reported rather than fatal.  Bigger runs:
``python tests/reentrancy_fuzz.py --core compiled --examples 2000``."""

import os
import re
import subprocess
import sys

import pytest

from cores import core_names
from hostile import child_env

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = {"compiled": 150, "pure": 60}


@pytest.mark.parametrize("core", core_names())
def test_reentrancy_fuzz(core):
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "reentrancy_fuzz.py"), "--core", core,
         "--examples", str(EXAMPLES[core]), "--seed", "3"],
        capture_output=True, text=True, env=child_env(), timeout=600)
    assert proc.returncode >= 0, "killed by signal %d\n%s" % (-proc.returncode, proc.stderr[-3000:])
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), \
        proc.stdout[-3000:] + proc.stderr[-5000:]
    counts = re.search(r"reentries (\d+) closes (\d+)", proc.stdout)
    # The run did what it is for: hooks re-entered, and some closed the pool.
    assert int(counts.group(1)) > 100 and int(counts.group(2)) > 5, proc.stdout
