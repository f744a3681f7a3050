"""``python -m entroq_core.cli``: the same as the ``entroq`` command."""

from __future__ import annotations

from . import main

raise SystemExit(main())
