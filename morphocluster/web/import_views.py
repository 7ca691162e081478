"""Import from the browser (filled in by issue 18)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("import_views", __name__, url_prefix="/import")


def init_app(app):
    app.register_blueprint(bp)
