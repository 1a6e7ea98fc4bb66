"""``python -m sesflow.cli``."""

import sys

from sesflow.cli.app import main

sys.exit(main())
