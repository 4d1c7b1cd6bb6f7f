"""Supabase Storage protocol (buckets, objects, signed URLs); so far its error shape only."""

from __future__ import annotations

from madbase.protocol.storage.errors import render_storage_refusal

__all__ = ["render_storage_refusal"]
