"""Build the demo project: import the bundled sample, features, index, a first cluster round, a user."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

DEMO_USER = "demo"


class DemoError(RuntimeError):
    """The demo project cannot be built (no sample, a folder in the way, ...)."""


def sample_dir() -> Path:
    """Return the bundled sample folder (data/planktonset-sample in the source tree)."""
    here = Path(__file__).resolve().parent
    for cand in (here / "data" / "planktonset-sample", here.parent / "data" / "planktonset-sample"):
        if cand.is_dir():
            return cand
    raise DemoError("the bundled sample (data/planktonset-sample) is not part of this installation; "
                    "run the demo from a source checkout")


def build_demo(root, sample: Path | None = None, log: Callable[[str], None] = print,
               extractor: str = "efficientnet-lite0+morphometric"):
    """Create (or finish) the demo project at `root`; return (project, username, password).

    Each step is skipped when an earlier run already did it, so a second call is quick. The demo
    user is an admin; a new password is made (and returned) on every call.
    """
    from sqlalchemy import func, select

    from .features import active_name
    from .features.h5 import FeatureError
    from .project import Project, ProjectError
    from .store import Node, Object
    from .users import UserError, add_user, generate_password, set_password

    sample = Path(sample) if sample else sample_dir()
    try:
        project = Project.create(root, exist_ok=True)
    except ProjectError as exc:
        raise DemoError(str(exc)) from exc
    with project.session() as s:
        n_objects = s.scalar(select(func.count(Object.id)))
        n_nodes = s.scalar(select(func.count(Node.id)))
    if not n_objects:
        from .importers import import_sources

        log(f"Importing {sample} ...")
        report = import_sources(project, [sample], labels_from_folders=False, progress=False)
        log(f"  {report.added} objects imported")
    try:
        active_name(project)
        has_features = True
    except FeatureError:
        has_features = False
    if not has_features:
        from .features.extract import extract_features

        log(f"Computing features ({extractor}) ...")
        extract_features(project, extractor, progress=False)
    if not n_nodes:
        from .index import build_index

        log("Building the index ...")
        build_index(project)
        from .cluster import cluster_round

        log("Clustering ...")
        result = cluster_round(project)
        log(f"  {len(result.node_ids)} candidate clusters, {result.n_clustered} of {result.n_pool} objects")
    password = generate_password()
    try:
        add_user(project, DEMO_USER, password, role="admin")
    except UserError:
        set_password(project, DEMO_USER, password)
    return project, DEMO_USER, password
