"""`python -m moonas` runs the command line."""

import sys

from moonas.cli import main

sys.exit(main())
