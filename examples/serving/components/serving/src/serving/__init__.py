"""Command line and HTTP front end for the serving runtime."""

__version__ = "0.3.0"
