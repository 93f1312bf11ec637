"""``python -m sdk module:app [--host H] [--port P]`` (see :mod:`sdk.cli`)."""

import sys

from sdk.cli import main

sys.exit(main())
