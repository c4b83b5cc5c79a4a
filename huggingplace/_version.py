"""The package version, kept in one place for setup.py, the User-Agent and the ``sdk`` field."""

__version__ = "0.1.0"
