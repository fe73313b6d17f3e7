"""``python -m lenskit``: the command line."""

from lenskit.cli import main

raise SystemExit(main())
