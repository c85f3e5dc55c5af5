"""``python -m kdtf SUBCOMMAND``: the same as the ``kdtf`` command."""

import sys

from kdtf.commands import main

sys.exit(main())
