"""`python -m infra.acceptance aws|azure` (scripts/cloud-acceptance): see infra/acceptance/cli.py."""

import sys

from infra.acceptance.cli import main

sys.exit(main())
