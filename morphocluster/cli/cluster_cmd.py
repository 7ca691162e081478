"""`morphocluster cluster`: one clustering round over the objects not yet in a node."""

from __future__ import annotations

import click

from . import open_project


@click.command("cluster")
@click.argument("project_path", metavar="PROJECT", type=click.Path(file_okay=False))
@click.option("--min-cluster-size", type=int, default=None,
              help="Smallest cluster (default: 64 in the first round, or 1/40 of the objects "
                   "clustered if that is smaller; then half the last round's; never below 8).")
@click.option("--min-samples", type=int, default=None, help="HDBSCAN min_samples (default 1).")
@click.option("--method", type=click.Choice(["leaf", "eom"]), default="leaf", show_default=True,
              help="HDBSCAN cluster selection.")
@click.option("--reduce", "reduce_", default="pca:64", show_default=True,
              help="Dimension reduction before clustering: pca:N, umap:N or none.")
@click.option("--sample", type=int, default=None,
              help="Cluster a random sample of N objects (--min-cluster-size applies to it) and "
                   "assign the rest to the nearest cluster where close (for very large projects).")
@click.option("--backend", type=click.Choice(["knn", "fast", "hdbscan"]), default="knn",
              show_default=True, help="HDBSCAN implementation.")
@click.option("--no-map", is_flag=True, help="Skip (re)computing the 2-D map.")
def cluster(project_path, min_cluster_size, min_samples, method, reduce_, sample, backend, no_map):
    """Propose seed clusters among the objects not yet labelled (one round)."""
    from ..cluster import ClusterParamError, cluster_round
    from ..features import FeatureError

    project = open_project(project_path)
    last = [-1.0]

    def progress(frac, msg):
        if frac - last[0] >= 0.049 or frac >= 1.0:
            click.echo(f"[{frac * 100:3.0f}%] {msg}", err=True)
            last[0] = frac

    try:
        r = cluster_round(project, min_cluster_size=min_cluster_size, min_samples=min_samples,
                          method=method, reduce=reduce_, sample=sample, backend=backend,
                          progress=progress, map2d=not no_map)
    except (ClusterParamError, FeatureError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        project.close()
    p = r.params
    click.echo(f"round {r.round}: {len(r.node_ids)} clusters, {r.n_clustered} of {r.n_pool} free "
               f"objects clustered ({100 * r.n_clustered / max(r.n_pool, 1):.1f} %), "
               f"{r.n_dissolved} old candidate clusters given back")
    click.echo(f"parameters: min_cluster_size={p['min_cluster_size']}"
               f"{' (auto)' if p['min_cluster_size_auto'] else ''} min_samples={p['min_samples']} "
               f"method={p['method']} reduce={p['reduce']} sample={p['sample']} backend={p['backend']}")
    click.echo("time: " + ", ".join(f"{k} {v:.1f}s" for k, v in r.timings.items()))
