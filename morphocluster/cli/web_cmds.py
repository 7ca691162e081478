"""`morphocluster serve`, `morphocluster user ...` and `morphocluster demo`."""

from __future__ import annotations

import click

from . import open_project


def run_server(project, host: str, port: int, threads: int = 8, proxies: int | None = None) -> None:
    """Serve the web UI of an open project with waitress (blocks)."""
    from waitress import serve as waitress_serve

    from ..users import list_users
    from ..web import create_app

    app = create_app({"PROJECT": project, **({"PROXIES": proxies} if proxies is not None else {})})
    _prepare_working(project)
    _warm_in_background(project)
    if not list_users(project):
        click.echo(f"Note: no users yet; add one with `morphocluster user add {project.root} NAME "
                   "--role admin`", err=True)
    click.echo(f"Serving {project.root} on http://{host}:{port}/  (Ctrl-C stops)")
    waitress_serve(app, host=host, port=port, threads=threads, ident="morphocluster")


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
@click.argument("project", type=click.Path(file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all).")
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int, help="Worker threads.")
@click.option("--proxies", type=click.IntRange(0), default=None,
              help="Reverse proxies in front (trust their X-Forwarded-* headers, so that login "
                   "limits count each client); default: MORPHOCLUSTER_PROXIES or 0.")
def serve(project, host, port, threads, proxies):
    """Serve the web UI of PROJECT on a production WSGI server (waitress)."""
    run_server(open_project(project), host, port, threads, proxies)


@click.group("user")
def user():
    """Add, list and change the users of a project."""


def _password(password: str | None, generate: bool) -> tuple[str, bool]:
    from ..users import generate_password

    if password:
        return password, False
    if generate:
        return generate_password(), True
    return click.prompt("Password", hide_input=True, confirmation_prompt=True), False


@user.command("add")
@click.argument("project", type=click.Path(file_okay=False))
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "annotator", "viewer"]), default="annotator",
              show_default=True)
@click.option("--password", envvar="MORPHOCLUSTER_PASSWORD", default=None,
              help="The password, at least 6 characters (default: asked for; or set "
                   "MORPHOCLUSTER_PASSWORD).")
@click.option("--generate", is_flag=True, help="Make up a random password and print it.")
def user_add(project, username, role, password, generate):
    """Add user USERNAME to PROJECT."""
    from ..users import UserError, add_user

    p = open_project(project)
    password, made = _password(password, generate)
    try:
        add_user(p, username, password, role)
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Added {role} {username}" + (f" with password {password}" if made else ""))


@user.command("passwd")
@click.argument("project", type=click.Path(file_okay=False))
@click.argument("username")
@click.option("--password", envvar="MORPHOCLUSTER_PASSWORD", default=None,
              help="The new password, at least 6 characters (default: asked for; or set "
                   "MORPHOCLUSTER_PASSWORD).")
@click.option("--generate", is_flag=True, help="Make up a random password and print it.")
def user_passwd(project, username, password, generate):
    """Change the password of USERNAME; their web sessions end."""
    from ..users import UserError, set_password

    p = open_project(project)
    password, made = _password(password, generate)
    try:
        set_password(p, username, password)
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Changed the password of {username}" + (f" to {password}" if made else ""))


@user.command("role")
@click.argument("project", type=click.Path(file_okay=False))
@click.argument("username")
@click.argument("role", type=click.Choice(["admin", "annotator", "viewer", "disabled"]))
def user_role(project, username, role):
    """Give USERNAME another ROLE (their web sessions end); 'disabled' locks them out and keeps
    their name in the history."""
    from ..users import UserError, set_role

    try:
        set_role(open_project(project), username, role)
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{username} is now {role}")


@user.command("logout")
@click.argument("project", type=click.Path(file_okay=False))
@click.argument("username")
def user_logout(project, username):
    """End every web session of USERNAME (a lost laptop, a copied cookie); passwd and role do too."""
    from ..users import UserError, end_sessions, user_id

    p = open_project(project)
    try:
        end_sessions(p, user_id(p, username))
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Ended the sessions of {username}")


@user.command("list")
@click.argument("project", type=click.Path(file_okay=False))
def user_list(project):
    """List the users of PROJECT."""
    from ..users import list_users

    rows = list_users(open_project(project))
    if not rows:
        click.echo("No users.")
    for u in rows:
        click.echo(f"{u['username']:<24} {u['role']:<10} added {u['created_at']:%Y-%m-%d}")


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
