"""Several projects on one server: the root app (login, project list, new project, users and
roles: `server_views.py`) and the dispatcher that serves each project's own app under /p/<name>/.

A project app made here is `create_app` of that project, with SCRIPT_NAME /p/<name> (so every
`url_for` has the prefix) and config SERVER and PROJECT_NAME: it takes its users from the server's
session (`auth.py`). A request for /p/<name>/... goes to that app only when the session's user
has a role on the project; any other (no such project, no role, logged out) goes to the root app,
which has no route there: the login page for a logged-out user, else 404, whether the project
exists or not.
"""

from __future__ import annotations

import importlib
import os
import re
import threading

from flask import Flask
from werkzeug.exceptions import HTTPException

from .. import frontend_dir
from ..server import Server

COOKIE = "morphocluster_server_session"  # not the one of `serve PROJECT` on the same host
ROOT_MODULES = ("converters", "auth", "security", "server_views")
_PREFIX = re.compile(r"/p/([^/]+)(/.*)?\Z", re.S)


def create_server_app(root, test_config: dict | None = None,
                      project_config: dict | None = None) -> "Dispatcher":
    """Return the WSGI app of a server root (a path or an open Server).

    `test_config` updates the root app's config, `project_config` every project app's
    (e.g. DATA_ROOT, TESTING)."""
    server = root if isinstance(root, Server) else Server.open(root)
    return Dispatcher(server, root_app(server, test_config), project_config or {})


def root_app(server: Server, test_config: dict | None = None) -> Flask:
    """Create the root app: login, the project list, new projects, users and roles."""
    front = frontend_dir()
    app = Flask(__name__, template_folder=str(front / "templates"),
                static_folder=str(front / "static"), static_url_path="/static")
    app.config.from_mapping(
        SERVER=server, SERVER_ROOT=True, SECRET_KEY=server.secret_key,
        SESSION_COOKIE_NAME=COOKIE, SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=os.environ.get("MORPHOCLUSTER_SECURE_COOKIES") == "1",
        PROXIES=int(os.environ.get("MORPHOCLUSTER_PROXIES", "0") or 0), SUGGEST_URL=None,
    )
    if test_config:
        app.config.update(test_config)
    app.extensions["morphocluster_server"] = server
    for name in ROOT_MODULES:
        importlib.import_module(f"{__package__}.{name}").init_app(app)
    app.register_error_handler(HTTPException, _error)
    return app


def _error(exc: HTTPException):
    from .common import render

    return render("error.html", code=exc.code, name=exc.name, description=exc.description), exc.code


class Dispatcher:
    """The WSGI app of a server: /p/<name>/... to that project's app (made on first use, kept),
    everything else to the root app."""

    def __init__(self, server: Server, root: Flask, project_config: dict):
        self.server, self.root_app, self.project_config = server, root, project_config
        self._apps: dict[str, Flask] = {}
        self._lock = threading.Lock()
        if root.config["PROXIES"] > 0:  # the address and scheme of the client, for both apps
            from werkzeug.middleware.proxy_fix import ProxyFix

            n = int(root.config["PROXIES"])
            self._wsgi = ProxyFix(self._dispatch, x_for=n, x_proto=n, x_host=n)
        else:
            self._wsgi = self._dispatch

    def __call__(self, environ, start_response):
        return self._wsgi(environ, start_response)

    def _dispatch(self, environ, start_response):
        m = _PREFIX.match(environ.get("PATH_INFO", ""))
        checked = self.allowed(environ, m.group(1)) if m else None
        if checked is not None:
            name, script = m.group(1), environ.get("SCRIPT_NAME", "")
            # the user and role found here go with the request (a WSGI key no client can set),
            # so that the project app's own check does not look them up again
            environ = {**environ, "morphocluster.root": script, "SCRIPT_NAME": f"{script}/p/{name}",
                       "PATH_INFO": m.group(2) or "/", "morphocluster.role": checked}
            return self.project_app(name)(environ, start_response)
        return self.root_app(environ, start_response)

    def allowed(self, environ, name: str) -> tuple[dict, str] | None:
        """Return (user, role) where the session of this request is of a user with a role on
        `name`, else None."""
        from .auth import session_user

        with self.root_app.request_context(environ):
            user = session_user()
            role = self.server.role_of(user, name)
        return (user, role) if role is not None else None

    def project_app(self, name: str) -> Flask:
        """Return the app of project `name` (made once)."""
        from . import create_app

        with self._lock:
            if name not in self._apps:
                cfg = {k: self.root_app.config[k] for k in ("SECRET_KEY", "SESSION_COOKIE_SECURE")}
                self._apps[name] = create_app({
                    **cfg, "PROJECT": self.server.project(name), "SERVER": self.server,
                    "PROJECT_NAME": name, "SESSION_COOKIE_NAME": COOKIE,
                    "PROXIES": 0,  # the dispatcher applied them once
                    **self.project_config})
            return self._apps[name]
