"""The ``gitlab:`` section (``bot/integrations/gitlab.py``): the GitLab instance, its token,
the default project and the labels of the issues the alerts feature opens.

Declared by its own module because one module declares one section: ``handlers.restart``
declares ``restart:``, and the restart targets of type ``gitlab_pipeline`` and the alerts
feature both read this one (``GITLAB.of(config)``).
"""

from __future__ import annotations

from bot.integrations.gitlab import GITLAB

CONFIG = GITLAB
