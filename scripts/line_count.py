"""Lines of src/electra per package at git revisions: `python scripts/line_count.py c5e5417 HEAD`.

A line is a line of a *.py file (what `cat | wc -l` counts). Modules of the flat layout before the packages are
counted under the package that holds their code now; every other module counts under "modules", which a second
table lists module by module.
"""

import subprocess
import sys

OLD_HOMES = {
    "glue/": "finetune",
    "qa/": "finetune",
    "tagging/": "finetune",
    "finetuning.py": "finetune",
    "glue/command.py": "cli",
    "data/command.py": "cli",
    "cli.py": "cli",
    "report.py": "report",
    "plots.py": "report",
    "report_markdown.py": "report",
    "rundir.py": "train",
    "pretrain.py": "train",
    "step.py": "train",
    "bench.py": "train",
    "console.py": "train",
}


def package(path: str) -> str:
    name = path.removeprefix("src/electra/")
    for old, home in sorted(OLD_HOMES.items(), key=lambda kv: -len(kv[0])):
        if name == old or (old.endswith("/") and name.startswith(old)):
            return home
    return name.split("/")[0] if "/" in name else "modules"


def counts(rev: str, by_module: bool = False) -> dict[str, int]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout

    out: dict[str, int] = {}
    for path in git("ls-tree", "-r", "--name-only", rev, "--", "src").split():
        if path.endswith(".py"):
            n = git("show", f"{rev}:{path}").count("\n")
            name = path.removeprefix("src/electra/") if by_module else package(path)
            if not by_module or package(path) == "modules":
                out[name] = out.get(name, 0) + n
    return out


def main(revs: list[str]) -> None:
    for by_module in (False, True):
        table = [counts(r, by_module) for r in revs]
        print("\n| " + ("module" if by_module else "package") + " | " + " | ".join(revs) + " |")
        print("|---|" + "---:|" * len(revs))
        for name in sorted({k for t in table for k in t}):
            print(f"| {name} | " + " | ".join(str(t.get(name, "-")) for t in table) + " |")
        total = "modules total" if by_module else "src/ total"
        print(f"| **{total}** | " + " | ".join(f"**{sum(t.values())}**" for t in table) + " |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["c5e5417", "HEAD"])
