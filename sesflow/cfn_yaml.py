"""Load CloudFormation/SAM YAML (short-form intrinsic tags) into plain Python data, with the
SAM translator's own loader (``!Ref X`` -> ``{"Ref": "X"}``, ``!GetAtt A.B`` -> a list...):
what `sam` itself parses is what the local stack and the static checks see."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # (PyYAML ships no stubs; the SAM translator brings it)
from samtranslator.yaml_helper import yaml_parse


def duplicate_keys(text: str) -> list[str]:
    """``line N: key`` for every key given twice in one mapping. CloudFormation refuses such a
    template; PyYAML (and so the SAM translator's loader) silently keeps the last one."""
    found: list[str] = []
    todo = [yaml.compose(text, Loader=yaml.SafeLoader)]
    while todo:
        node = todo.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        found.append(f"line {key.start_mark.line + 1}: {key.value}")
                    seen.add(key.value)
                todo.append(value)
        elif isinstance(node, yaml.SequenceNode):
            todo.extend(node.value)
    return sorted(found)


def load_template(path: str | Path) -> dict[str, Any]:
    """Parse a SAM/CloudFormation template file (refusing duplicate keys, as CloudFormation does)."""
    text = Path(path).read_text(encoding="utf-8")
    duplicates = duplicate_keys(text)
    if duplicates:
        raise ValueError(f"{path}: duplicate keys: {', '.join(duplicates)}")
    data = yaml_parse(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a template (top level is not a mapping)")
    return data
