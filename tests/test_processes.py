"""`bigmodel_hf.training.processes` on 2 real gloo processes (spawned here, one folder per "machine")."""

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from bigmodel_hf.training.processes import made_once_everywhere, sees_main_output_dir
from bigmodel_hf.training.setting_checks import ConfigError

pytestmark = pytest.mark.slow  # each test spawns 2 processes that import torch and transformers


def _run(rank: int, port: int, root: str, shared: bool, failing: bool, results) -> None:
    os.environ["LOCAL_WORLD_SIZE"] = "1"  # two "machines", one process each
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        folder = Path(root) / ("shared" if shared else f"machine{rank}")
        args = SimpleNamespace(world_size=2, process_index=rank, local_process_index=0, output_dir=str(folder))

        def make(target: Path):
            if failing:
                raise ConfigError("the tokenizer could not be trained: no text in the training split")
            (target / "sub").mkdir(parents=True, exist_ok=True)
            (target / "sub" / "vocab.json").write_text('{"a": 0}')
            return "made"

        try:
            made = made_once_everywhere(folder / "tokenizer", make, args)
            results[rank] = (made, (folder / "tokenizer" / "sub" / "vocab.json").read_text(), sees_main_output_dir(args))
        except ConfigError as error:
            results[rank] = ("error", str(error), None)
    finally:
        dist.destroy_process_group()


def spawn(tmp_path, shared: bool, failing: bool = False) -> dict:
    from two_processes import free_port

    results = mp.Manager().dict()
    mp.spawn(_run, args=(free_port(), str(tmp_path), shared, failing, results), nprocs=2, join=True)
    return dict(results)


def test_files_made_once_reach_a_machine_without_the_main_disk(tmp_path):
    results = spawn(tmp_path, shared=False)
    assert results[0] == ("made", '{"a": 0}', False)  # made here; machine 1 does not see machine 0's folder
    assert results[1] == (None, '{"a": 0}', False)    # a copy on machine 1's own disk, written by its process


def test_on_a_shared_disk_the_files_are_left_alone(tmp_path):
    results = spawn(tmp_path, shared=True)
    assert results[0][0] == "made" and results[1][0] is None and results[0][2] is results[1][2] is True


def test_a_failure_on_the_main_process_stops_every_process_with_its_message(tmp_path):
    """No process waits forever for files that will not come (docs/bad_inputs.md D1)."""
    results = spawn(tmp_path, shared=False, failing=True)
    message = "the tokenizer could not be trained: no text in the training split"
    assert results == {0: ("error", message, None), 1: ("error", message, None)}
    assert not (tmp_path / "machine1" / "tokenizer").exists()
