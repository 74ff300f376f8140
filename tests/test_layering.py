"""Imports run one way: a module never imports from a floor above its own (read from the source, not run)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Floors, lowest first. A module may import its own floor and the floors below, never one above.
FLOORS = [
    # the model itself (modeling_bigmodel also travels alone as remote code)
    ("bigmodel_hf", "bigmodel_hf.configuration_bigmodel", "bigmodel_hf.modeling_bigmodel"),
    # building blocks: data, tokenizers, batches, metrics, what an output directory is, how a model decodes
    ("bigmodel_hf.data", "bigmodel_hf.tokenization", "bigmodel_hf.batching", "bigmodel_hf.metrics",
     "bigmodel_hf.redaction", "bigmodel_hf.pretrained", "bigmodel_hf.subword_regularization", "bigmodel_hf.toy_data",
     "bigmodel_hf.stdlib_corpus", "bigmodel_hf.generated_data", "bigmodel_hf.output_layout", "bigmodel_hf.decoding",
     "bigmodel_hf.devices", "bigmodel_hf.convert", "bigmodel_hf.streaming", "bigmodel_hf.export",
     "bigmodel_hf.languages", "bigmodel_hf.directions", "bigmodel_hf.language_batches",
     "bigmodel_hf.multilingual_vocabulary"),
    # what a user gets from a trained model
    ("bigmodel_hf.translator", "bigmodel_hf.cards", "bigmodel_hf.interactive"),
    ("bigmodel_hf.hub",),  # publishes an output directory with its card
    ("bigmodel_hf.training",),  # runs: uses all of the above
    ("bigmodel_hf.cli",),
    ("recipes",),
]


def floor_of(module: str) -> int | None:
    """The floor of the longest listed name that is `module` or a package above it; None outside the project."""
    best = None
    for floor, names in enumerate(FLOORS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > len(best[1])):
                best = (floor, name)
    return best[0] if best else None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file (or in `source`, as if it were that file),
    function-level ones included."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8") if source is None else source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from . import x` imports the module x; `from .m import name` imports m
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names] if not node.module else [
                (node.lineno, base)]
    return found


def project_files():
    return sorted((ROOT / "bigmodel_hf").rglob("*.py")) + sorted((ROOT / "recipes").glob("*.py"))


def test_every_module_has_a_floor():
    assert [module_name(p) for p in project_files() if floor_of(module_name(p)) is None] == []


def test_no_import_runs_up_a_floor():
    upward = []
    for path in project_files():
        here = floor_of(module_name(path))
        for line, target in imported_modules(path):
            there = floor_of(target)
            if there is not None and there > here:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {target} (floor {there} > {here})")
    assert upward == []


@pytest.mark.parametrize("source, expected", [
    ("from ..training.runs import x", "bigmodel_hf.training.runs"),
    ("from . import surfaces", "bigmodel_hf.interactive.surfaces"),
    ("from .engine import Word", "bigmodel_hf.interactive.engine"),
    ("def f():\n    import bigmodel_hf.hub", "bigmodel_hf.hub"),
])
def test_imports_resolve_to_absolute_names(source, expected):
    """The checker itself, on a module of bigmodel_hf/interactive/: relative and function-level imports
    resolve, and one running up is above the module's floor (so an empty list above means something)."""
    [(_, target)] = imported_modules(ROOT / "bigmodel_hf" / "interactive" / "probe.py", source)
    assert target == expected
    assert floor_of("bigmodel_hf.training.runs") > floor_of("bigmodel_hf.interactive.probe")
