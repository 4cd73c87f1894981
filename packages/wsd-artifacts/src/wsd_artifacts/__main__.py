"""``python -m wsd_artifacts``: the ``wsd-artifacts`` command."""

import sys

from .cli import main

sys.exit(main())
