"""Feature sets that keep no full features (`features --store none`): the same working matrix as
float16 features and a build, full-width rows on disk bounded by the fit sample, appends
projected with the stored fit, a stopped run resumed, and every reader of full features
refusing with a message that says what to do."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from morphocluster.cli import main
from morphocluster.features import FeatureError, feature_path, list_feature_sets
from morphocluster.features.extract import extract_features
from morphocluster.features.matrix import load_matrix
from morphocluster.features.working import build_working, working_dir
from test_features_helpers import CLASSES

N_DIM = 1024  # pixels at 32 x 32


def _images(shared_data, dst, lo, hi):
    """Copy the real planktonset-dev images lo..hi of each of three classes into dst/<class>/."""
    for c in CLASSES:
        (dst / c).mkdir(parents=True)
        for f in sorted((shared_data / "planktonset-dev" / c).glob("*.jpg"))[lo:hi]:
            shutil.copy2(f, dst / c / f.name)
    return dst


def _import(project, shared_data, tmp_path, lo, hi):
    from morphocluster.importers import import_sources

    src = _images(shared_data, tmp_path / f"images-{lo}-{hi}", lo, hi)
    import_sources(project, [src], labels_from_folders=True, progress=False)


def _run(project, name, **kw):
    return extract_features(project, kw.pop("extractor", "pixels"), name=name, num_workers=0,
                            progress=kw.pop("progress", False), activate=kw.pop("activate", False),
                            **kw)


def _full_width_bytes(project) -> int:
    """Bytes of the feature folder's HDF5 files (the full-width rows live in those only)."""
    return sum(p.stat().st_size for p in project.features_dir.rglob("*")
               if p.is_file() and ".h5" in p.name)


@pytest.fixture
def three_hundred(project, shared_data, tmp_path):
    _import(project, shared_data, tmp_path, 0, 100)
    return project


@pytest.mark.parametrize("extractor", ["pixels", "morphometric"])
def test_store_none_gives_the_working_matrix_of_float16_features_and_keeps_no_rows(
        three_hundred, extractor):
    p = three_hundred
    _run(p, "kept", extractor=extractor, store="float16")
    _run(p, "none", extractor=extractor, store="none")
    kept, none = load_matrix(p, "kept"), load_matrix(p, "none")
    assert len(none.pks) == 300 and np.array_equal(kept.pks, none.pks)
    assert none.dim_in == kept.dim_in and none.X.shape == kept.X.shape
    np.testing.assert_allclose(np.asarray(none.X), np.asarray(kept.X), atol=2e-3, rtol=2e-3)
    with h5py.File(feature_path(p, "none")) as h:
        assert "features" not in h and h.attrs["store"] == "none" and h.attrs["complete"]
        assert h.attrs["dim"] == kept.dim_in and len(h["object_id"]) == 300
    assert none.meta["full_kept"] is False and kept.full_kept and not none.full_kept
    left = sorted(x.name for x in p.features_dir.iterdir() if x.name.startswith("none"))
    assert left == ["none.h5", "none.working"]  # no sample, no build left behind
    stores = {f["name"]: f["store"] for f in list_feature_sets(p)}
    assert stores == {"kept": "float16", "none": "none"}


def test_a_sample_smaller_than_the_set_bounds_the_full_width_rows_on_disk(three_hundred):
    p = three_hundred
    _run(p, "kept", store="float16")
    peak = []
    _run(p, "none", store="none", fit_sample=64, batch_size=16,
         progress=lambda frac, msg: peak.append(_full_width_bytes(p)))
    assert len(peak) > 236 // 16  # the sample's batches, then the other 236 objects'
    # nothing on disk but the sample of 64 rows in float16 (plus the other sets' files)
    kept_file = feature_path(p, "kept").stat().st_size
    assert max(peak) - kept_file < 64 * N_DIM * 2 + 200_000 < 300 * N_DIM * 2
    none = load_matrix(p, "none")
    assert none.meta["dim"] == 64  # fitted on the 64 rows of the sample
    assert not (p.features_dir / "none.h5.sample").exists()
    # every row, in the sample or not, is the float16 features projected with the stored fit
    kept = load_matrix(p, "kept")
    F = kept.full_rows(np.arange(len(kept.pks)))
    Z = (F - none.fit[0]) @ none.fit[1]
    np.testing.assert_allclose(np.asarray(none.X), Z, atol=2e-3 * np.abs(Z).max(), rtol=2e-3)


