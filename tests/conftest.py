import json
import sys
from pathlib import Path

import pytest
import torch

TESTS_DIR = Path(__file__).resolve().parent
SHARED_DATA = TESTS_DIR.parent.parent / "shared" / "data"
sys.path.insert(0, str(TESTS_DIR))  # test helpers import each other as plain modules


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` beside the checkout (developer machines and CI); users' machines skip these tests."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present (it exists on developer machines and in CI)")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tests use tiny models, which gain nothing from a second thread; on a busy 2-core machine two threads
    per process spin-wait on each other (a recipe overfit test took 60 s instead of 2 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def toy_translation_jsonl(tmp_path_factory) -> Path:
    """24 English-Spanish pairs of the toy grammar as JSON Lines in the Hub `translation` layout."""
    from bigmodel_hf.toy_data import toy_translation_pairs

    path = tmp_path_factory.mktemp("corpus") / "tiny.jsonl"
    rows = toy_translation_pairs(24, seed=3)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "utf-8")
    return path
