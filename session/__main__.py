"""`python -m session <command>`."""

import sys

from session.cli.main import main

sys.exit(main())