def test_objects_imported_later_are_projected_with_the_stored_fit(project, shared_data, tmp_path):
    _import(project, shared_data, tmp_path, 0, 60)
    _run(project, "none", store="none", activate=True)
    before = load_matrix(project, "none")
    old_X, old_pks, fit = np.asarray(before.X).copy(), np.asarray(before.pks).copy(), before.fit
    _import(project, shared_data, tmp_path, 60, 90)
    _run(project, "none")  # no --store: an existing set keeps its own way
    after = load_matrix(project, "none")
    assert len(after.pks) == 270 and not after.full_kept
    np.testing.assert_array_equal(after.fit[0], fit[0])
    np.testing.assert_array_equal(after.fit[1], fit[1])
    np.testing.assert_array_equal(np.asarray(after.X)[after.rows_of(old_pks)], old_X)
    with h5py.File(feature_path(project, "none")) as h:
        assert "features" not in h and len(h["object_id"]) == 270
    _run(project, "kept", store="float16")  # the new objects' float16 features, for comparison
    kept = load_matrix(project, "kept")
    new = np.setdiff1d(after.pks, old_pks)
    assert len(new) == 90
    Z = (kept.full_rows(kept.rows_of(new)) - fit[0]) @ fit[1]
    np.testing.assert_allclose(np.asarray(after.X)[after.rows_of(new)], Z,
                               atol=2e-3 * np.abs(Z).max(), rtol=2e-3)


def test_a_stopped_run_resumes_in_each_step(three_hundred):
    from morphocluster.info import format_summary, summarize

    p = three_hundred
    opts = {"fit_sample": 64, "batch_size": 16}
    _run(p, "ref", store="none", **opts)
    _run(p, "x", store="none", limit=32, **opts)  # stopped in the fit sample
    sample = p.features_dir / "x.h5.sample.partial"
    with h5py.File(sample) as h:
        assert h.attrs["done"] == 32 and len(h["object_id"]) == 64
    assert not feature_path(p, "x").exists()
    assert "Half-done feature set: x (full features not kept; the fit sample: 32 of 64 objects " \
           "done)" in format_summary(summarize(p))
    _run(p, "x", limit=32, **opts)  # no --store: the stopped run goes on as it began
    build = working_dir(p, "x").with_name("x.working.build")
    assert json.loads((build / "build.json").read_text())["done"] == 32
    assert (p.features_dir / "x.h5.sample").is_file() and not feature_path(p, "x").exists()
    assert "x (full features not kept; the rest, into the working matrix: 32 of 236 objects " \
           "done)" in format_summary(summarize(p))
    with pytest.raises(FeatureError, match="no feature set named 'x'"):
        load_matrix(p, "x")
    seen = []
    _run(p, "x", progress=lambda frac, msg: seen.append(msg), **opts)
    assert seen[0] == "48 of 236 images"  # the 32 done were not computed again
    resumed, ref = load_matrix(p, "x"), load_matrix(p, "ref")
    np.testing.assert_array_equal(resumed.fit[1], ref.fit[1])
    np.testing.assert_allclose(np.asarray(resumed.X), np.asarray(ref.X), atol=1e-3)
    assert sorted(x.name for x in p.features_dir.iterdir() if x.name.startswith("x")) == \
        ["x.h5", "x.working"]


