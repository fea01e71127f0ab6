"""Command families: one module each. Every ``handlers.*`` module not starting with ``_`` is
loaded by ``bot/registry.py``; see docs/architecture.md, "Adding a command"."""
