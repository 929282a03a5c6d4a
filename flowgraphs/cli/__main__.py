"""``python -m flowgraphs.cli``: the ``wmbus-sdr`` command."""

import sys

from . import main

if __name__ == "__main__":  # not when a worker process (decode --jobs) imports the main module
    sys.exit(main())
