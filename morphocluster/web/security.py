"""Security headers on every response."""

from __future__ import annotations


def init_app(app):
    """Add the security headers to every response."""
