"""The web UI: a Flask app factory; blueprints by domain, each with `init_app(app)`."""

from __future__ import annotations

import importlib
import os
import secrets

from flask import Flask

from .. import frontend_dir

# modules in registration order: converters before any route, then auth (it guards every other
# route), security (headers on every response), then the blueprints by domain
MODULES = ("converters", "auth", "security", "home", "images", "objects", "validate", "grow",
           "organise", "history", "jobs_views", "import_views", "export_views", "users_views")


def create_app(test_config: dict | None = None) -> Flask:
    """Create the app for the project named by config PROJECT (a path or an open Project).

    Without PROJECT in `test_config`, the environment variable MORPHOCLUSTER_PROJECT is used.
    A server root's projects get theirs from `server.create_server_app`.
    """
    front = frontend_dir()
    app = Flask(__name__, template_folder=str(front / "templates"),
                static_folder=str(front / "static"), static_url_path="/static")
    app.config.from_mapping(
        PROJECT=os.environ.get("MORPHOCLUSTER_PROJECT"),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="morphocluster_session",
        # behind an HTTPS proxy, set MORPHOCLUSTER_SECURE_COOKIES=1 so the cookie never goes in clear
        SESSION_COOKIE_SECURE=os.environ.get("MORPHOCLUSTER_SECURE_COOKIES") == "1",
        SEND_FILE_MAX_AGE_DEFAULT=3600,
        PAGE_SIZE=60,        # thumbnails per page of the validate grid
        GROW_PAGE_SIZE=50,   # candidates per grow screen (at most 50)
        MAP_POINTS=4000,     # points drawn on the home page map
        RECOVER_JOBS=True,   # mark jobs of a previous (dead) server as failed
        # reverse proxies in front of the server: their X-Forwarded-For/-Proto are then trusted,
        # so that login limits count each client, not the proxy (MORPHOCLUSTER_PROXIES=1)
        PROXIES=int(os.environ.get("MORPHOCLUSTER_PROXIES", "0") or 0),
        # the folder the import page may read sources from (`serve --data-root`); None: none
        DATA_ROOT=os.environ.get("MORPHOCLUSTER_DATA_ROOT") or None,
        # set by a server's dispatcher (web/server.py): its Server and this project's name there
        SERVER=None, PROJECT_NAME=None,
    )
    if test_config:
        app.config.update(test_config)
    project = _open(app.config["PROJECT"])
    app.extensions["morphocluster_project"] = project
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = secret_key(project)
    if app.config["RECOVER_JOBS"]:
        from ..jobs import fail_interrupted

        fail_interrupted(project)

    if app.config["PROXIES"] > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = int(app.config["PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}").init_app(app)
    _register_suggest(app)
    return app


def _open(value):
    from ..project import Project

    if value is None:
        raise RuntimeError("no project: pass PROJECT in the config or set MORPHOCLUSTER_PROJECT")
    return value if isinstance(value, Project) else Project.open(value)


def _register_suggest(app: Flask) -> None:
    """Register the suggestions screen when that module is part of this build."""
    try:
        suggest = importlib.import_module(f"{__name__}.suggest")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.suggest":
            raise
        app.config["SUGGEST_URL"] = None
        return
    app.register_blueprint(suggest.bp)
    rules = [r for r in app.url_map.iter_rules()
             if r.endpoint.startswith(suggest.bp.name + ".") and not r.arguments and "GET" in r.methods]
    rule = min((r.rule for r in rules), key=len) if rules else None
    app.config["SUGGEST_URL"] = rule

    @app.before_request
    def _prefixed():
        # under a prefix (a server's /p/<name>, a proxy's SCRIPT_NAME) the link needs it too;
        # every request of this app has the same prefix, so the shared config stays right
        from flask import request

        app.config["SUGGEST_URL"] = request.script_root + rule if rule else None


def secret_key(project) -> str:
    """Return the project's session secret, creating it on first use (kept in the database)."""
    from ..store import Meta

    with project.transaction() as s:
        row = s.get(Meta, "web_secret_key")
        if row is None:
            row = Meta(key="web_secret_key", value=secrets.token_hex(32))
            s.add(row)
        return row.value


def project():
    """Return the project of the current app."""
    from flask import current_app

    return current_app.extensions["morphocluster_project"]
