"""The scheduler: one-shot occurrences (reminders, handovers, digests) planned from our own
tables and config, woken by APScheduler, claimed in the database before they are sent
(docs/schedule.md)."""
