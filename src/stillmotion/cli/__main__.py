"""`python -m stillmotion.cli ...`: the same as the `stillmotion` console script."""

import sys

from stillmotion.cli import main

sys.exit(main())
