"""nudge: rules-as-code marketing automation."""

__version__ = "0.1.0"
