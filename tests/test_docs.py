"""Keep the docs true: architecture page, README commands, CLI help."""

import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from morphocluster.cli import COMMANDS, main

REPO = Path(__file__).resolve().parent.parent


def test_architecture_names_every_module():
    text = (REPO / "docs" / "architecture.md").read_text()
    pkg = REPO / "morphocluster"
    missing = []
    for path in pkg.rglob("*.py"):
        rel = path.relative_to(pkg)
        if rel.name == "__init__.py" or rel.parts[0] == "cli":
            continue
        top = rel.parts[0] if len(rel.parts) > 1 else rel.name
        if len(rel.parts) > 1:
            if f"`{top}/`" not in text or f"`{rel.name}`" not in text:
                missing.append(str(rel))
        elif f"`{top}`" not in text:
            missing.append(str(rel))
    assert missing == []


def test_every_subcommand_is_implemented():
    runner = CliRunner()
    for name in COMMANDS:
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "not available in this build" not in result.output, name


def test_readme_commands_exist():
    readme = (REPO / "README.md").read_text()
    for script in re.findall(r"bash (scripts/\S+\.sh)", readme):
        assert (REPO / script).is_file(), script
    for sub in set(re.findall(r"^morphocluster (\w+)", readme, re.M)):
        assert sub in COMMANDS, sub
    assert "bash scripts/test.sh" in (REPO / ".ci" / "run").read_text()


def test_help_does_not_import_heavy_modules():
    code = ("import sys; from click.testing import CliRunner; from morphocluster.cli import main;"
            "CliRunner().invoke(main, ['--help']);"
            "print(sorted(m for m in ('torch','faiss','umap','hdbscan','sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
