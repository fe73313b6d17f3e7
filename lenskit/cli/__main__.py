"""``python -m lenskit.cli``: the command line (as ``python -m lenskit``)."""

from lenskit.cli import main

raise SystemExit(main())
