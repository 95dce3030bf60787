"""incident-bot: Slack incident response for ML and LLM services.

The data flow is the architecture, and the sub-packages follow it:
metrics → evaluation → alerts → notify → (slack interactions) → escalation.
"""

__version__ = "0.1.0"
