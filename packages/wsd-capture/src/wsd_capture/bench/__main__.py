"""``python -m wsd_capture.bench`` runs the PyTorch benchmark."""

import sys

from .cli import main

sys.exit(main())
