"""The SDK's version, sent in every profile."""

__version__ = "0.1.0"
