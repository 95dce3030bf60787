"""Silences: mute a rule, a model or both for a while; muted alerts are recorded, not notified."""
