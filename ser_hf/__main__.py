"""``python -m ser_hf`` runs the ``ser-hf`` console script."""

import sys

from ser_hf.cli import main

sys.exit(main())
