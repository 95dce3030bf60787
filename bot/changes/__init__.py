"""Change events: what shipped to a model, and when (a model version, a prompt, a dataset …).

For an ML service the first question in an incident is "did a new model, prompt or dataset
ship?". A deploy job posts each change to ``POST /api/v1/changes`` (:mod:`bot.changes.api`); the
changes are stored per model (:mod:`bot.changes.log`), and alerts and incidents show those made
shortly before they fired, marking the latest (:mod:`bot.changes.events`, pure).
"""
