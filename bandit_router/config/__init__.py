"""Loading config.toml into core's typed settings."""

from bandit_router.config.load import CONFIG_ENV, ConfigError, default_path, load, parse

__all__ = ["CONFIG_ENV", "ConfigError", "default_path", "load", "parse"]
