"""Meetings: series, reminders, report threads and their action items (docs/meetings.md)."""
