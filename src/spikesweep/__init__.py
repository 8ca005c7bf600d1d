"""spikesweep: reproduce and extend published spiking-neural-network results."""

import logging
import time
from pathlib import Path

__version__ = "0.1.0"

#: The repository root: configs (conf/) and named multiruns (experiments/) live beside the package.
REPO_ROOT = Path(__file__).resolve().parents[2]

#: When this process imported spikesweep (its first act): run summaries count their start-up from here.
IMPORTED_AT = time.time()

# torch's C++-extension module, which Inductor imports to compile for the CPU, warns "No CUDA runtime is found"
# whenever a CUDA toolkit is installed but no GPU is usable: on a CPU run that is noise, not news.
logging.getLogger("torch.utils.cpp_extension").addFilter(
    lambda record: not str(record.msg).startswith("No CUDA runtime is found")
)
