"""`python -m publisher`: the same as the `publisher` command."""

import sys

from publisher.cli import main

sys.exit(main())
