"""The database: table definitions and the engine. Stores per domain live beside their domain
(``alerts.store``, ``metrics.store``, ``notify.outbox``) and are the only code that speaks SQL."""
