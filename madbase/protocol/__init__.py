"""The sans-IO core: wire formats in, typed values, SQL and responses out; no I/O, no clock, no randomness."""

from __future__ import annotations
