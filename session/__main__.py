"""`python -m session <command>`."""

import sys

from session.cli import main

sys.exit(main())
