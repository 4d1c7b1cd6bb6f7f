"""`python -m madbase` runs the command line."""

from __future__ import annotations

from madbase.cli import main

raise SystemExit(main())
