"""Client for the serving HTTP API; the server half needs the ``server`` extra."""

__version__ = "0.3.0"
