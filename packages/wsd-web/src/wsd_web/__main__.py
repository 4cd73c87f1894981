"""``python -m wsd_web`` is ``wsd-web``."""

import sys

from .cli import main

sys.exit(main())
