"""`morphocluster init` and `morphocluster info`."""

from __future__ import annotations

import click

from . import open_project


@click.command("init")
@click.argument("project", type=click.Path(file_okay=False))
@click.option("--database-url", default=None,
              help="SQLAlchemy URL of a PostgreSQL database (default: SQLite inside the folder).")
def init(project, database_url):
    """Create an empty project folder PROJECT."""
    from ..project import Project, ProjectError

    try:
        Project.create(project, database_url=database_url)
    except ProjectError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Created project {project}")


@click.command("info")
@click.argument("project", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def info(project, as_json):
    """Show counts of objects, image sizes, imported labels and nodes of PROJECT."""
    import json

    from ..info import summarize, format_summary

    p = open_project(project)
    summary = summarize(p)
    click.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))
