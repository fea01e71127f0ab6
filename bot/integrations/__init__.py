"""Clients of the services shiftbot talks to on its own account (GitLab, ...): config models
and small async clients, shared by the features that need them (restart, alerts)."""
