"""ldirectord.cf -> Config. The public surface: find_config, load, parse_text."""

from healthd.config.model import Config, ConfigError, ConfigIssue

__all__ = ["Config", "ConfigError", "ConfigIssue"]
