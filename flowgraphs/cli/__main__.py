"""``python -m flowgraphs.cli``: the ``wmbus-sdr`` command."""

import sys

from . import main

sys.exit(main())
