"""The saved FAISS index: kinds, PCA, restricted search against a brute-force numpy answer."""

from __future__ import annotations

import numpy as np
import pytest

from morphocluster import index
from morphocluster.features import feature_path, set_active, write_features
from morphocluster.features.matrix import load_matrix
from test_features_helpers import add_objects

N, D = 600, 16


@pytest.fixture
def vec_project(project):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, D)) * 3
    X = (centres[rng.integers(6, size=N)] + rng.normal(size=(N, D))).astype(np.float32)
    ids = [f"o{i}" for i in range(N)]
    add_objects(project, ids)
    write_features(feature_path(project, "syn"), ids[::-1], X[::-1], {"extractor": "synthetic"})
    set_active(project, "syn")
    return project


def brute(fm, q, k, allowed=None):
    mask = np.ones(len(fm.pks), bool) if allowed is None else np.isin(fm.pks, allowed)
    X, pks = fm.X[mask], fm.pks[mask]
    d = ((q[:, None, :] - X[None]) ** 2).sum(-1)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, 1), pks[order]


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
@pytest.mark.parametrize("subset", [40, 500])
def test_restricted_search_matches_numpy(vec_project, kind, subset):
    meta = index.build_index(vec_project, kind=kind, nlist=8)
    assert meta["kind"] == kind and (vec_project.index_dir / meta["index_file"]).exists()
    fm = load_matrix(vec_project)
    rng = np.random.default_rng(1)
    allowed = rng.choice(fm.pks, subset, replace=False)
    q = fm.X[rng.choice(N, 5, replace=False)] + 0.01
    Dd, I = index.search(vec_project, q, 10, allowed_pks=allowed)
    assert np.isin(I, allowed).all()
    Db, Ib = brute(fm, q, 10, allowed)
    np.testing.assert_allclose(Dd, Db, rtol=1e-4, atol=1e-3)
    assert (I == Ib).all()  # small subsets are searched exactly, whatever the index


def test_unrestricted_and_k_larger_than_subset(vec_project):
    index.build_index(vec_project)
    fm = load_matrix(vec_project)
    Dd, I = index.search(vec_project, fm.X[:3], 7)
    np.testing.assert_array_equal(I, brute(fm, fm.X[:3], 7)[1])
    Dd, I = index.search(vec_project, fm.X[:2], 50, allowed_pks=fm.pks[:4])
    assert I.shape == (2, 4) and set(I[0]) == set(fm.pks[:4])


def test_pca_index(vec_project):
    meta = index.build_index(vec_project, pca=4)
    assert meta["pca"] == 4 and meta["dim"] == 4 and 0 < meta["pca_variance_kept"] <= 1
    fm = load_matrix(vec_project)
    assert index._searcher(vec_project).meta["pca"] == 4
    import faiss

    pca = faiss.read_VectorTransform(str(vec_project.index_dir / meta["pca_file"]))
    Z = pca.apply(np.ascontiguousarray(fm.X))
    allowed = fm.pks[::5]
    D, I = index.search(vec_project, fm.X[:3], 5, allowed_pks=allowed)
    mask = np.isin(fm.pks, allowed)
    d = ((Z[:3, None] - Z[mask][None]) ** 2).sum(-1)
    np.testing.assert_array_equal(I, fm.pks[mask][np.argsort(d, 1, kind="stable")[:, :5]])
    d = fm.X.shape[1]
    with pytest.raises(ValueError, match=rf"--pca 99: must be below the feature dimension {d} \(1 to {d - 1}\)"):
        index.build_index(vec_project, pca=99)


def test_auto_kind_uses_threshold(vec_project, monkeypatch):
    monkeypatch.setattr(index, "EXACT_MAX", 100)
    assert index.build_index(vec_project)["kind"] == "ivf"
    monkeypatch.setattr(index, "EXACT_MAX", 10_000)
    assert index.build_index(vec_project)["kind"] == "flat"
    assert index.index_info(vec_project)["kind"] == "flat"


def test_stale_index_falls_back_to_exact(vec_project):
    index.build_index(vec_project, kind="hnsw")
    add_objects(vec_project, ["new"])
    fm = load_matrix(vec_project)
    X = np.vstack([fm.X, np.zeros((1, D), np.float32)])
    write_features(feature_path(vec_project, "syn"), list(fm.object_ids) + ["new"], X)
    D_, I = index.search(vec_project, np.zeros((1, D), np.float32), 1)
    new_pk = load_matrix(vec_project).pks[-1]
    assert I[0, 0] == new_pk and index._searcher(vec_project).meta == {"kind": "flat", "saved": False}


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_idselector_path_on_large_subsets(vec_project, kind, monkeypatch):
    monkeypatch.setattr(index, "SUBSET_EXACT_MAX", 100)  # force the IDSelector search in the index
    monkeypatch.setattr(index, "SUBSET_EXACT_BYTES", 0)
    index.build_index(vec_project, kind=kind, nlist=8)
    fm = load_matrix(vec_project)
    allowed = fm.pks[fm.pks % 3 != 0]
    q = fm.X[:20]
    D_, I = index.search(vec_project, q, 10, allowed_pks=allowed)
    assert np.isin(I, allowed).all()
    _, Ib = brute(fm, q, 10, allowed)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, Ib)])
    assert recall == 1.0 if kind == "flat" else recall >= 0.9


def test_an_interrupted_rebuild_leaves_the_previous_index_working(vec_project, monkeypatch):
    """Ctrl-C while a new index is written: the old one (with its PCA) keeps answering."""
    import faiss

    meta = index.build_index(vec_project, pca=4, kind="hnsw")
    fm = load_matrix(vec_project)
    before = index.search(vec_project, fm.X[:3], 5)

    def interrupted(idx, path):
        open(path, "wb").write(b"half an index")  # what a killed write leaves
        raise KeyboardInterrupt

    monkeypatch.setattr(faiss, "write_index", interrupted)
    for pca in (None, 8):
        with pytest.raises(KeyboardInterrupt):
            index.build_index(vec_project, pca=pca, kind="flat")
        index._CACHE.clear()  # as a new process would see it
        assert index.index_info(vec_project) == meta
        D, I = index.search(vec_project, fm.X[:3], 5)
        np.testing.assert_array_equal(I, before[1])
    monkeypatch.undo()
    new = index.build_index(vec_project, kind="flat")  # a finished build tidies up the debris
    assert sorted(p.name for p in vec_project.index_dir.iterdir()) == sorted(["syn.json", new["index_file"]])


def test_warm_reads_the_matrix_and_index_and_opens_the_index(vec_project):
    from pathlib import Path

    meta = index.build_index(vec_project, kind="ivf", nlist=8)
    index._CACHE.clear()
    fm = load_matrix(vec_project)
    out = index.warm(vec_project)
    expected = sum(f.stat().st_size for f in (Path(fm.X.mm.filename), vec_project.index_dir /
                                               meta["index_file"], vec_project.root / "project.sqlite"))
    assert out["skipped"] is None and out["bytes"] == expected
    assert len(index._CACHE) == 1  # the searcher is open: the first search does not open it
    D, I = index.search(vec_project, fm.X[:2], 5)
    assert (I[:, 0] == fm.pks[:2]).all()
    # a project whose files would crowd the memory out is not read
    small = index.warm(vec_project, share=1e-12)
    assert small["bytes"] == 0 and "matrix.npy" in small["skipped"]
