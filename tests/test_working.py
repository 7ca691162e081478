"""The working matrix: a float16 PCA of the feature set, memory mapped, appended, resumable."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import insert

from morphocluster.features import matrix, set_active, working
from morphocluster.features.h5 import FeatureError, FeatureWriter, feature_path, write_features
from morphocluster.project import Project
from morphocluster.store import Object


def _project(tmp_path, n: int, d: int, seed: int = 0, store: str = "float32"):
    p = Project.create(tmp_path / "proj")
    ids = [f"o{i:05d}" for i in range(n)]
    with p.engine.begin() as conn:
        conn.execute(insert(Object), [{"object_id": i, "path": f"{i}.png"} for i in ids])
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, 8)) @ rng.normal(size=(8, d)) + 0.01 * rng.normal(size=(n, d)))
    # rows not in Object.id order, as a user's own feature file may be
    order = rng.permutation(n)
    with FeatureWriter(feature_path(p, "f"), [ids[i] for i in order], d, dtype=store) as w:
        for a in range(0, n, 100):
            w.write(X[order[a:a + 100]])
    set_active(p, "f")
    return p, ids, X.astype(np.float32)


def test_wide_features_become_a_float16_pca_in_object_order(tmp_path):
    p, ids, X = _project(tmp_path, 600, 300)
    fm = matrix.load_matrix(p)
    assert fm.X.shape == (600, working.WORKING_DIM) and fm.X.mm.dtype == np.float16
    assert isinstance(fm.X.mm, np.memmap)  # mapped, not loaded
    assert (np.diff(fm.pks) > 0).all() and len(fm.pks) == 600
    # the full rows come back from the feature file, in the matrix's row order
    F = fm.full_rows(np.arange(600))
    np.testing.assert_allclose(F, X, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fm.X[:], fm.project(F), atol=2e-2 * np.abs(fm.X[:]).max())
    # distances are kept: 8 informative dimensions survive the PCA
    d_full = ((F[:50, None] - F[None, :50]) ** 2).sum(-1)
    d_work = ((fm.X[:50][:, None] - fm.X[:50][None]) ** 2).sum(-1)
    assert np.corrcoef(d_full.ravel(), d_work.ravel())[0, 1] > 0.999


def test_narrow_features_are_kept_as_they_are(tmp_path):
    p, ids, X = _project(tmp_path, 200, 16)
    fm = matrix.load_matrix(p)
    assert fm.fit is None and fm.X.mm.dtype == np.float32
    np.testing.assert_allclose(fm.X[:], X, rtol=1e-6)


def test_appended_rows_are_projected_with_the_same_fit(tmp_path):
    p, ids, X = _project(tmp_path, 500, 200)
    first = working.build_working(p, "f")
    fit0 = matrix.load_matrix(p).fit
    with p.engine.begin() as conn:
        conn.execute(insert(Object), [{"object_id": f"new{i}", "path": "x.png"} for i in range(7)])
    Y = np.random.default_rng(3).normal(size=(7, 200)).astype(np.float32)
    from morphocluster.features.h5 import read_features

    old_ids, F, _ = read_features(feature_path(p, "f"))
    write_features(feature_path(p, "f"), list(old_ids) + [f"new{i}" for i in range(7)],
                   np.vstack([F, Y]))
    meta = working.build_working(p, "f")
    assert meta["n"] == first["n"] + 7 and not working.is_current(p, "f", first)
    fm = matrix.load_matrix(p)
    assert all(np.array_equal(a, b) for a, b in zip(fm.fit, fit0))
    rows = fm.rows_of(fm.pks[-7:])
    np.testing.assert_allclose(fm.X[rows], fm.project(Y), atol=2e-2 * np.abs(fm.X[:]).max())
    # refit: fitted anew, same rows
    again = working.build_working(p, "f", refit=True)
    assert again["n"] == meta["n"]


def test_a_stopped_build_resumes_where_it_got_to(tmp_path, monkeypatch):
    p, ids, X = _project(tmp_path, 900, 200, store="float16")
    monkeypatch.setattr(working, "CHUNK", 100)
    calls = []

    def stop_after_three(frac, msg):
        calls.append(msg)
        if len(calls) == 4:  # the fit, then three blocks of rows
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        working.build_working(p, "f", progress=stop_after_three)
    build = working.working_dir(p, "f").with_name("f.working.build")
    state = json.loads((build / "build.json").read_text())
    assert state["done"] == 300 and not working.working_dir(p, "f").exists()
    seen = []
    meta = working.build_working(p, "f", progress=lambda f, m: seen.append(m))
    assert seen[0] == "projected 400 of 900 objects"  # rows 0-299 were not done again
    assert not build.exists() and meta["n"] == 900
    resumed = np.asarray(np.load(working.working_dir(p, "f") / "matrix.npy"))
    fresh = working.build_working(p, "f", refit=True)
    assert fresh["n"] == 900
    np.testing.assert_array_equal(resumed, np.load(working.working_dir(p, "f") / "matrix.npy"))


def test_a_build_another_live_process_runs_is_refused(tmp_path):
    import os
    import subprocess
    import sys

    p, ids, X = _project(tmp_path, 300, 200)
    build = working.working_dir(p, "f").with_name("f.working.build")
    build.mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (build / "build.json").write_text(json.dumps(
            {"pid": other.pid, "host": os.uname().nodename, "plan": {}, "done": 0}))
        with pytest.raises(FeatureError, match=f"process {other.pid} is making"):
            working.build_working(p, "f")
    finally:
        other.kill()
        other.wait()
    assert working.build_working(p, "f")["n"] == 300  # its process gone: built afresh


def test_feature_writer_refuses_a_short_file(tmp_path):
    path = tmp_path / "x.h5"
    w = FeatureWriter(path, ["a", "b", "c"], 4)
    w.write(np.zeros((2, 4)))
    with pytest.raises(FeatureError, match="2 of 3 rows written"):
        w.close()
    assert not path.exists() and not path.with_suffix(".h5.tmp").exists()
