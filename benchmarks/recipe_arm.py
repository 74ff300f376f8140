"""The `recipe` arm of benchmarks/translation_quality.py (issue 21): ours as a user runs it.

`recipes/translate.py` runs in a child process on the raw train/validation files, with the recipe's
defaults and only what the comparison fixes: the model size and vocabulary of the other arms
(`vaswani-small`, 8,000 pieces), the budget in CPU seconds of training (`--max_train_minutes` with
`--train_clock cpu`), and 200-pair greedy validations every 500 steps (as `bible_en_es_small.yaml`
does). Extra recipe flags come from `--set KEY=VALUE` (e.g. `lr_scheduler_type=cosine
budget_schedule=true`). The recipe's saved model is then decoded on the benchmark's own cleaned
validation set with the same decoding as every arm, so the scores compare like for like.
"""

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "translate.py"
FIXED = {"preset": "vaswani-small", "vocab_size": 8000, "train_clock": "cpu", "eval_steps": 500,
         "save_steps": 500, "max_eval_samples": 200}


def recipe_command(data_dir: Path, output_dir: Path, budget_s: float, overrides: dict) -> list[str]:
    """The recipe's command line: data, the fixed settings, the budget, then `overrides` (flag: value)."""
    settings = {"train_file": str(data_dir / "train.jsonl"), "validation_file": str(data_dir / "validation.jsonl"),
                "source_lang": "en", "target_lang": "es", "output_dir": str(output_dir),
                **FIXED, "max_train_minutes": budget_s / 60, **overrides}
    command = [sys.executable, str(RECIPE)]
    for key, value in settings.items():
        command += [f"--{key}", str(value).lower() if isinstance(value, bool) else str(value)]
    return command


def training_losses(output_dir: Path) -> list:
    """(step, loss) of the run's log history: the newest trainer_state.json the recipe left."""
    states = sorted(output_dir.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    states = [output_dir / "trainer_state.json"] * (output_dir / "trainer_state.json").is_file() + states[::-1]
    if not states:
        return []
    history = json.loads(states[0].read_text())["log_history"]
    return [(row["step"], row["loss"]) for row in history if "loss" in row]


def run_arm(raw, data_dir: Path, out: Path, budget_s: float, translate, score, decoding: dict,
            name: str = "recipe", overrides: dict | None = None) -> dict:
    """Run the recipe, decode `raw['validation']` with its model through `translate`, return the result row
    (the schema of the other arms) and write it to `<out>/<name>/result.json`."""
    from bigmodel_hf.modeling_bigmodel import BigModelForSeq2SeqLM
    from bigmodel_hf.tokenization import load_pretrained_tokenizer

    output_dir = out / name
    if output_dir.is_dir() and any(output_dir.iterdir()):
        sys.exit(f"recipe arm: {output_dir} is not empty (the recipe would resume it); remove it or pass --tag")
    command = recipe_command(Path(data_dir), output_dir, budget_s, overrides or {})
    environment = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    loads: list[float] = []
    started = time.perf_counter()
    with subprocess.Popen(command, env=environment) as child:
        while child.poll() is None:
            loads.append(os.getloadavg()[0])
            time.sleep(5)
    if child.returncode != 0:
        sys.exit(f"recipe arm: {' '.join(command)} failed with exit status {child.returncode}")
    wall_s = time.perf_counter() - started
    training = json.loads((output_dir / "eval_results.json").read_text())
    own_validation = training.get("validation", {})
    training = training["training"]

    model = BigModelForSeq2SeqLM.from_pretrained(output_dir).float().eval()
    tokenizer = load_pretrained_tokenizer(output_dir)
    decode_started = time.perf_counter()
    predictions = translate(model, tokenizer, list(raw["validation"]["source"]))
    decode_s = time.perf_counter() - decode_started
    references = list(raw["validation"]["target"])
    scores = score(predictions, references)
    training_s = training["training_minutes"] * 60
    result = {
        "arm": "recipe", "name": name, "model_class": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "settings": {**FIXED, **(overrides or {}), "command": " ".join(command[1:])},
        "clock": training["train_clock"], "budget_s": budget_s, "training_s": training_s,
        "stopped_by_budget": training["stopped_by_wall_clock"], "steps": training["steps"],
        "epochs": training["epochs"], "target_tokens": training["target_tokens"],
        "target_tokens_per_s": training["target_tokens"] / max(training_s, 1e-9),
        "recipe_wall_s": wall_s, "recipe_own_validation": {k: own_validation.get(k) for k in ("bleu", "chrf",
                                                                                               "num_beams")},
        "losses": training_losses(output_dir), "train_pairs": len(raw["train"]),
        "validation_pairs": len(predictions), "decode_s": decode_s, "decoding": decoding, **scores,
        "samples": [{"source": s, "output": p, "reference": r}
                    for s, p, r in list(zip(raw["validation"]["source"], predictions, references))[:3]],
        "machine": {"python": platform.python_version(), "threads": int(environment["OMP_NUM_THREADS"]),
                    "affinity": sorted(os.sched_getaffinity(0)), "cpu": platform.processor() or platform.machine(),
                    "loadavg_during_training": [min(loads), sum(loads) / len(loads), max(loads)] if loads else None},
    }
    (output_dir / "result.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    (output_dir / "validation.es").write_text("\n".join(predictions) + "\n")
    return result
