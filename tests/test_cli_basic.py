"""The command line: fast help without heavy imports, init, version, errors as messages."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from morphocluster import __version__
from morphocluster.cli import COMMANDS, main


def test_help_is_fast_and_imports_no_heavy_library():
    code = ("import sys; from click.testing import CliRunner; from morphocluster.cli import main; "
            "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output; "
            "heavy = [m for m in ('torch', 'faiss', 'umap', 'hdbscan', 'sklearn') if m in sys.modules]; "
            "print(r.output); print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
    for name in COMMANDS:
        assert name in out


def test_version_and_init_twice(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["--version"])
    assert res.exit_code == 0 and __version__ in res.output
    proj = tmp_path / "p"
    res = runner.invoke(main, ["init", str(proj)])
    assert res.exit_code == 0 and (proj / "morphocluster.json").is_file()
    res = runner.invoke(main, ["init", str(proj)])
    assert res.exit_code == 1 and "already a morphocluster project" in res.output


def test_import_help_documents_policy_and_import_into_non_project(tmp_path, shared_data):
    runner = CliRunner()
    res = runner.invoke(main, ["import", "--help"])
    assert res.exit_code == 0
    for word in ("--format", "--labels-from-folders", "--strict", "ecotaxa", "index-csv", "Exit status"):
        assert word in res.output
    res = runner.invoke(main, ["import", str(tmp_path), str(shared_data / "ifcb-sample")])
    assert res.exit_code == 1 and "not a morphocluster project" in res.output
