"""`morphocluster serve`, `init-server`, `user ...` and `demo`.

`serve` and `user` take a project folder or a server root (a folder of projects with
`server.sqlite`, see docs/server.md); on a server root `user` works on the server's users and
their role per project (`--project`).
"""

from __future__ import annotations

import click

from . import open_project


def open_target(path):
    """Return the open Project or Server at `path` (click errors for neither)."""
    from ..server import Server, is_server_root

    if is_server_root(path):
        return Server.open(path)
    try:
        return open_project(path)
    except click.ClickException as exc:
        raise click.ClickException(f"{exc.message}; nor a server root (no server.sqlite): make "
                                   "one with `morphocluster init-server`") from None


def _is_server(target) -> bool:
    from ..server import Server

    return isinstance(target, Server)


def run_server(project, host: str, port: int, threads: int = 8, proxies: int | None = None,
               data_root: str | None = None) -> None:
    """Serve the web UI of an open project with waitress (blocks)."""
    from waitress import serve as waitress_serve

    from ..users import list_users
    from ..web import create_app

    app = create_app({"PROJECT": project, **({"PROXIES": proxies} if proxies is not None else {}),
                      **({"DATA_ROOT": data_root} if data_root else {})})
    _prepare_working(project)
    _warm_in_background(project)
    if not list_users(project):
        click.echo(f"Note: no users yet; add one with `morphocluster user add {project.root} NAME "
                   "--role admin`", err=True)
    click.echo(f"Serving {project.root} on http://{host}:{port}/  (Ctrl-C stops)")
    # waitress refuses a body above this from its Content-Length (its default, 1 GiB, would cap uploads)
    waitress_serve(app, host=host, port=port, threads=threads, ident="morphocluster",
                   max_request_body_size=app.config["MAX_UPLOAD_BYTES"])


def run_server_root(server, host: str, port: int, threads: int = 8, proxies: int | None = None,
                    data_root: str | None = None) -> None:
    """Serve every project of a server root, each under /p/<name>/, with waitress (blocks)."""
    from waitress import serve as waitress_serve

    from ..web.server import create_server_app

    app = create_server_app(server, {"PROXIES": proxies} if proxies is not None else None,
                            {"DATA_ROOT": data_root} if data_root else None)
    names = server.project_names()  # copies the users of project folders found for the first time
    for name, text in server.notes().items():
        click.echo(f"Note: project {name}: " + text.replace("\n", f"\nNote: project {name}: "), err=True)
    if not any(u["is_admin"] for u in server.list_users()):
        click.echo(f"Note: no server admin yet; add one with `morphocluster user add {server.root} "
                   "NAME --role admin`", err=True)
    click.echo(f"Serving {len(names)} project{'s' if len(names) != 1 else ''} of {server.root} on "
               f"http://{host}:{port}/  (Ctrl-C stops)")
    from ..web.import_views import MAX_UPLOAD_BYTES

    waitress_serve(app, host=host, port=port, threads=threads, ident="morphocluster",
                   max_request_body_size=MAX_UPLOAD_BYTES)


def _prepare_working(project) -> None:
    """Make the active set's working matrix now, not in the first page request that needs it
    (a project made before there were working matrices has none)."""
    from ..features.h5 import feature_path
    from ..features.working import build_working, is_current

    name = project.config.get("active_features")
    if not name or not feature_path(project, name).is_file() or is_current(project, name):
        return
    click.echo(f"Making the working matrix of feature set {name} (once; it is kept) ...")
    build_working(project, name)


def _warm_in_background(project) -> None:
    """Read the working matrix and index into the page cache while the server starts."""
    import threading

    from ..index import warm

    def run():
        try:
            warm(project)
        except Exception:  # noqa: BLE001 - no features or index yet: nothing to warm
            pass

    threading.Thread(target=run, daemon=True, name="morphocluster-warm").start()


@click.command("serve")
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all).")
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int, help="Worker threads.")
@click.option("--proxies", type=click.IntRange(0), default=None,
              help="Reverse proxies in front (trust their X-Forwarded-* headers, so that login "
                   "limits count each client); default: MORPHOCLUSTER_PROXIES or 0.")
