"""One module per check type; ``bot/status/config.py`` joins them into the ``status:`` model."""
