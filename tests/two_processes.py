"""Launching a recipe as 2 synchronised CPU processes (`tests/ddp_sync_probe.py`) and the checks every such
run must pass, shared by the translation and text-generation recipe tests."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A free loopback port, so that two launches at once do not collide."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_in_two_cpu_processes(recipe: str, recipe_args: list[str], output_dir: Path) -> list[dict]:
    """Run `recipe` under `accelerate launch` with the CPU 2-process config; assert both processes trained in
    one job on different data and ended with the same weights; return the probe's per-rank records."""
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(ROOT / "recipes" / "accelerate" / "cpu_2proc.yaml"), "--main_process_port", str(free_port()),
        str(ROOT / "tests" / "ddp_sync_probe.py"), *recipe_args,
    ]
    # No ACCELERATE_USE_CPU from the caller's environment: the recipe must find out itself.
    env = {k: v for k, v in os.environ.items() if k != "ACCELERATE_USE_CPU"} | {"SYNC_PROBE_RECIPE": recipe}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads((output_dir / "run_info.json").read_text())
    assert info["num_processes"] == 2 and info["distributed_type"] == "MULTI_CPU"
    ranks = json.loads((output_dir / "sync_probe.json").read_text())["ranks"]
    assert len(ranks) == 2 and ranks[0]["first_batch"] != ranks[1]["first_batch"]  # different data per rank
    assert ranks[0]["checksum"] == ranks[1]["checksum"]  # same weights: gradients were all-reduced
    return ranks


def accelerate_launch(config: str, recipe_args: list[str], *, script: Path = ROOT / "recipes" / "translate.py",
                      launch_flags: list[str] = (), env: dict | None = None, timeout: int = 600,
                      check: bool = True) -> subprocess.CompletedProcess:
    """`accelerate launch --config_file recipes/accelerate/<config> [launch_flags] <script> <recipe_args>` on a
    free port, one torch thread per process; asserts success unless `check=False`."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(ROOT / "recipes" / "accelerate" / config), "--main_process_port", str(free_port()),
               *launch_flags, str(script), *recipe_args]
    environment = {k: v for k, v in os.environ.items() if k != "ACCELERATE_USE_CPU"} | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment | (env or {}),
                          cwd=ROOT)
    if check:
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def logged_losses(output_dir: Path) -> list[float]:
    """The training loss at every logged step, from the newest checkpoint's trainer_state.json."""
    newest = max(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    history = json.loads((newest / "trainer_state.json").read_text())["log_history"]
    return [entry["loss"] for entry in history if "loss" in entry]
