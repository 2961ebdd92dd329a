"""bandit-router: route each LLM request to the cheapest model that is good enough."""

__version__ = "0.1.0"
