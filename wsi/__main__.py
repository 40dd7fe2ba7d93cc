"""``python -m wsi`` runs the CLI."""

import sys

from wsi.cli import main

sys.exit(main())
