"""`python -m cli` runs the `faultproof` command (tests and the devnet start services this way)."""

import sys

from cli import main

sys.exit(main())
