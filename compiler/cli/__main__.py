"""`python -m compiler.cli`: the `mpc` command."""

import sys

from compiler.cli import main

sys.exit(main())
