"""URL converters: ids that the database can hold, so an absurd one is a 404, not a 500."""

from __future__ import annotations

from werkzeug.routing import IntegerConverter

MAX_ID = 2**63 - 1  # the largest id a 64-bit signed INTEGER column (SQLite, PostgreSQL) holds


class BoundedInt(IntegerConverter):
    """Flask's `int`, limited to 0..2^63-1: a larger id matches no route (404)."""

    # at most 19 digits: int() of a huge digit string would be slow (or refused) before the check
    regex = r"[0-9]{1,19}"

    def __init__(self, map, fixed_digits=0, min=0, max=MAX_ID, signed=False):  # noqa: A002
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def init_app(app):
    """Register the converters before any blueprint adds its routes."""
    app.url_map.converters["int"] = BoundedInt
