"""The weekly alert review (seed 001): fires, acknowledgements, time to acknowledge, the
alert-to-action ratio, and the noisiest rules with what to change.

- :mod:`bot.review.core` — pure: alerts and their events in, one :class:`RuleReview` per rule out.
- :mod:`bot.review.render` — the plain-text table for Slack and the terminal.
- :mod:`bot.review.weekly` — reads the database, and enqueues the scheduled weekly post.
"""
