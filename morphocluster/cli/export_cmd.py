"""`morphocluster export`."""

from __future__ import annotations

import os

import click

from . import open_project

FORMATS = ("ecotaxa", "csv", "imagefolder", "hdf5", "morphocluster-tree")


@click.command("export")
@click.argument("project", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True,
              help="ecotaxa: TSV (+images) for EcoTaxa; csv: one row per object; imagefolder: "
                   "OUT/<label>/<object_id>.<ext>; hdf5: features with labels; morphocluster-tree: "
                   "the original tool's tree ZIP.")
@click.option("--out", required=True, type=click.Path(dir_okay=True),
              help="Output file or folder (ecotaxa and imagefolder write a ZIP if it ends in .zip; "
                   "ecotaxa writes the table alone if it ends in .tsv, and a folder if it is one, "
                   "ends with / or has no suffix).")
@click.option("--labels", type=click.Choice(["validated", "all"]), default="validated",
              show_default=True, help="Which objects. validated: only labelled objects (members of "
                                      "validated nodes; see --status for which of their labels "
                                      "count); all: unlabelled ones too, with an empty label. "
                                      "(morphocluster-tree always writes every node with its "
                                      "members; all adds the objects of no node.)")
@click.option("--status", type=click.Choice(["any", "validated"]), default="any",
              show_default=True, help="Which labels. any: those a human saw (status validated) "
                                      "and those accepted unseen (predicted); validated: only "
                                      "those a human saw, and a predicted object counts as "
                                      "unlabelled: left out, or with --labels all written without "
                                      "a label (ecotaxa: with the annotation it was imported with).")
@click.option("--with-images", is_flag=True, help="Copy the images beside the EcoTaxa TSV.")
@click.option("--overwrite", is_flag=True,
              help="Replace OUT if it is an existing file (a folder is never replaced; it must be "
                   "empty or new).")
def export(project, fmt, out, labels, status, with_images, overwrite):
    """Export the labels of PROJECT.

    OUT appears only once it is complete. An existing file is not replaced unless --overwrite
    is given; an existing non-empty folder is never written into.
    """
    from ..export import ExportError, export as run_export

    p = open_project(project)
    try:
        folder = {"as_folder": True} if fmt == "ecotaxa" and out.endswith(("/", os.sep)) else {}
        report = run_export(p, fmt, out, labels=labels, status=status, with_images=with_images,
                            overwrite=overwrite, **folder)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        p.close()
    click.echo(report.summary())
