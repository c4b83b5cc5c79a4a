"""``python -m huggingplace`` is the ``huggingplace`` command."""

import sys

from ._cli import main

sys.exit(main())
