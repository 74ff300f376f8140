"""Import a script of benchmarks/ as a module (the folder is not a package), for the smoke tests."""

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.append(str(BENCHMARKS))  # the scripts import their shared helpers as a script run would


def load_benchmark(name: str):
    """`load_benchmark("speed")` -> the module of benchmarks/speed.py."""
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
