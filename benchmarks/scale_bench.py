"""Time and peak memory of every step on a project of N objects with full-width features.

Run:  nice python benchmarks/scale_bench.py --n 1000000 [--dim 1498] [--db sqlite|postgres]
          [--work DIR] [--keep] [--steps build,working,cluster,suggest,pages,pages-during-job,export]

Builds a project of N objects (rows inserted in bulk; their images repeat 500 real PlanktonSet
images) whose features have the default set's width (1498) and a clustered structure, streamed
block by block through the product's write path (`features.FeatureWriter`, float16 on disk, so
10M objects need 30 GB, not 60). 60 % of the objects are in candidate nodes of about 1,000, and
20 of those nodes are approved and named. Each step then runs in a process of its own, whose
peak RSS (`ru_maxrss`) is reported beside its time:

  build             objects, nodes and features written
  working           the working matrix (PCA-128, float16) and the FAISS index
  cluster           one clustering round on the free objects (with the 2-D map)
  suggest           retrain the suggestion model and predict every free object
  pages             the web pages through the Flask test client: cold, then p95 of warm requests;
                    the process's peak RSS is the server's
  pages-during-job  the same pages while a clustering round runs in another process
  export            EcoTaxa TSV and CSV of every object (labelled or not)

With `--db postgres` the store is a database on the server named by MORPHOCLUSTER_TEST_PG_URL
(or --pg-url). Disk per object is the project folder's size over N.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO.parent / "shared" / "data" / "planktonset-dev"
PASSWORD = "bench-password"
STEPS = ("build", "working", "cluster", "suggest", "pages", "pages-during-job", "export")
BLOCK = 65_536


def synthetic_blocks(n: int, dim: int, seed: int = 0):
    """Yield (blob of each row, float16 rows) blocks: blobs in a 64-d subspace, plus noise."""
    rng = np.random.default_rng(seed)
    n_blobs = max(10, n // 1000)
    basis = np.linalg.qr(rng.normal(size=(dim, 64)))[0].astype(np.float32)
    centres = rng.normal(size=(n_blobs, 64)).astype(np.float32) * 3
    blob = rng.integers(0, n_blobs, n)
    for a in range(0, n, BLOCK):
        b = blob[a:a + BLOCK]
        X = (centres[b] + rng.normal(size=(len(b), 64)).astype(np.float32)) @ basis.T
        X += 0.05 * rng.standard_normal((len(b), dim), dtype=np.float32)
        yield b, X.astype(np.float16)


def step_build(root: Path, n: int, dim: int, db_url: str | None) -> dict:
    from sqlalchemy import insert

    from morphocluster.features import set_active
    from morphocluster.features.h5 import FeatureWriter, feature_path
    from morphocluster.project import Project
    from morphocluster.store import Membership, Node, Object
    from morphocluster.users import add_user

    p = Project.create(root, database_url=db_url)
    src = sorted(IMAGES.rglob("*.jpg"))[::40][:500]
    (p.images_dir / "bench").mkdir(parents=True)
    names = []
    for i, f in enumerate(src):
        shutil.copy2(f, p.images_dir / "bench" / f"{i}.jpg")
        names.append(f"bench/{i}.jpg")
    ids = [f"obj{i:08d}" for i in range(n)]
    with p.engine.begin() as conn:
        for a in range(0, n, 50_000):
            conn.execute(insert(Object), [
                {"id": i + 1, "object_id": ids[i], "path": names[i % len(names)], "width": 60,
                 "height": 60} for i in range(a, min(n, a + 50_000))])
    blobs = np.empty(n, np.int64)
    with FeatureWriter(feature_path(p, "synthetic"), ids, dim, {"extractor": "synthetic"},
                       dtype="float16") as w:
        for a, (b, X) in zip(range(0, n, BLOCK), synthetic_blocks(n, dim)):
            blobs[a:a + len(b)] = b
            w.write(X)
    del ids
    set_active(p, "synthetic")
    rng = np.random.default_rng(1)
    in_node = rng.random(n) < 0.6
    n_blobs = int(blobs.max()) + 1
    n_appr = min(20, n_blobs // 2)
    with p.engine.begin() as conn:
        counts = np.bincount(blobs[in_node], minlength=n_blobs)
        conn.execute(insert(Node), [
            {"id": b + 1, "status": "approved" if b < n_appr else "candidate", "round": 1,
             "n_members": int(counts[b]), "members_version": 1,
             "name": f"class {b}" if b < n_appr else None} for b in range(n_blobs)])
        pks = np.flatnonzero(in_node)
        for a in range(0, len(pks), 50_000):
            conn.execute(insert(Membership), [
                {"object_pk": int(i) + 1, "node_id": int(blobs[i]) + 1,
                 "status": "validated" if blobs[i] < n_appr else "cluster"}
                for i in pks[a:a + 50_000]])
    if p.engine.dialect.name == "postgresql":  # rows were given their ids: move the sequences on
        from sqlalchemy import text

        with p.engine.begin() as conn:
            for table in ("objects", "nodes"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
    add_user(p, "bench", PASSWORD, "admin")
    p.close()
    return {}


def step_working(root: Path) -> dict:
    from morphocluster.features.h5 import active_name
    from morphocluster.features.working import build_working
    from morphocluster.index import build_index
    from morphocluster.project import Project

    p = Project.open(root)
    t = time.perf_counter()
    meta = build_working(p, active_name(p))
    t_w = time.perf_counter() - t
    idx = build_index(p)
    return {"note": f"working {meta['dim']}-d {meta['dtype']} in {t_w:.0f} s; index {idx['kind']} "
                    f"in {idx['build_seconds']:.0f} s"}


def step_cluster(root: Path) -> dict:
    from morphocluster.cluster.rounds import cluster_round
    from morphocluster.project import Project

    r = cluster_round(Project.open(root))
    parts = ", ".join(f"{k} {v:.0f}" for k, v in r.timings.items() if k != "total" and v >= 1)
    return {"note": f"{len(r.node_ids)} clusters of {r.n_pool:,} free objects, "
                    f"{r.n_dissolved:,} candidates dissolved; s: {parts}"}


def step_suggest(root: Path) -> dict:
    from morphocluster import suggest
    from morphocluster.project import Project

    p = Project.open(root)
    t = time.perf_counter()
    suggest.train(p)
    t_train = time.perf_counter() - t
    preds = suggest.predict(p)
    return {"note": f"train {t_train:.0f} s; {len(preds):,} predicted"}


def _client(root: Path):
    from morphocluster.project import Project
    from morphocluster.web import create_app

    p = Project.open(root)
    c = create_app({"PROJECT": p, "RECOVER_JOBS": False}).test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"',
                      c.get("/login").get_data(as_text=True)).group(1)
    c.post("/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token})
    return p, c


def _urls(p) -> list[tuple[str, str]]:
    from sqlalchemy import select

    from morphocluster.store import Node

    with p.session() as s:
        cand = s.scalar(select(Node.id).where(Node.status == "candidate").order_by(Node.id.desc()))
        appr = s.scalar(select(Node.id).where(Node.status == "approved").order_by(Node.id))
    return [("validate page", f"/validate/{cand}"), ("grow page", f"/grow/{appr}"),
            ("home page", "/"), ("home map (htmx)", "/map"), ("suggestions", "/suggest/"),
            ("tree", "/tree/"), ("object page", "/object/1")]


def _time(c, url: str, repeat: int) -> dict:
    t = time.perf_counter()
    r = c.get(url)
    cold = time.perf_counter() - t
    if r.status_code != 200:
        return {"cold": cold, "p95": float("nan"), "status": r.status_code}
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        c.get(url)
        times.append(time.perf_counter() - t)
    times.sort()
    return {"cold": cold, "p95": times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))],
            "median": statistics.median(times)}


def step_pages(root: Path, repeat: int = 20) -> dict:
    from sqlalchemy import select

    from morphocluster.store import Node
    from morphocluster.workflow import grow

    from morphocluster.index import warm

    p, c = _client(root)
    w = warm(p)  # what `serve` does in the background as it starts
    with p.session() as s:
        appr = s.scalars(select(Node.id).where(Node.status == "approved").order_by(Node.id)).all()
    t = time.perf_counter()
    page = grow.candidates(p, appr[1], 0, 50)  # a node no page below has ranked yet
    rank = time.perf_counter() - t
    t = time.perf_counter()
    grow.candidates(p, appr[2], 0, 50)  # and a second one
    rank2 = time.perf_counter() - t
    recall = _first_page_recall(p, appr[1], page.pks)
    pages = {label: _time(c, url, repeat) for label, url in _urls(p)}
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    warmed = (f"server start-up read {w['bytes'] / 2**30:.1f} GB into the page cache in "
              f"{w['seconds']:.1f} s" + (f" (not {w['skipped']})" if w["skipped"] else ""))
    return {"pages": pages, "rank_s": rank, "server_rss_mb": own,
            "note": f"first grow page {rank * 1e3:.0f} ms ({len(page.pks)} shown), of a second "
                    f"node {rank2 * 1e3:.0f} ms; first page recall {recall}; {warmed}; "
                    f"server peak RSS {own:,.0f} MB"}


def _first_page_recall(p, node_id: int, shown: list[int]) -> str:
    """Share of a first grow page that a search of every IVF list shows too ('exact': no IVF)."""
    from morphocluster import index
    from morphocluster.workflow import grow

    nlist = (index.index_info(p) or {}).get("nlist")
    if not nlist:
        return "exact"
    before, index.MIN_PROBE = index.MIN_PROBE, nlist
    try:
        grow.clear_cache()
        ref = grow.candidates(p, node_id, 0, 50).pks
    finally:
        index.MIN_PROBE = before
        grow.clear_cache()
    return f"{len(set(ref) & set(shown)) / max(1, len(ref)):.3f} against all {nlist} lists"


def step_pages_during_job(root: Path, repeat: int = 20) -> dict:
    job = subprocess.Popen([sys.executable, __file__, "--run-step", "cluster", "--project",
                            str(root)], stdout=subprocess.DEVNULL)
    try:
        time.sleep(5)
        out = step_pages(root, repeat)
        out["note"] += "; clustering round running" if job.poll() is None else "; job ended early"
    finally:  # stopped part way, a round writes nothing
        job.terminate()
        job.wait()
    return out


def step_export(root: Path) -> dict:
    from morphocluster.export import export
    from morphocluster.project import Project

    p = Project.open(root)
    notes = []
    for fmt, name in (("ecotaxa", "export.tsv"), ("csv", "export.csv")):
        t = time.perf_counter()
        rep = export(p, fmt, root.parent / name, labels="all", overwrite=True)  # every object
        notes.append(f"{fmt} {time.perf_counter() - t:.0f} s")
        rows = getattr(rep, "n_objects", None)
        (root.parent / name).unlink(missing_ok=True)
    return {"note": ", ".join(notes) + (f" ({rows:,} rows each)" if rows else " (every object)")}


def run_step(name: str, args) -> dict:
    """Run one step in a child process; return its result with time and peak RSS."""
    cmd = [sys.executable, __file__, "--run-step", name, "--project", str(args.project),
           "--n", str(args.n), "--dim", str(args.dim)] + (["--db-url", args.db_url] if args.db_url else [])
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # the child's own peak RSS, not the largest so far
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    rss = usage.ru_maxrss
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    res = json.loads(lines[-1][7:]) if lines else {"note": f"failed (exit {proc.returncode})"}
    res.update(seconds=wall, rss_mb=rss / 1024)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=1498)
    ap.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--pg-url", default=os.environ.get("MORPHOCLUSTER_TEST_PG_URL"))
    ap.add_argument("--work", type=Path, default=Path("bench-out/scale"))
    ap.add_argument("--steps", default=",".join(STEPS))
    ap.add_argument("--keep", action="store_true", help="keep the project (reused by a next run)")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--run-step", help=argparse.SUPPRESS)
    ap.add_argument("--project", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--db-url", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run_step:
        fn = {"build": lambda: step_build(args.project, args.n, args.dim, args.db_url),
              "working": lambda: step_working(args.project),
              "cluster": lambda: step_cluster(args.project),
              "suggest": lambda: step_suggest(args.project),
              "pages": lambda: step_pages(args.project),
              "pages-during-job": lambda: step_pages_during_job(args.project),
              "export": lambda: step_export(args.project)}[args.run_step]
        print("RESULT " + json.dumps(fn(), default=float), flush=True)
        return 0
    args.project = args.work / f"n{args.n}-{args.db}" / "project"
    if args.db == "postgres":
        if not args.pg_url:
            ap.error("--db postgres needs --pg-url or MORPHOCLUSTER_TEST_PG_URL")
        args.db_url = _fresh_database(args.pg_url, f"scale_{args.n}")
    else:
        args.db_url = None
    steps = [s for s in args.steps.split(",") if s]
    if "build" in steps and args.project.parent.exists():
        shutil.rmtree(args.project.parent)
    args.project.parent.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in steps:
        print(f"{name} ...", flush=True)
        results[name] = run_step(name, args)
        print(f"  {results[name]['seconds']:.1f} s, peak RSS {results[name]['rss_mb']:,.0f} MB; "
              f"{results[name].get('note', '')}", flush=True)
    disk = sum(f.stat().st_size for f in args.project.rglob("*") if f.is_file())
    report(args, results, disk)
    if not args.keep:
        shutil.rmtree(args.project.parent, ignore_errors=True)
    return 0


def _fresh_database(url: str, name: str) -> str:
    from sqlalchemy import create_engine, text

    eng = create_engine(url, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    return url.rsplit("/", 1)[0] + "/" + name


def report(args, results: dict, disk: int) -> None:
    print(f"\nscale_bench: {args.n:,} objects x {args.dim} features, {args.db}, "
          f"{os.cpu_count()} CPU cores")
    print(f"{'step':<34}{'seconds':>10}{'peak RSS MB':>13}  note")
    for name, r in results.items():
        print(f"{name:<34}{r['seconds']:>10.1f}{r['rss_mb']:>13,.0f}  {r.get('note', '')}")
        for label, pg in (r.get("pages") or {}).items():
            print(f"  {label:<32}cold {pg['cold'] * 1e3:>8.0f} ms   p95 warm "
                  f"{pg['p95'] * 1e3:>7.1f} ms" + (f"   HTTP {pg['status']}" if "status" in pg else ""))
    print(f"disk: {disk / 2**20:,.0f} MB, {disk / args.n:,.0f} bytes per object "
          "(features float16 on disk, working matrix, index, database)")
    print(f"\nrerun: nice python benchmarks/scale_bench.py --n {args.n} --dim {args.dim} "
          f"--db {args.db}")


if __name__ == "__main__":
    sys.exit(main())
