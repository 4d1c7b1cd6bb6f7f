"""Supabase Realtime protocol (Phoenix channels); so far its HTTP error shape only."""

from __future__ import annotations

from madbase.protocol.realtime.errors import render_realtime_refusal

__all__ = ["render_realtime_refusal"]
