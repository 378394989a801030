"""`python -m holdfast` behaves exactly like the `holdfast` command."""

import sys

from holdfast.cli import main

sys.exit(main())
