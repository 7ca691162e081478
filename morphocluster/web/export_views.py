"""Export from the browser (filled in by issue 18)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("export_views", __name__, url_prefix="/export")


def init_app(app):
    app.register_blueprint(bp)
