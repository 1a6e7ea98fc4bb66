"""Load CloudFormation/SAM YAML (short-form intrinsic tags) into plain Python data, with the
SAM translator's own loader (``!Ref X`` -> ``{"Ref": "X"}``, ``!GetAtt A.B`` -> a list...):
what `sam` itself parses is what the local stack and the static checks see."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse


def load_template(path: str | Path) -> dict[str, Any]:
    """Parse a SAM/CloudFormation template file."""
    data = yaml_parse(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a template (top level is not a mapping)")
    return data
