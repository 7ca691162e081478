"""`morphocluster import`."""

from __future__ import annotations

import sys

import click

from . import open_project

FORMAT_CHOICES = ["auto", "folder", "class-folders", "index-csv", "ecotaxa", "morphocluster-tree"]
SHOWN = 10  # problems and notes printed; the rest go to the report file


@click.command("import")
@click.argument("project", type=click.Path(file_okay=False))
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="auto", show_default=True,
              help="Source format; auto detects it per source.")
@click.option("--labels-from-folders", is_flag=True,
              help="Store the name of each image's folder as its imported label (status validated).")
@click.option("--strict", is_flag=True, help="Stop at the first problem and import nothing.")
@click.option("--update", is_flag=True,
              help="Objects already in the project take this source's imported labels, statuses "
                   "and metadata (where it gives them) instead of being skipped.")
@click.option("--report", type=click.Path(dir_okay=False), expose_value=False,
              callback=lambda ctx, param, value: ctx.meta.__setitem__("import_report", value),
              help="Write every problem, warning and note to this TSV file (kind, file, line, "
                   "message). Without it, such a file is written to PROJECT/logs/ when the "
                   "summary leaves some out.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def import_(project, sources, fmt, labels_from_folders, strict, update, quiet):
    """Import images from SOURCES (folders, ZIPs, EcoTaxa exports) into PROJECT.

    \b
    Formats:
      folder          images found recursively; object id = relative path without extension
      class-folders   the same, label = name of the folder holding the image
      index-csv       folder or ZIP with index.csv (object_id,path), the original MorphoCluster format
      ecotaxa         ecotaxa*.tsv/.txt tables anywhere in a folder or ZIP (also ZIPs inside)
      morphocluster-tree  ZIP with nodes.csv + objects.csv written by `morphocluster export`

    \b
    Bad input: every bad row (missing or corrupt image, duplicate object id, malformed
    table row, unsafe ZIP entry...) is reported with its file and row and skipped, and so is
    a corrupt ZIP inside an EcoTaxa source or an unreadable source among several (image
    folders do not look inside the ZIPs they hold); all good
    objects are committed together in one transaction, their images copied into the project
    only if that commit succeeds. Objects already in the project with the same id and image
    are skipped, so re-running an import is safe; with --update they take the source's
    labels and metadata instead (an EcoTaxa table without its images is enough). With
    --strict the first problem stops the import and nothing is written.

    \b
    Exit status: 0 all imported, 3 some rows failed (the rest was imported),
    1 nothing was imported (fatal error, or every row failed).
    """
    from ..importers import ImportFailed, import_sources

    p = open_project(project)
    try:
        report = import_sources(p, list(sources), format=fmt, labels_from_folders=labels_from_folders,
                                strict=strict, progress=not quiet and sys.stderr.isatty(), update=update)
    except ImportFailed as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        p.close()
    click.echo(report.summary(max_messages=SHOWN))
    _write_report(report, p.root, click.get_current_context().meta.get("import_report"))
    if report.failed and report.nothing_imported:
        click.echo("Error: nothing was imported; see the problems above", err=True)
        sys.exit(1)
    if report.failed:
        sys.exit(3)


def _write_report(report, root, path) -> None:
    """Write the full report to `path`, or to PROJECT/logs/ when the summary left some out."""
    from datetime import datetime
    from pathlib import Path

    if path is None:
        if len(report.failed_messages) <= SHOWN and len(report.notes) <= SHOWN:
            return
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path(root) / "logs" / f"import-{report.import_id or 'nothing'}-{stamp}.tsv"
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        report.write_tsv(path)
    except OSError as exc:
        click.echo(f"Warning: cannot write the full report to {path} ({exc.strerror or exc})", err=True)
        return
    click.echo(f"Full report: {path}")
