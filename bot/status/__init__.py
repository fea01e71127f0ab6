"""Status checks: Nagios-compatible checks of the pipeline (``status``), see docs/status.md."""
