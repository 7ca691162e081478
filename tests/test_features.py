"""Feature extraction of real images end to end: HDF5 layout, alignment, resume, CLI."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from morphocluster.cli import main
from morphocluster.features import FeatureError, feature_path, list_feature_sets, load_features
from morphocluster.features.extract import extract_features
from morphocluster.features.effnet import BLOCK_SCALE
from morphocluster.features.matrix import load_matrix
from test_features_helpers import import_small


@pytest.fixture
def small(project, shared_data, tmp_path):
    return import_small(project, shared_data, tmp_path)


def test_efficientnet_end_to_end(small):
    name = extract_features(small, "efficientnet-lite0", size=64, batch_size=8, num_workers=1, progress=False)
    assert name == "efficientnet-lite0" and small.config["active_features"] == name
    with h5py.File(feature_path(small, name)) as h:
        assert h["features"].dtype == np.float32 and h["features"].shape == (18, 1280 + 192)
        assert h["features"].chunks is not None
        assert h.attrs["complete"] and h.attrs["format_version"] == 1
        assert h.attrs["extractor"] == "efficientnet-lite0"
        params = json.loads(h.attrs["extractor_params"])
        assert params["input_size"] == 64 and params["pooled_blocks"] == [11]
        pre = json.loads(h.attrs["preprocessing"])
        assert pre == {"size": 64, "invert": False, "pad": "border-median", "resample": "bilinear"}
    fm = load_matrix(small)
    assert len(fm.pks) == 18 and set(fm.object_ids) == set(load_features(small)[0])
    # the head's pooled output (unit length), then block 11's (BLOCK_SCALE long)
    F = fm.full_rows(np.arange(len(fm.pks)))
    assert F.shape[1] == fm.dim_in > fm.X.shape[1]  # the working matrix is a PCA of them
    np.testing.assert_allclose(np.linalg.norm(F[:, :1280], axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(F[:, 1280:], axis=1), BLOCK_SCALE, atol=1e-5)
    head = extract_features(small, "efficientnet-lite0-head", size=64, num_workers=0, progress=False)
    assert head == "efficientnet-lite0-head"
    with h5py.File(feature_path(small, head)) as h:
        assert "pooled_blocks" not in json.loads(h.attrs["extractor_params"])
    _, H = load_features(small, head)
    by_id = dict(zip(load_features(small, name)[0], load_features(small, name)[1]))
    np.testing.assert_allclose(H, np.stack([by_id[i] for i in load_features(small, head)[0]])[:, :1280],
                               atol=1e-5)
    # images of the same class are nearer to each other than to the other classes on average
    labels = np.array([i.split("/")[-2] for i in fm.object_ids])
    D = ((fm.X[:, None] - fm.X[None]) ** 2).sum(-1)
    same = labels[:, None] == labels[None]
    assert D[same & ~np.eye(18, dtype=bool)].mean() < D[~same].mean()


def test_inversion_changes_features_and_is_recorded(small):
    extract_features(small, "pixels", name="plain", num_workers=0, progress=False)
    extract_features(small, "pixels", name="inv", invert=True, num_workers=0, progress=False)
    _, a = load_features(small, "plain")
    _, b = load_features(small, "inv")
    np.testing.assert_allclose(a + b, 1.0, atol=2 / 255)  # x/255 and (255-x)/255, padding included
    with h5py.File(feature_path(small, "inv")) as h:
        assert json.loads(h.attrs["preprocessing"])["invert"] is True


def test_rotations_make_features_orientation_free(small):
    from morphocluster.features.registry import get_extractor

    paths = sorted(small.images_dir.rglob("*.*"))[:3]
    # (a quarter turn gives the same features?, a mirror image gives the same features?)
    for rotations, expect in ((1, (False, False)), (4, (True, False)), (8, (True, True))):
        ex = get_extractor("efficientnet-lite0", size=64, rotations=rotations)
        ex.setup("cpu")
        a = np.stack([ex.load(p) for p in paths])
        for turned, same in zip((np.rot90(a, 1, axes=(1, 2)), a[:, :, ::-1]), expect):
            d = np.abs(ex.transform(a) - ex.transform(np.ascontiguousarray(turned))).max()
            assert (d < 1e-4) == same, (rotations, d)
    name = extract_features(small, "efficientnet-lite0", name="rot4", size=64, rotations=4,
                            num_workers=0, progress=False)
    with h5py.File(feature_path(small, name)) as h:
        assert json.loads(h.attrs["extractor_params"])["rotations"] == 4
    with pytest.raises(ValueError, match="rotations"):
        get_extractor("morphometric", rotations=4)


def test_combined_cnn_and_morphometric_features(small):
    from morphocluster.features.morphometric import NAMES

    name = extract_features(small, "efficientnet-lite0+morphometric", size=64, num_workers=1,
                            progress=False)
    assert name == "efficientnet-lite0+morphometric"
    ids, X = load_features(small, name)
    k = len(NAMES)
    assert X.shape == (18, 1280 + 192 + k)
    _, deep = load_features(small, extract_features(small, "efficientnet-lite0", size=64,
                                                    num_workers=0, progress=False))
    np.testing.assert_allclose(X[:, :-k], deep, atol=1e-5)  # the CNN block is the CNN's features
    with h5py.File(feature_path(small, name)) as h:
        params = json.loads(h.attrs["extractor_params"])
        scale = json.loads(h.attrs["morphometric_scale"])
    assert params["morphometric_weight"] == 0.5 and params["cnn"]["input_size"] == 64
    # the morphometric block holds `weight` x the CNN block's variance (before clipping)
    ratio = X[:, -k:].var(0).sum() / deep.var(0).sum()
    assert 0.3 < ratio <= 0.5 + 1e-4 and scale > 0
    # the standardised rows went into a fresh file: no dead copy of the raw rows left behind
    path = feature_path(small, name)
    with h5py.File(path) as h:
        assert set(h) == {"features", "object_id"} and h.attrs["complete"]
    assert path.stat().st_size < 1.5 * X.nbytes, (path.stat().st_size, X.nbytes)
    assert not list(path.parent.glob("*.partial*"))
    with pytest.raises(ValueError, match="after a CNN"):
        extract_features(small, "pixels+morphometric", progress=False)


def test_new_objects_are_appended_without_changing_the_old_rows(small, shared_data, tmp_path,
                                                                 monkeypatch):
    import shutil

    from morphocluster.features import extract

    monkeypatch.setattr(extract, "COPY_ROWS", 5)  # copy the old rows in several chunks

    from morphocluster.features.morphometric import measure
    from morphocluster.features.preprocess import load_grey
    from morphocluster.importers import import_sources

    for spec in ("morphometric", "efficientnet-lite0+morphometric"):
        extract_features(small, spec, size=64, num_workers=0, progress=False)
    before = {spec: load_features(small, spec) for spec in ("morphometric", "efficientnet-lite0+morphometric")}
    src = tmp_path / "more" / "chaetognath_sagitta"
    src.mkdir(parents=True)
    files = sorted((shared_data / "planktonset-dev" / "chaetognath_sagitta").glob("*.jpg"))[:4]
    for f in files:
        shutil.copy2(f, src / f.name)
    import_sources(small, [src.parent], labels_from_folders=True, progress=False)
    for spec, (ids0, X0) in before.items():
        extract_features(small, spec, size=64, num_workers=0, progress=False)
        ids, X = load_features(small, spec)
        assert len(ids) == 22 and list(ids[:18]) == list(ids0)
        np.testing.assert_array_equal(X[:18], X0)  # old rows untouched: indexes, models stay valid
        assert not list(small.features_dir.glob("*.additions.h5*"))
    # the new rows are standardised with the stored constants
    with h5py.File(feature_path(small, "morphometric")) as h:
        mean = np.array(json.loads(h.attrs["standardise_mean"]))
        sd = np.array(json.loads(h.attrs["standardise_sd"]))
    ids, X = load_features(small, "morphometric")
    raw = measure(load_grey(files[0]))
    row = [i for i, oid in enumerate(ids) if oid.endswith(files[0].stem)][0]
    np.testing.assert_allclose(X[row], (raw - mean) / sd, rtol=1e-4, atol=1e-4)
    # nothing new: nothing is computed, the file stays as it is
    stamp = feature_path(small, "morphometric").stat().st_mtime_ns
    extract_features(small, "morphometric", num_workers=0, progress=False)
    assert feature_path(small, "morphometric").stat().st_mtime_ns == stamp


def test_morphometric_standardised(small):
    extract_features(small, "morphometric", num_workers=0, progress=False)
    ids, X = load_features(small, "morphometric")
    assert X.shape == (18, 26) and np.isfinite(X).all()
    varying = X.std(0) > 0
    np.testing.assert_allclose(X[:, varying].mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(X[:, varying].std(0), 1, atol=1e-3)
    with h5py.File(feature_path(small, "morphometric")) as h:
        assert len(json.loads(h.attrs["standardise_mean"])) == 26


def test_resume_continues_and_never_marks_partial_complete(small):
    full = extract_features(small, "morphometric", name="ref", num_workers=0, progress=False, activate=False)
    extract_features(small, "morphometric", name="m", batch_size=4, num_workers=0, progress=False, limit=8)
    partial = feature_path(small, "m").with_name("m.h5.partial")
    assert partial.exists() and not feature_path(small, "m").exists()
    with h5py.File(partial) as h:
        assert not h.attrs["complete"] and h.attrs["done"] == 8
        first = h["features"][:8]
    with pytest.raises(FeatureError):
        load_features(small, "m")
    assert small.config["active_features"] is None
    extract_features(small, "morphometric", name="m", batch_size=4, num_workers=0, progress=False)
    assert not partial.exists()
    with h5py.File(feature_path(small, "m")) as h:
        assert h.attrs["complete"] and h.attrs["done"] == 18
    ids, X = load_features(small, "m")
    ids_ref, X_ref = load_features(small, full)
    assert list(ids) == list(ids_ref)
    np.testing.assert_allclose(X, X_ref, atol=1e-5)
    assert not np.allclose(first, X[:8])  # the raw rows were standardised once, at the end


def test_a_run_stopped_before_an_import_keeps_its_rows_and_appends_the_new_objects(small, shared_data,
                                                                                   tmp_path):
    import shutil

    from morphocluster.importers import import_sources

    ref = extract_features(small, "pixels", name="ref", num_workers=0, progress=False, activate=False)
    extract_features(small, "pixels", name="x", batch_size=4, num_workers=0, progress=False, limit=8)
    partial = feature_path(small, "x").with_name("x.h5.partial")
    with h5py.File(partial, "r+") as h:  # mark a row already done: it must survive, not be recomputed
        h["features"][0] = 7.0
    src = tmp_path / "more" / "chaetognath_sagitta"
    src.mkdir(parents=True)
    for f in sorted((shared_data / "planktonset-dev" / "chaetognath_sagitta").glob("*.jpg"))[:2]:
        shutil.copy2(f, src / f.name)
    import_sources(small, [src.parent], labels_from_folders=True, progress=False)
    extract_features(small, "pixels", name="x", batch_size=4, num_workers=0, progress=False)
    ids, X = load_features(small, "x")
    ids_ref, X_ref = load_features(small, ref)
    assert len(ids) == 20 and list(ids[:18]) == list(ids_ref)
    assert (X[0] == 7.0).all()  # the row done before the stop was kept
    np.testing.assert_allclose(X[1:18], X_ref[1:], atol=1e-6)
    assert not partial.exists()


def test_partial_of_another_extractor_is_restarted(small):
    extract_features(small, "pixels", name="x", batch_size=4, num_workers=0, progress=False, limit=4)
    extract_features(small, "morphometric", name="x", batch_size=4, num_workers=0, progress=False)
    assert load_features(small, "x")[1].shape == (18, 26)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_unreadable_image_names_the_object(small, workers):
    from morphocluster.features.extract import project_objects

    ids, paths = project_objects(small)
    with open(paths[3], "wb") as f:
        f.write(b"not an image")
    with pytest.raises(FeatureError, match=ids[3]):
        extract_features(small, "pixels", num_workers=int(workers), progress=False)
    res = CliRunner().invoke(main, ["features", str(small.root), "--extractor", "pixels", "--workers", workers])
    assert res.exit_code == 1
    assert f"Error: object {ids[3]!r} ({paths[3]}): " in res.output
    assert "Traceback" not in res.output and "worker" not in res.output


def test_torchscript_extractor(small, tmp_path):
    import torch

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
    path = tmp_path / "mine.pt"
    torch.jit.trace(net, torch.zeros(1, 3, 32, 32)).save(str(path))
    name = extract_features(small, f"torchscript:{path}", size=32, num_workers=0, progress=False)
    assert name == "torchscript-mine"
    _, X = load_features(small, name)
    assert X.shape == (18, 8)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1, atol=1e-5)


def test_bad_model_files_are_clear_errors(small, tmp_path):
    bad = tmp_path / "junk.pt"
    bad.write_bytes(b"junk")
    with pytest.raises(Exception, match="junk.pt"):
        extract_features(small, f"torchscript:{bad}", num_workers=0, progress=False)
    with pytest.raises(ValueError, match="unknown extractor"):
        extract_features(small, "resnet", num_workers=0, progress=False)


@pytest.mark.parametrize("content, message", [
    (b"root:x:0:0:root:/root:/bin/bash\n", "not a PyTorch state dict"),  # text, like /etc/passwd
    ("list", "not a PyTorch state dict (it holds a list)"),
    ("wrong", "not an EfficientNet-Lite0 state dict (size mismatch for _conv_stem.weight"),
])
def test_bad_state_dict_is_a_clean_error(small, tmp_path, content, message):
    import torch

    path = tmp_path / "w.pt"
    if content == "list":
        torch.save([1, 2], path)
    elif content == "wrong":
        torch.save({"_conv_stem.weight": torch.zeros(3, 3)}, path)
    else:
        path.write_bytes(content)
    res = CliRunner().invoke(main, ["features", str(small.root), "--extractor", f"state-dict:{path}",
                                    "--workers", "0"])
    assert (res.exit_code, type(res.exception)) == (1, SystemExit)
    assert f"Error: {path}: {message}" in res.output
    assert not list(small.features_dir.glob("state-dict*"))  # no empty partial file left


def test_bad_torchscript_leaves_no_partial_file(small, tmp_path):
    bad = tmp_path / "junk.pt"
    bad.write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.pt: not a TorchScript model"):
        extract_features(small, f"torchscript:{bad}", num_workers=0, progress=False)
    assert not list(small.features_dir.glob("torchscript*"))


def test_cli_features_list_activate_and_index(small):
    r = CliRunner()
    root = str(small.root)
    res = r.invoke(main, ["features", root, "--extractor", "pixels", "--workers", "0", "--batch-size", "5"])
    assert res.exit_code == 0, res.output
    res = r.invoke(main, ["features", root, "--extractor", "morphometric", "--name", "morph", "--workers", "0",
                          "--no-activate"])
    assert res.exit_code == 0, res.output
    res = r.invoke(main, ["features", root, "--list"])
    assert "* pixels" in res.output and "morph" in res.output
    res = r.invoke(main, ["features", root, "--activate", "morph"])
    from morphocluster.project import Project

    assert res.exit_code == 0 and {f["name"]: f["active"] for f in list_feature_sets(Project.open(root))}["morph"]
    res = r.invoke(main, ["index", root, "--pca", "4"])
    assert res.exit_code == 0, res.output
    assert "flat index of 18 x 4" in res.output
    res = r.invoke(main, ["features", root, "--extractor", "nope"])
    assert res.exit_code != 0 and "unknown extractor" in res.output


def test_changed_weights_at_the_same_path_are_recomputed(small, tmp_path):
    import torch

    from morphocluster.features.effnet import build_model

    weights = tmp_path / "w.pt"
    model = build_model()
    torch.save(model.state_dict(), weights)
    spec = f"state-dict:{weights}"
    _, a = load_features(small, extract_features(small, spec, size=64, num_workers=0, progress=False))
    with torch.no_grad():
        for prm in model._conv_head.parameters():
            prm.mul_(-1.0)
    torch.save(model.state_dict(), weights)  # retrained weights, same file name
    _, b = load_features(small, extract_features(small, spec, size=64, num_workers=0, progress=False))
    assert a.shape == b.shape and not np.allclose(a, b)


def test_combined_statistics_in_chunks_equal_the_whole_matrix():
    from morphocluster.features.combined import Combined
    from morphocluster.features.effnet import EfficientNetLite0

    rng = np.random.default_rng(0)
    X = (rng.normal(size=(1000, 40)) * rng.uniform(0.1, 5, 40)).astype(np.float32)
    ex = Combined(EfficientNetLite0())
    small, whole = ex.finalize_attrs(X, rows=7), ex.finalize_attrs(X, rows=10**6)
    for key in ("standardise_mean", "standardise_sd", "morphometric_scale"):
        np.testing.assert_allclose(small[key], whole[key], rtol=1e-9)
    np.testing.assert_allclose(whole["standardise_sd"], X[:, -26:].std(0), rtol=1e-4)
    out, attrs = ex.finalize(X)
    np.testing.assert_allclose(out[:, :-26], X[:, :-26])  # the CNN block is left as it is


def test_a_failed_append_keeps_the_feature_set_and_leaves_no_temporary_file(small, shared_data, tmp_path):
    import shutil

    from morphocluster.importers import import_sources

    extract_features(small, "pixels", name="x", num_workers=0, progress=False)
    path = feature_path(small, "x")
    with h5py.File(path, "r+") as h:  # a set whose width no longer matches what the extractor gives
        F = h["features"][:]
        del h["features"]
        h["features"] = np.hstack([F, np.zeros((len(F), 1), np.float32)])
    before = path.read_bytes()
    src = tmp_path / "more" / "chaetognath_sagitta"
    src.mkdir(parents=True)
    for f in sorted((shared_data / "planktonset-dev" / "chaetognath_sagitta").glob("*.jpg"))[:2]:
        shutil.copy2(f, src / f.name)
    import_sources(small, [src.parent], labels_from_folders=True, progress=False)
    with pytest.raises(FeatureError, match="dimensions, but"):
        extract_features(small, "pixels", name="x", num_workers=0, progress=False)
    assert path.read_bytes() == before
    assert not list(small.features_dir.glob("*.tmp"))
