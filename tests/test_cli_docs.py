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
