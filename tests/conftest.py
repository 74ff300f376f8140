import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
SHARED_DATA = TESTS_DIR.parent.parent / "shared" / "data"
sys.path.insert(0, str(TESTS_DIR))  # test helpers import each other as plain modules


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` beside the checkout (developer machines and CI); users' machines skip these tests."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present (it exists on developer machines and in CI)")
    return SHARED_DATA