@click.option("--data-root", type=click.Path(exists=True, file_okay=False), default=None,
              help="A folder on the server whose files the import page may import "
                   "(default: MORPHOCLUSTER_DATA_ROOT, else none).")
def serve(path, host, port, threads, proxies, data_root):
    """Serve the web UI of PATH on a production WSGI server (waitress).

    PATH is a project folder, or a server root (`morphocluster init-server`): a folder of
    projects, each served under /p/NAME/, with one login and a role per project."""
    target = open_target(path)
    if _is_server(target):
        run_server_root(target, host, port, threads, proxies, data_root)
    else:
        run_server(target, host, port, threads, proxies, data_root)


@click.command("init-server")
@click.argument("root", type=click.Path(file_okay=False))
def init_server(root):
    """Make ROOT a server root: a folder of projects served together (`serve ROOT`).

    Project folders already in ROOT are kept; their users are copied into the server."""
    from ..server import Server, ServerError

    try:
        server = Server.create(root)
    except ServerError as exc:
        raise click.ClickException(str(exc)) from exc
    names = server.project_names()
    click.echo(f"Server root {server.root}: {len(names)} project{'s' if len(names) != 1 else ''}"
               + (f" ({', '.join(names)})" if names else ""))
    for name, text in server.notes().items():
        click.echo(f"Note: project {name}: " + text.replace("\n", f"\nNote: project {name}: "), err=True)
    if not any(u["is_admin"] for u in server.list_users()):
        click.echo(f"Add a server admin: `morphocluster user add {root} NAME --role admin`")


@click.group("user")
def user():
    """Add, list and change the users of a project or of a server root."""


def _password(password: str | None, generate: bool) -> tuple[str, bool]:
    from ..users import generate_password

    if password:
        return password, False
    if generate:
        return generate_password(), True
    return click.prompt("Password", hide_input=True, confirmation_prompt=True), False


def _run(fn, *args, **kwargs):
    """Call a library function; its UserError or ServerError becomes a click error."""
    from ..server import ServerError
    from ..users import UserError

    try:
        return fn(*args, **kwargs)
    except (UserError, ServerError) as exc:
        raise click.ClickException(str(exc)) from exc


PROJECT_OPTION = click.option(
    "--project", "on", default=None, metavar="NAME",
    help="On a server root: the project the role is for; without it, the role is on the "
         "server (admin: a server admin).")


@user.command("add")
@click.argument("path", type=click.Path(file_okay=False))
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "annotator", "viewer"]), default="annotator",
              show_default=True)
@PROJECT_OPTION
@click.option("--password", envvar="MORPHOCLUSTER_PASSWORD", default=None,
              help="The password, at least 6 characters (default: asked for; or set "
                   "MORPHOCLUSTER_PASSWORD).")
@click.option("--generate", is_flag=True, help="Make up a random password and print it.")
def user_add(path, username, role, on, password, generate):
    """Add user USERNAME to PATH (a project, or a server root)."""
    from ..users import add_user

    target = open_target(path)
    if on and not _is_server(target):
        raise click.ClickException("--project is for a server root; PATH is a project")
    password, made = _password(password, generate)
    shown = f" with password {password}" if made else ""
    if not _is_server(target):
        _run(add_user, target, username, password, role)
        click.echo(f"Added {role} {username}{shown}")
    elif on:
        _run(target.add_user, username, password)
        _run(target.set_role, username, on, role)
        click.echo(f"Added {username} ({role} on {on}){shown}")
    else:
        _run(target.add_user, username, password, admin=role == "admin")
        what = "server admin" if role == "admin" else "user (no role yet: `user role ... --project`)"
        click.echo(f"Added {what} {username}{shown}")


@user.command("passwd")
@click.argument("path", type=click.Path(file_okay=False))
@click.argument("username")
@click.option("--password", envvar="MORPHOCLUSTER_PASSWORD", default=None,
              help="The new password, at least 6 characters (default: asked for; or set "
                   "MORPHOCLUSTER_PASSWORD).")
