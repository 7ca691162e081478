"""External features (original MorphoCluster HDF5, EcoTaxa CSV): matching and every error."""

from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from morphocluster.cli import main
from morphocluster.features import FeatureError, load_features
from morphocluster.features.extract import extract_features
from morphocluster.features.matrix import load_matrix
from test_features_helpers import add_objects

EXAMPLE_H5 = "morphocluster-example/features.h5"
ZOOSCAN_CSV = "zooscan-unlabelled/deep_features.csv"


def _h5_ids(path):
    with h5py.File(path) as h:
        return [i.decode() for i in h["object_id"][:]], h["features"][:]


def _csv_ids(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    return [r[0] for r in rows[1:]], rows


def test_original_morphocluster_h5(project, shared_data):
    src = shared_data / EXAMPLE_H5
    ids, F = _h5_ids(src)
    add_objects(project, reversed(ids))  # another order than the file's
    name = extract_features(project, f"external:{src}", progress=False)
    fm = load_matrix(project)
    assert name == "external-features" and fm.X.shape == (1425, 32)
    by_id = dict(zip(ids, F))
    for oid, x in zip(fm.object_ids[:50], fm.X[:50]):
        np.testing.assert_array_equal(x, by_id[oid])


def test_ecotaxa_csv(project, shared_data):
    src = shared_data / ZOOSCAN_CSV
    ids, rows = _csv_ids(src)
    add_objects(project, ids)
    extract_features(project, f"external:{src}", name="zooscan", progress=False)
    got_ids, X = load_features(project, "zooscan")
    assert X.shape == (len(ids), 50)
    np.testing.assert_allclose(X[0], np.array(rows[1][1:], dtype=np.float32))


def _write_csv(path, header, rows, delim=","):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter=delim)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_tsv_with_object_id_column(project, tmp_path):
    add_objects(project, ["a", "b"])
    src = _write_csv(tmp_path / "f.tsv", ["x", "object_id", "y"], [[1, "a", 2], [3, "b", 4]], "\t")
    extract_features(project, f"external:{src}", name="t", progress=False)
    ids, X = load_features(project, "t")
    assert list(ids) == ["a", "b"] and X.tolist() == [[1, 2], [3, 4]]


@pytest.mark.parametrize("rows, message", [
    ([["a", 1, 2], ["b", 3, 4], ["zz", 5, 6]], r"1 ids are not objects of this project: 'zz'"),
    ([["a", 1, 2]], r"1 objects of this project have no features: 'b'"),
    ([["a", 1, 2], ["b", 3, 4], ["a", 5, 6]], r"duplicate object ids: 'a'"),
    ([["a", 1, 2], ["b", 3]], r"line 3: dimension mismatch: 1 values, the header has 2"),
    ([["a", 1, 2], ["b", 3, "x"]], r"line 3, column 'f2': not a number"),
    ([["a", 1, 2], ["b", 3, "nan"]], r"non-finite values for objects 'b'"),
])
def test_csv_errors_name_file_and_row(project, tmp_path, rows, message):
    add_objects(project, ["a", "b"])
    src = _write_csv(tmp_path / "bad.csv", ["id", "f1", "f2"], rows)
    with pytest.raises(FeatureError, match=message) as exc:
        extract_features(project, f"external:{src}", progress=False)
    assert "bad.csv" in str(exc.value)
    assert not list(project.features_dir.glob("*.h5"))  # nothing written


def test_missing_id_column(project, tmp_path):
    add_objects(project, ["a"])
    src = _write_csv(tmp_path / "noid.csv", ["name", "f1"], [["a", 1]])
    with pytest.raises(FeatureError, match="no id column"):
        extract_features(project, f"external:{src}", progress=False)


def test_h5_errors(project, tmp_path):
    add_objects(project, ["a", "b"])
    bad = tmp_path / "mismatch.h5"
    with h5py.File(bad, "w") as h:
        h["object_id"] = np.array(["a", "b"], dtype=h5py.string_dtype())
        h["features"] = np.zeros((3, 4), np.float32)
    with pytest.raises(FeatureError, match="mismatch.h5: dimension mismatch: 2 object ids but 3 feature rows"):
        extract_features(project, f"external:{bad}", progress=False)
    nofeat = tmp_path / "nofeat.h5"
    with h5py.File(nofeat, "w") as h:
        h["object_id"] = np.array(["a", "b"], dtype=h5py.string_dtype())
    with pytest.raises(FeatureError, match="no `features` dataset"):
        extract_features(project, f"external:{nofeat}", progress=False)
    with pytest.raises(FeatureError, match="no such feature file"):
        extract_features(project, f"external:{tmp_path / 'absent.h5'}", progress=False)


def test_dimension_must_match_when_asked(tmp_path):
    from morphocluster.features.external import match_external

    src = _write_csv(tmp_path / "d.csv", ["id", "f1", "f2"], [["a", 1, 2]])
    with pytest.raises(FeatureError, match="dimension mismatch: 2 features per object, expected 3"):
        match_external(src, ["a"], dim=3)


def test_cli_reports_external_error(project, tmp_path):
    add_objects(project, ["a", "b"])
    src = _write_csv(tmp_path / "x.csv", ["id", "f"], [["a", 1]])
    res = CliRunner().invoke(main, ["features", str(project.root), "--extractor", f"external:{src}"])
    assert res.exit_code == 1 and "have no features: 'b'" in res.output


@pytest.mark.parametrize("data, message", [
    ("id,f1\na,1\nb\u00f6,2\n".encode("latin-1"), r"bad.csv, line 3: not UTF-8 text \(byte 0xf6\)"),
    ("id,f1\na,1\nb,2\n".encode("utf-16"), r"bad.csv: UTF-16 or binary data"),
    (b"object_id\na\nb\n", r"bad.csv: no feature columns; the header has only the id column 'object_id'"),
    (b"object_id,id,f1\na,1,2\nb,2,3\n", r"bad.csv: several id columns \('object_id', 'id'\)"),
    (b"id;f1\na;1\nb;2\n", r"bad.csv: no id column .* separated by ';'"),
])
def test_csv_encoding_and_columns_errors_leave_nothing(project, tmp_path, data, message):
    add_objects(project, ["a", "b"])
    src = tmp_path / "bad.csv"
    src.write_bytes(data)
    res = CliRunner().invoke(main, ["features", str(project.root), "--extractor", f"external:{src}"])
    assert res.exit_code == 1 and res.output.startswith("Error: ")
    with pytest.raises(FeatureError, match=message):
        extract_features(project, f"external:{src}", progress=False)
    assert list(project.features_dir.iterdir()) == []  # no feature set, no stray .tmp


def test_failed_write_leaves_no_tmp(tmp_path):
    from morphocluster.features.h5 import write_features

    with pytest.raises(FeatureError, match="0 features per object"):
        write_features(tmp_path / "f.h5", ["a"], np.zeros((1, 0), np.float32))
    with pytest.raises(TypeError):  # an attribute h5py cannot store, after the datasets were written
        write_features(tmp_path / "f.h5", ["a"], np.zeros((1, 2), np.float32), {"x": object()})
    assert list(tmp_path.iterdir()) == []
