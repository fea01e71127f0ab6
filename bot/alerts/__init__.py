"""Sentry alerts to chat and GitLab (docs/alerts.md): signed webhooks into a durable inbox,
one notice and one GitLab issue per Sentry issue, storm control, polling."""
