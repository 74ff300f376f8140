"""Fetch transformers' own common model tests for the installed version, for `test_hf_common_suite.py`.

transformers' PyPI source distribution ships `tests/test_modeling_common.py` (ModelTesterMixin) and
`tests/test_configuration_common.py` (ConfigTester) of exactly that release, but not three helper modules
they import. We extract the two files into `.cache/transformers_tests/<version>/hf_tests/` and add our own
stand-ins for the helpers from `tests/hf_shims/` (see the docstrings there for what each one does).
Nothing is committed from transformers. Run once after installing (CI does): `python tests/fetch_transformers_tests.py`.
"""

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import transformers

ROOT = Path(__file__).resolve().parent.parent
SUITE_DIR = ROOT / ".cache" / "transformers_tests" / transformers.__version__
WANTED = ("tests/test_modeling_common.py", "tests/test_configuration_common.py")


def fetch(dest: Path = SUITE_DIR) -> Path:
    package = dest / "hf_tests"
    if all((package / Path(name).name).exists() for name in WANTED):
        return package
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             "-d", tmp, f"transformers=={transformers.__version__}"],
            check=True,
        )
        archive = next(Path(tmp).glob("transformers-*.tar.gz"))
        package.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                relative = member.name.split("/", 1)[-1]
                if relative in WANTED:
                    (package / Path(relative).name).write_bytes(tar.extractfile(member).read())
    shims = Path(__file__).parent / "hf_shims"
    shutil.copytree(shims, package, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    return package


if __name__ == "__main__":
    print(f"transformers {transformers.__version__} common tests in {fetch()}")
