"""``python -m localcluster``: the same as the ``localcluster`` command."""

import sys

from localcluster.cli import main

sys.exit(main())
