"""The opening of a script that must run as on a machine without `bigmodel_hf`: any import of the package
fails, and the script stops at once if the block did not take (else the check would prove nothing)."""

import textwrap

BLOCK_BIGMODEL_HF = textwrap.dedent("""
    import importlib.abc, sys

    class BlockBigModel(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "bigmodel_hf" or name.startswith("bigmodel_hf."):
                raise ImportError("bigmodel_hf is not installed on this machine")

    sys.meta_path.insert(0, BlockBigModel())
    try:
        import bigmodel_hf
        raise SystemExit("bigmodel_hf was importable: the check would prove nothing")
    except ImportError:
        pass
""")


def offline_env(tmp_path) -> dict:
    """Environment for such a script: offline, its own remote-code cache, and one thread like the test process
    (see conftest), so that float sums run in the same order and outputs can be compared exactly."""
    import os

    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "OMP_NUM_THREADS": "1"}
