"""Shift digests: what happened since the last one, with a chart (docs/digests.md)."""
