"""`python -m engine` is the `creditlab` command line."""

import sys

from engine.cli.main import main

sys.exit(main())
