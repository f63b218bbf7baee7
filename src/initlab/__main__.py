"""``python -m initlab``: the ``initlab`` command."""

from initlab.cli import main

raise SystemExit(main())
