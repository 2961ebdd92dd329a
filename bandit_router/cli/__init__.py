"""The `bandit-router` command."""