def test_what_needs_the_full_features_refuses_and_says_what_to_do(three_hundred, tmp_path):
    from morphocluster.export import export
    from morphocluster.export.common import ExportError
    from morphocluster.project import Project

    root = three_hundred.root
    res = CliRunner().invoke(main, ["features", str(root), "--extractor", "pixels", "--name",
                                    "none", "--store", "none", "--workers", "0"])
    assert res.exit_code == 0, res.output
    p = Project.open(root)  # the config the command wrote
    res = CliRunner().invoke(main, ["features", str(p.root), "--list"])
    assert res.exit_code == 0 and "not kept" in res.output, res.output
    hint = "compute them again with `morphocluster features --store float16` (or float32)"
    with pytest.raises(ExportError) as err:
        export(p, "hdf5", tmp_path / "out.h5", labels="all")
    assert "'none' does not keep its full features" in str(err.value) and hint in str(err.value)
    assert not (tmp_path / "out.h5").exists()
    for args in (["--refit"], ["--working-dim", "16"]):
        res = CliRunner().invoke(main, ["index", str(p.root), *args])
        assert res.exit_code != 0 and "a refit of the working matrix" in res.output, res.output
        assert hint in res.output.replace("\n", " ") or "--store float16" in res.output
    assert "working" not in Project.open(root).config  # the refused --working-dim: not saved
    res = CliRunner().invoke(main, ["index", str(p.root)])  # the index itself is fine
    assert res.exit_code == 0 and "Working matrix of 300 objects" in res.output, res.output
    fm = load_matrix(p)
    with pytest.raises(FeatureError, match="does not keep its full features"):
        fm.full_rows([0, 1])
    with pytest.raises(FeatureError, match="refit"):
        build_working(p, "none", refit=True)
    res = CliRunner().invoke(main, ["info", str(p.root)])
    assert "Active features: none (full features not kept: --store none)" in res.output, res.output
    p.close()


def test_a_model_from_another_project_is_refused_on_a_set_without_full_features(
        project, shared_data, tmp_path):
    from morphocluster.project import Project
    from morphocluster.store import Membership, Node, Object
    from morphocluster.suggest import model_path, train

    _import(project, shared_data, tmp_path, 0, 30)
    _run(project, "pix", store="float16", activate=True)
    fm = load_matrix(project)
    with project.session() as s:
        by_class = {}
        for pk, lab in s.execute(select(Object.id, Object.imported_label)):
            by_class.setdefault(lab, []).append(pk)
    with project.transaction() as s:
        for c in CLASSES:
            node = Node(status="approved", name=c, n_members=20, round=1)
            s.add(node)
            s.flush()
            s.add_all([Membership(node_id=node.id, object_pk=pk, status="validated")
                       for pk in by_class[c][:20]])
    train(project)
    # the same images: the same fit, so the model takes the working rows as they are
    twin = Project.create(tmp_path / "twin")
    _import(twin, shared_data, tmp_path / "t", 0, 30)
    _run(twin, "pix", store="none", activate=True)
    res = CliRunner().invoke(main, ["suggest", str(twin.root), "--model",
                                    str(model_path(project)), "--predict"])
    assert res.exit_code == 0 and "90 unlabelled objects" in res.output, res.output
    twin.close()
    # other images: another fit, and the full features to map through the model's are gone
    other = Project.create(tmp_path / "other")
    _import(other, shared_data, tmp_path / "o", 30, 60)
    _run(other, "pix", store="none", activate=True)
    assert load_matrix(other).dim_in == fm.dim_in
    res = CliRunner().invoke(main, ["suggest", str(other.root), "--model",
                                    str(model_path(project)), "--predict"])
    assert res.exit_code != 0 and "'pix' does not keep its full features" in res.output, res.output
    assert "in another project" in res.output and "or train a model here" in res.output
    with other.session() as s:
        assert s.scalar(select(Node.id).limit(1)) is None  # nothing adopted
    other.close()


def test_training_refuses_before_it_starts_when_the_morphometric_block_is_not_kept(
        project, shared_data, tmp_path):
    from morphocluster.features.train import train_extractor

    _import(project, shared_data, tmp_path, 0, 6)
    _run(project, "cnn", extractor="efficientnet-lite0+morphometric", size=32, store="none",
         activate=True)
    with pytest.raises(FeatureError) as err:
        train_extractor(project, name="tuned", epochs=1, size=32, num_workers=0, progress=False)
    assert "'cnn' does not keep its full features" in str(err.value)
    assert "training (the trained set carries its morphometric block)" in str(err.value)
    assert not feature_path(project, "tuned").exists()
    assert not (project.features_dir / "tuned.pt").exists()  # refused before any training
