"""The README's field tables, generated from the spec model (imagepipe/spec.py, trainer_modules/config.py,
components/contracts.py): the model is the one source of truth, as it is for schemas/spec.schema.json.

    .venv/bin/python docs/reference.py           rewrite the README's tables
    .venv/bin/python docs/reference.py --check   exit 1 if any is stale (tests/imagepipe/test_readme.py runs it)

Each table stands between `<!-- reference: NAME -->` and `<!-- end of reference -->`:
`spec` (every spec field) and `hyperparameters-<family>` (each family's own fields).
"""
from __future__ import annotations

import json
import re
import sys
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from imagepipe.spec import Spec  # noqa: E402
from trainer_modules.config import FAMILIES  # noqa: E402

README = REPO / "README.md"
BLOCK = re.compile(r"(<!-- reference: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end of reference -->)", re.S)


def _submodel(annotation) -> type[BaseModel] | None:
    for candidate in typing.get_args(annotation) or (annotation,):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        nested = _submodel(candidate) if typing.get_args(candidate) else None
        if nested:
            return nested
    return None


def _default(field) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(section)"
    if value is None:
        return "none"
    if value is PydanticUndefined:
        return "required"
    return f"`{json.dumps(value)}`" if isinstance(value, (str, list, dict, bool)) else f"`{value}`"


def rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str]]:
    """(field path, default, description) for every field, sub-sections flattened after their own row."""
    out = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        sub = _submodel(field.annotation)
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        if sub is None or description:
            out.append((f"`{path}`", _default(field), description))
        if sub is not None and name != "hyperparameters":
            out.extend(rows(sub, f"{path}."))
    return out


def table(model: type[BaseModel], prefix: str = "") -> str:
    lines = ["| field | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| {path} | {default} | {meaning} |" for path, default, meaning in rows(model, prefix)]
    return "\n".join(lines) + "\n"


def tables() -> dict[str, str]:
    out = {"spec": table(Spec)}
    for name, family in FAMILIES.items():
        out[f"hyperparameters-{name}"] = table(family.hyperparameters)
    return out


def stale() -> list[str]:
    generated, text = tables(), README.read_text()
    found = {m["name"]: m["body"] for m in BLOCK.finditer(text)}
    return sorted(name for name in set(generated) | set(found) if found.get(name) != generated.get(name))


def main(check: bool) -> None:
    if check:
        problems = stale()
        print("stale: " + ", ".join(problems) if problems else "every reference table is up to date")
        raise SystemExit(1 if problems else 0)
    generated = tables()
    README.write_text(BLOCK.sub(lambda m: m.group(1) + generated[m["name"]] + m.group(4), README.read_text()))
    print(f"README: {', '.join(generated)}")


if __name__ == "__main__":
    main("--check" in sys.argv[1:])
