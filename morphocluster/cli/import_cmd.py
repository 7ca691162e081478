"""`morphocluster import`."""

from __future__ import annotations

import sys

import click

from . import open_project

FORMAT_CHOICES = ["auto", "folder", "class-folders", "index-csv", "ecotaxa", "morphocluster-tree"]
SHOWN = 10  # problems and notes printed; the rest go to the report file


class Amount(click.ParamType):
    """A positive number with an optional k, M or G suffix (powers of 1024 for byte counts)."""

    name = "amount"

    def __init__(self, base: int):
        self.base = base

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = str(value).strip().upper().removesuffix("B").removesuffix("I")
        mult = {"K": self.base, "M": self.base ** 2, "G": self.base ** 3}.get(text[-1:], 1)
        try:
            n = float(text[:-1] if mult > 1 else text) * mult
        except ValueError:
            n = 0
        if not n >= 1:
            self.fail(f"{value!r} is not a positive number (e.g. 64M)", param, ctx)
        return int(n)


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
@click.option("--max-file-size", type=Amount(1024), default=None,
              help="Largest image file (or image in a ZIP), in bytes (64M, 1G); default: the project's "
                   "\"limits\" in morphocluster.json, else 64M.")
@click.option("--max-pixels", type=Amount(1000), default=None,
              help="Largest image in pixels, width x height (16M); default: the project's, else 16M.")
@click.option("--max-aspect-ratio", type=click.FloatRange(1, min_open=False), default=None,
              help="Longest image side over its shortest; default: the project's, else 100.")
@click.option("--max-zip-ratio", type=click.FloatRange(1), default=None,
              help="How much a ZIP entry above 1 MiB may expand (uncompressed over compressed "
                   "size) before it is taken for a ZIP bomb; default: the project's, else 200.")
@click.option("--report", type=click.Path(dir_okay=False), expose_value=False,
              callback=lambda ctx, param, value: ctx.meta.__setitem__("import_report", value),
              help="Write every problem, warning and note to this TSV file (kind, file, line, "
                   "message). Without it, such a file is written to PROJECT/logs/ when the "
                   "summary leaves some out.")
@click.option("--link", is_flag=True,
              help="Hard-link the images into the project instead of copying them, where both are "
                   "on one file system (much faster for millions of small files); the source files "
                   "must then never be edited or overwritten in place.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def import_(project, sources, fmt, labels_from_folders, strict, update, max_file_size, max_pixels,
            max_aspect_ratio, max_zip_ratio, link, quiet):
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
    Limits: an image above --max-file-size, --max-pixels or --max-aspect-ratio is refused
    (reported with its file and row) before it is decoded, and so is a ZIP entry that expands
    more than --max-zip-ratio; ZIP entries that are neither images nor tables are not
    extracted. The defaults suit plankton vignettes. The project keeps its limits under
    "limits" in its morphocluster.json (thumbnails and features use them too); an option
    above the project's value raises it there once objects were imported with it, one below
    applies to this import only.

    \b
    Exit status: 0 all imported, 3 some rows failed (the rest was imported),
    1 nothing was imported (fatal error, or every row failed).
    """
    from ..importers import ImportFailed, import_sources
    from ..project import ProjectError

    p = open_project(project)
    try:
        limits = p.image_limits(max_file_size=max_file_size, max_pixels=max_pixels,
                                max_aspect_ratio=max_aspect_ratio, max_zip_ratio=max_zip_ratio)
        report = import_sources(p, list(sources), format=fmt, labels_from_folders=labels_from_folders,
                                strict=strict, progress=not quiet and sys.stderr.isatty(), update=update,
                                limits=limits, link=link)
    except (ImportFailed, ProjectError) as exc:
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
