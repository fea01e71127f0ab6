"""Shifts: the rota, overrides and swaps, heads-up/handover/escalation, the on-shift role."""
