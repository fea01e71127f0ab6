"""Restarts of configured targets (``handlers/restart.py``, docs/restart.md): the config
section, parameters and templates, the preview, the lease and cooldown, the runners (command,
HTTP), GitLab pipelines followed to their end, and the ``restart_runs`` table."""
