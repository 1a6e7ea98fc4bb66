"""Derive functions/requirements.txt (used by `sam build`) from pyproject.toml's pins.

pyproject.toml is the one place where versions are pinned; this file is generated from
its ``[project] dependencies`` and checked in CI (``--check``).
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = "# Generated from pyproject.toml by `make requirements`; do not edit.\n"


def expected(root: Path = ROOT) -> str:
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    return HEADER + "".join(f"{dep}\n" for dep in project["dependencies"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true")
    group.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    path = ROOT / "functions" / "requirements.txt"
    want = expected()
    if args.write:
        path.write_text(want)
        return 0
    if not path.is_file() or path.read_text() != want:
        print(f"{path} is out of date with pyproject.toml: run `make requirements`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
