"""docs/cli.md is generated from the parsers (so `--help` and the docs agree); the README lists every command."""

import importlib.util
import re
from pathlib import Path

from electra.cli import COMMANDS

REPO = Path(__file__).resolve().parents[1]


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", REPO / "scripts" / "gen_cli_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_cli_md_is_up_to_date():
    generated = load_generator().generate()
    committed = (REPO / "docs" / "cli.md").read_text()
    assert committed == generated, "docs/cli.md is out of date: run python scripts/gen_cli_docs.py"
    for name in COMMANDS:
        assert f"## `electra {name}`" in generated


def test_readme_command_table_matches_the_cli():
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Commands", 1)[1].split("\n\n", 2)[1]
    listed = re.findall(r"^\| `electra (\S+)` \|", table, flags=re.M)
    assert sorted(listed) == sorted(COMMANDS)


def offline_examples() -> list[tuple[str, str]]:
    """(file, command) for every line of the bash blocks marked `<!-- tested: offline -->` in README and docs."""
    out = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for block in path.read_text().split("<!-- tested: offline -->\n```bash\n")[1:]:
            lines = block.split("```", 1)[0].replace("\\\n", " ").splitlines()
            out += [(path.name, line.split("  #")[0].strip()) for line in lines if line.strip()]
    return out


def test_the_offline_examples_in_the_docs_run_as_written(tmp_path):
    import os
    import subprocess
    import sys

    examples = offline_examples()
    assert ("data.md", "electra vocab --corpus builtin --size 8192 --out vocab/smoke") in examples
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    for where, command in examples:
        assert command.startswith("electra "), (where, command)
        argv = [sys.executable, "-m", "electra", *command.split()[1:]]
        result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, (where, command, result.stderr[-2000:])
