"""spikesweep: reproduce and extend published spiking-neural-network results."""

import time
from pathlib import Path

__version__ = "0.1.0"

#: The repository root: configs (conf/) and named multiruns (experiments/) live beside the package.
REPO_ROOT = Path(__file__).resolve().parents[2]

#: When this process imported spikesweep (its first act): run summaries count their start-up from here.
IMPORTED_AT = time.time()
