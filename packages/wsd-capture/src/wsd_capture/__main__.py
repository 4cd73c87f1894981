"""``python -m wsd_capture`` runs the ``wsd-capture`` command."""

import sys

from .cli import main

sys.exit(main())