@click.option("--generate", is_flag=True, help="Make up a random password and print it.")
def user_passwd(path, username, password, generate):
    """Change the password of USERNAME; their web sessions end."""
    from ..users import set_password

    target = open_target(path)
    password, made = _password(password, generate)
    if _is_server(target):
        _run(target.set_password, username, password)
    else:
        _run(set_password, target, username, password)
    click.echo(f"Changed the password of {username}" + (f" to {password}" if made else ""))


@user.command("role")
@click.argument("path", type=click.Path(file_okay=False))
@click.argument("username")
@click.argument("role", type=click.Choice(["admin", "annotator", "viewer", "disabled", "none"]))
@PROJECT_OPTION
def user_role(path, username, role, on):
    """Give USERNAME another ROLE (their web sessions end); 'disabled' locks them out and keeps
    their name in the history. On a server root with --project: the role there ('none' or
    'disabled': none, the project is hidden from them); without it: admin makes a server admin,
    annotator or viewer takes that away, disabled locks them out of the server, none enables."""
    from ..users import set_role

    target = open_target(path)
    if not _is_server(target):
        if on or role == "none":
            raise click.ClickException("--project and 'none' are for a server root; PATH is a project")
        _run(set_role, target, username, role)
        click.echo(f"{username} is now {role}")
    elif on:
        _run(target.set_role, username, on, None if role in ("none", "disabled") else role)
        click.echo(f"{username}: {role if role not in ('none', 'disabled') else 'no role'} on {on}")
    else:
        flags = {"admin": {"admin": True, "disabled": False}, "disabled": {"disabled": True},
                 "none": {"disabled": False}}.get(role, {"admin": False})
        _run(target.set_flags, username, **flags)
        click.echo(f"{username}: " + {"admin": "server admin", "disabled": "disabled",
                                      "none": "enabled"}.get(role, "not a server admin"))


@user.command("logout")
@click.argument("path", type=click.Path(file_okay=False))
@click.argument("username")
def user_logout(path, username):
    """End every web session of USERNAME (a lost laptop, a copied cookie); passwd and role do too."""
    from ..users import end_sessions, user_id

    target = open_target(path)
    if _is_server(target):
        found = [u for u in target.list_users() if u["username"] == username]
        if not found:
            raise click.ClickException(f"no user named {username!r}")
        target.end_sessions(found[0]["id"])
    else:
        _run(lambda: end_sessions(target, user_id(target, username)))
    click.echo(f"Ended the sessions of {username}")


@user.command("list")
@click.argument("path", type=click.Path(file_okay=False))
def user_list(path):
    """List the users of PATH (on a server root: with their role per project)."""
    from ..users import list_users

    target = open_target(path)
    if _is_server(target):
        rows = [{**u, "role": "disabled" if u["disabled"] else "server-admin" if u["is_admin"] else "user",
                 "on": " ".join(f"{p}:{r}" for p, r in sorted(u["roles"].items()))}
                for u in target.list_users()]
    else:
        rows = list_users(target)
    if not rows:
        click.echo("No users.")
    for u in rows:
        click.echo(f"{u['username']:<24} {u['role']:<12} added {u['created_at']:%Y-%m-%d}"
                   + (f"  {u['on']}" if u.get("on") else ""))


@click.command("demo")
@click.option("--project", "project_dir", type=click.Path(file_okay=False), default="morphocluster-demo",
              show_default=True, help="Folder of the demo project (re-used if it exists).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--extractor", default="efficientnet-lite0+morphometric", show_default=True,
              help="Feature extractor (see `morphocluster features --help`).")
@click.option("--no-serve", is_flag=True, help="Build the project and stop (for tests).")
def demo(project_dir, host, port, extractor, no_serve):
    """Build a demo project from the bundled sample, cluster it and serve it."""
    from ..demo import DemoError, build_demo

    try:
        project, username, password = build_demo(project_dir, log=click.echo, extractor=extractor)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"\nLog in as user {username!r} with password {password!r}")
    if not no_serve:
        run_server(project, host, port)
