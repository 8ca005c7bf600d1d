"""`python -m spikesweep.cli`, as the tests and SLURM jobs call it."""

import sys

from spikesweep.cli import main

sys.exit(main())
