"""URL converters: ids that the database can hold, so an absurd one is a 404, not a 500."""

from __future__ import annotations


def init_app(app):
    """Register the converters before any blueprint adds its routes."""
