"""`python -m rlhfkit` (and `accelerate launch -m rlhfkit ...`) runs the CLI."""

import sys

from rlhfkit.cli import main

sys.exit(main())
