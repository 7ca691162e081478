"""`morphocluster train`: fine-tune on a few real images, re-extract, activate."""

from __future__ import annotations

import json

import h5py
import numpy as np
from click.testing import CliRunner

from morphocluster.cli import main
from morphocluster.features import feature_path, load_features
from morphocluster.features.extract import extract_features
from morphocluster.features.train import validated_labels
from test_features_helpers import import_small


def test_train_writes_active_set_matching_its_weights(project, shared_data, tmp_path):
    import_small(project, shared_data, tmp_path, per_class=4)
    labels = validated_labels(project)
    assert len(labels) == 12 and len(set(labels.values())) == 3  # class folders, status validated
    from morphocluster.features.train import train_extractor

    rep = train_extractor(project, name="tuned", size=64, batch_size=6, epochs=2, train_blocks=1,
                          num_workers=0, progress=False)
    assert rep["n_labelled"] == 12 and rep["n_classes"] == 3 and rep["steps"] == 4
    assert project.config["active_features"] == "tuned"
    ids, X = load_features(project, "tuned")
    assert X.shape == (12, 1280)
    with h5py.File(feature_path(project, "tuned")) as h:
        spec = h.attrs["extractor"]
        assert spec == f"state-dict:{rep['weights']}"
        assert json.loads(h.attrs["extractor_params"])["training"]["train_blocks"] == 1
    # the saved weights re-extract the same features from the images (new objects get them too)
    extract_features(project, spec, name="again", size=64, num_workers=0, progress=False, activate=False)
    ids2, X2 = load_features(project, "again")
    assert list(ids2) == list(ids)
    np.testing.assert_allclose(X2, X, atol=2e-3)
    # and they differ from the ImageNet head's features
    extract_features(project, "efficientnet-lite0-head", size=64, num_workers=0, progress=False,
                     activate=False)
    assert np.abs(load_features(project, "efficientnet-lite0-head")[1] - X).max() > 1e-3


def test_cli_train_self_supervised(project, shared_data, tmp_path):
    import_small(project, shared_data, tmp_path, per_class=3)
    res = CliRunner().invoke(main, ["train", str(project.root), "--no-labels", "--size", "48", "--epochs", "1",
                                    "--batch-size", "8", "--workers", "0"])
    assert res.exit_code == 0, res.output
    assert "0 labelled" in res.output and "wrote feature set trained" in res.output
    assert load_features(project, "trained")[1].shape == (9, 1280)


def test_train_keeps_the_morphometric_block_of_the_active_set(project, shared_data, tmp_path):
    from morphocluster.features.morphometric import NAMES
    from morphocluster.features.train import train_extractor

    import_small(project, shared_data, tmp_path, per_class=4)
    extract_features(project, "efficientnet-lite0+morphometric", size=64, num_workers=0, progress=False)
    _, before = load_features(project, "efficientnet-lite0+morphometric")
    train_extractor(project, name="tuned", size=64, batch_size=6, epochs=1, train_blocks=1,
                    num_workers=0, progress=False)
    _, X = load_features(project, "tuned")
    k = len(NAMES)
    assert X.shape == (12, 1280 + k)
    with h5py.File(feature_path(project, "tuned")) as h:
        assert h.attrs["extractor"].endswith("+morphometric")
        scale = float(h.attrs["morphometric_scale"])
    with h5py.File(feature_path(project, "efficientnet-lite0+morphometric")) as h:
        old_scale = float(json.loads(h.attrs["morphometric_scale"]))
    # the same standardised measurements, scaled to the new CNN block's variance
    np.testing.assert_allclose(X[:, -k:] / scale, before[:, -k:] / old_scale, atol=1e-4)
