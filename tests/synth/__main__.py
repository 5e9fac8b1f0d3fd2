"""``python -m tests.synth`` (from the repository root): see tests.synth.cli."""

import sys

from tests.synth.cli import main

sys.exit(main())
