"""``python -m vswapfast``: the ``vswapfast`` command."""

import sys

from vswapfast.cli import main

sys.exit(main())
