"""Notifications: the outbox, delivery with retries, and the notifiers (Slack, PagerDuty, log)."""
