"""Messaging: the platform port, durable notices (outbox), buttons that run commands, and the
replica-safe claims they and the adapters share."""
