"""`python -m flux_api <command>`: the operator's commands (see flux_api/cli)."""

import sys

from flux_api.cli import main

sys.exit(main())
