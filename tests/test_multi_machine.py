"""Two "machines" on this host (`recipes/accelerate/two_machines.yaml`: two launchers, `--num_machines 2`,
`--machine_rank 0/1`, `--main_process_ip 127.0.0.1`, one CPU process each) against one machine with 2 processes.

Each machine gets its own `output_dir`, as machines without a shared file system would: machine 0's must hold
everything a run writes, machine 1's only what its process needs to read (the generated corpus, the trained
tokenizer) and its own RNG state; and the result must equal the single-machine run's.
"""

import json
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from tiny_runs import flags
from two_processes import ROOT, accelerate_launch, free_port, logged_losses

pytestmark = pytest.mark.slow

TINY_MODEL = "d_model=32,ffn_dim=48,encoder_layers=1,decoder_layers=1,num_attention_heads=2,dropout=0.0"


def tiny_toy_run(output_dir) -> list[str]:
    """The generated toy corpus (made by the main process, needed on every machine), a tokenizer trained from
    scratch, 4 steps, evaluations with the best-model reload at the end, samples, the card."""
    return flags(dataset_name="toy_en_es", max_train_samples=48, max_eval_samples=8, max_predict_samples=8,
                 output_dir=output_dir, config_overrides=TINY_MODEL, vocab_size=120, tokenizer_min_frequency=1,
                 max_steps=4, warmup_steps=1, learning_rate=5e-3, label_smoothing_factor=0.0,
                 per_device_train_batch_size=6, eval_steps=2, save_steps=2, logging_steps=1, num_beams=1,
                 generation_max_length=16, num_sample_outputs=2, report_to="tensorboard", seed=0)


def test_two_machines_train_like_one_machine_with_two_processes(tmp_path):
    machines = [tmp_path / "machine0", tmp_path / "machine1"]
    port = str(free_port())
    env = {"OMP_NUM_THREADS": "1"} | {k: v for k, v in __import__("os").environ.items() if k != "ACCELERATE_USE_CPU"}
    launchers = [subprocess.Popen(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
         str(ROOT / "recipes" / "accelerate" / "two_machines.yaml"), "--num_machines", "2", "--num_processes", "2",
         "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1", "--main_process_port", port,
         str(ROOT / "recipes" / "translate.py"), *tiny_toy_run(machines[rank])],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT) for rank in (0, 1)]
    logs = [launcher.communicate(timeout=600)[0] for launcher in launchers]
    assert [launcher.returncode for launcher in launchers] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    single = tmp_path / "one_machine"
    accelerate_launch("cpu_2proc.yaml", tiny_toy_run(single))

    machine0, machine1 = machines
    info = json.loads((machine0 / "run_info.json").read_text())
    assert info["num_processes"] == 2 and info["distributed_type"] == "MULTI_CPU"
    # The same run: every gradient is the sum of the same 2 per-rank gradients in both set-ups, so the
    # arithmetic is identical and the tolerance is zero.
    assert logged_losses(machine0) == logged_losses(single) and len(logged_losses(single)) == 4
    ours, reference = load_file(machine0 / "model.safetensors"), load_file(single / "model.safetensors")
    assert all((ours[name] == tensor).all() for name, tensor in reference.items())
    # machine 1 decoded its half of the test set with machine 0's best checkpoint (broadcast to it)
    assert (machine0 / "translations" / "test.es").read_text() == (single / "translations" / "test.es").read_text()

    # Written once, on machine 0 (global rank 0): the model, results, card, samples, plots, TensorBoard,
    # the cleaning report and run_config.yaml.
    for name in ("model.safetensors", "eval_results.json", "README.md", "samples.jsonl", "training_curves.png",
                 "runs", "cleaning_report.json", "run_config.yaml", "run_info.json"):
        assert (machine0 / name).exists(), name
    assert logs[0].count("Samples at step 2:") == 1 and "Samples at step" not in logs[1]
    # Machine 1 holds what its process read and its own RNG state, nothing else.
    assert sorted(p.name for p in machine1.iterdir()) == ["checkpoint-2", "checkpoint-4", "data", "tokenizer"]
    assert sorted(p.name for p in (machine1 / "checkpoint-4").iterdir()) == ["rng_state_1.pth"]
    for name in ("data/train.jsonl", "data/test.jsonl", "tokenizer/tokenizer.json"):
        assert (machine1 / name).read_bytes() == (machine0 / name).read_bytes(), name
