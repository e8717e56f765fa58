"""``python -m failover``: the same as the ``failover`` command."""

import sys

from failover.cli import main

sys.exit(main())
