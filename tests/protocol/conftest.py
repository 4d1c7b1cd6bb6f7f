"""Hypothesis profiles for the protocol tests: `dev` (default) or `ci`, chosen by `HYPOTHESIS_PROFILE`.

The example database is off: a failure Hypothesis finds stays in the tests as an explicit `@example`.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=100, database=None)
# too_slow measures how fast examples are generated: on a shared two-core runner it trips on load,
# not on anything the code does (seen twice while other test runs shared the machine).
settings.register_profile(
    "ci",
    max_examples=500,
    deadline=None,
    print_blob=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
