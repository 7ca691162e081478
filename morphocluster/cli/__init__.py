"""The `morphocluster` command: a thin click layer over the library.

Subcommands live in their own modules and are imported only when called, so that
`morphocluster --help` stays fast (no torch, faiss or umap at start-up).
"""

from __future__ import annotations

import importlib

import click

from .. import __version__

# name -> "module:function" inside morphocluster.cli
COMMANDS = {
    "init": "project_cmds:init",
    "info": "project_cmds:info",
    "import": "import_cmd:import_",
    "features": "features_cmd:features",
    "train": "features_cmd:train",
    "learn": "learn_cmd:learn",
    "index": "features_cmd:index",
    "cluster": "cluster_cmd:cluster",
    "serve": "web_cmds:serve",
    "init-server": "web_cmds:init_server",
    "user": "web_cmds:user",
    "demo": "web_cmds:demo",
    "simulate": "simulate_cmd:simulate",
    "suggest": "suggest_cmd:suggest",
    "export": "export_cmd:export",
}

HELP = {
    "init": "Create an empty project folder.",
    "info": "Show what a project holds.",
    "import": "Import images, class folders, index.csv ZIPs or EcoTaxa exports.",
    "features": "Compute the feature vectors of every object.",
    "train": "Tune only the last blocks of the network (older; see learn).",
    "learn": "Train the whole feature network on the images and sorting.",
    "index": "Build the FAISS nearest-neighbour index over the active features.",
    "cluster": "Propose seed clusters among the objects not yet labelled.",
    "serve": "Serve the web UI of a project, or of a server root of projects.",
    "init-server": "Make a folder a server root: several projects, one login.",
    "user": "Add, list and change users (of a project or a server root).",
    "demo": "Build a demo project from the bundled sample and serve it.",
    "simulate": "Measure annotation efficiency with a simulated annotator.",
    "suggest": "Train the suggestion model and predict labels for unlabelled objects.",
    "export": "Export labels and images (EcoTaxa, CSV, class folders, HDF5, tree).",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(f"{__name__}.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{module_name}":
                raise
            return _missing(name)
        return getattr(module, attr)

    def format_commands(self, ctx, formatter):
        rows = [(name, HELP.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _missing(name):
    @click.command(name, help=HELP.get(name, "") + " (not available in this build)")
    def cmd():
        raise click.ClickException(f"`{name}` is not available in this build")

    return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="morphocluster")
def main():
    """Sort plankton images by clusters: import, features, cluster, validate, grow, export."""


def open_project(path):
    """Open a project for a command, turning library errors into click errors."""
    from ..project import Project, ProjectError

    try:
        return Project.open(path)
    except ProjectError as exc:
        raise click.ClickException(str(exc)) from exc
