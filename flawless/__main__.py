"""``python -m flawless`` runs the command line."""

import sys

from flawless.cli import main

sys.exit(main())
