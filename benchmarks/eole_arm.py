"""The eole arm of benchmarks/translation_quality.py (issue 21): OpenNMT's successor at equal CPU time.

eole runs in its own virtual environment, never as a project dependency (pin torch in the same command,
or pip pulls a multi-GB CUDA build; eole's CLI imports aiohttp without declaring it):

    python -m venv /work/venv-eole
    /work/venv-eole/bin/pip install eole==0.6.4 torch==2.13.0 aiohttp

What this module does, step by step:

1. Writes eole's inputs from the prepared data: every sentence as the joint BPE tokenizer's pieces joined
   by spaces (eole splits on single spaces and applies no transform), and the tokenizer's vocabulary
   in id order as eole's shared vocabulary, so both arms see the same segmentation and vocabulary.
2. Calibrates: trains eole for `calibration_s` CPU seconds and reads its steps per CPU second from the
   log, so the real run's `train_steps` ends the cosine schedule at the budget.
3. Trains eole pinned to one core with one thread, watching its CPU time in /proc/<pid>/stat; if the
   budget runs out first, stops it and keeps the last checkpoint saved inside the budget.
4. Decodes validation with `eole predict` (beam 4, at most 160 tokens, average length penalty, i.e.
   length penalty 1.0 as our arm), turns the pieces back into text with our tokenizer and scores with
   the project's sacreBLEU helper.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_EOLE_BIN = Path(os.environ.get("EOLE_VENV", "/work/venv-eole")) / "bin" / "eole"
INSTALL_HINT = ("python -m venv /work/venv-eole && /work/venv-eole/bin/pip install eole==0.6.4 torch==2.13.0 "
                "aiohttp")
MAX_PIECES = 127  # our arm cuts sequences to 128 tokens including EOS; eole adds EOS itself

# The model: the same shape as our arm (d_model 256, 3+3 layers, 4 heads, ffn 1024, sinusoidal
# positions), eole's standard (pre-norm) transformer with the biases of the classic one, one embedding
# matrix shared by encoder input, decoder input and output projection (one joint vocabulary).
MODEL = {
    "architecture": "transformer",
    "hidden_size": 256, "layers": 3, "heads": 4, "transformer_ff": 1024,
    "share_embeddings": True, "share_decoder_embeddings": True,
    "add_qkvbias": True, "add_ffnbias": True, "add_final_linear_bias": True,
    "embeddings": {"word_vec_size": 256, "position_encoding": True,
                   "position_encoding_type": "SinusoidalInterleaved"},
}
# Training settings held fixed; train_steps, warmup_steps and checkpointing come from the budget.
# Cosine is the one eole decay (noam, noamwd, rsqrt, cosine, or step-wise exponential) that ends at a
# floor (zero) at train_steps, so it suits a fixed budget; its peak is our arm's learning rate.
TRAINING = {
    "optim": "adam", "adam_beta1": 0.9, "adam_beta2": 0.998, "learning_rate": 1e-3, "decay_method": "cosine",
    "batch_type": "tokens", "batch_size": 2048, "normalization": "tokens", "accum_count": [1],
    "label_smoothing": 0.1, "dropout": [0.1], "attention_dropout": [0.1], "dropout_steps": [0],
    "max_grad_norm": 1.0, "param_init_method": "xavier_uniform", "compute_dtype": "fp32",
    "num_workers": 0,  # data loading in the trained process itself: its CPU time is all we count
}
WARMUP_STEPS = 200  # as our arm, cut to a tenth of the run for short ones
DECODING = {"beam_size": 4, "max_length": 160, "max_length_ratio": 0, "length_penalty": "avg",
            "batch_size": 32, "batch_type": "sents"}


def eole_bin_or_exit(path) -> Path:
    """The eole executable, or exit with one line saying how to install it."""
    path = Path(path)
    if not path.is_file():
        sys.exit(f"eole not found at {path}; install it in its own venv: {INSTALL_HINT} (or pass --eole_bin)")
    return path


# --- text <-> pieces -------------------------------------------------------------------------------

def to_pieces(tokenizer, text: str, max_pieces: int | None = None) -> str:
    """`text` as the tokenizer's pieces joined by single spaces (no special tokens)."""
    return pieces_lines(tokenizer, [text], max_pieces)[0]


def pieces_lines(tokenizer, texts: list, max_pieces: int | None = None) -> list[str]:
    """`to_pieces` over many texts, tokenized in one batch call (fast tokenizers batch in Rust)."""
    lines = []
    for text, ids in zip(texts, tokenizer(list(texts), add_special_tokens=False)["input_ids"]):
        pieces = tokenizer.convert_ids_to_tokens(ids)
        if any(not piece or any(char.isspace() for char in piece) for piece in pieces):
            # eole splits lines on spaces, so a piece holding whitespace would come back as two tokens
            raise ValueError(f"a piece of {text!r} holds whitespace: {pieces}")
        lines.append(" ".join(pieces[:max_pieces]))
    return lines


def from_pieces(tokenizer, line: str) -> str:
    """Text from a line of space-separated pieces (eole's output); unknown pieces and specials drop out."""
    ids = tokenizer.convert_tokens_to_ids([piece for piece in line.split(" ") if piece])
    return tokenizer.decode(ids, skip_special_tokens=True)


def write_vocab(tokenizer, path: Path) -> int:
    """The tokenizer's vocabulary in id order, one token a line (eole's count-free format)."""
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    bad = [token for token in tokens if not token or any(char.isspace() for char in token)]
    if bad:
        raise ValueError(f"tokens with whitespace cannot go into eole's vocabulary: {bad[:5]}")
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return len(tokens)


def write_inputs(raw, tokenizer, folder: Path, seed: int = 42) -> dict:
    """Training/validation pieces and the vocabulary under `folder`; returns their paths and counts."""
    folder.mkdir(parents=True, exist_ok=True)
    pairs = list(zip(raw["train"]["source"], raw["train"]["target"]))
    random.Random(seed).shuffle(pairs)  # shuffled once, as eole's own recipes expect their training files
    sources = pieces_lines(tokenizer, [s for s, _ in pairs], MAX_PIECES)
    targets = pieces_lines(tokenizer, [t for _, t in pairs], MAX_PIECES)
    paths = {"train_src": folder / "train.src", "train_tgt": folder / "train.tgt",
             "valid_src": folder / "valid.src", "vocab": folder / "vocab.txt"}
    paths["train_src"].write_text("\n".join(sources) + "\n", encoding="utf-8")
    paths["train_tgt"].write_text("\n".join(targets) + "\n", encoding="utf-8")
    paths["valid_src"].write_text(
        "\n".join(pieces_lines(tokenizer, raw["validation"]["source"])) + "\n", encoding="utf-8")
    vocab_size = write_vocab(tokenizer, paths["vocab"])
    # target tokens per epoch as eole counts them: the pieces and the EOS it appends
    tokens_per_epoch = sum(len(t.split(" ")) + 1 for t in targets)
    return {**{k: str(v) for k, v in paths.items()}, "vocab_size": vocab_size, "train_pairs": len(pairs),
            "target_tokens_per_epoch": tokens_per_epoch}


# --- config and schedule ---------------------------------------------------------------------------

def schedule_for_budget(steps_per_cpu_s: float, startup_cpu_s: float, budget_cpu_s: float,
                        safety: float = 0.97) -> dict:
    """train_steps, warmup and checkpoint interval that end training at the CPU budget.

    `startup_cpu_s` (imports, model and data set-up) comes out of the budget first; `safety` leaves a
    few percent for checkpoint writes and rate drift, so the schedule's end, not the watchdog, stops it.
    """
    if steps_per_cpu_s <= 0:
        raise ValueError(f"calibration measured no progress ({steps_per_cpu_s} steps per CPU second)")
    train_steps = max(10, int((budget_cpu_s - startup_cpu_s) * steps_per_cpu_s * safety))
    warmup = max(1, min(WARMUP_STEPS, train_steps // 10))
    # about 25 checkpoints over the run, the last three kept: one lands near the budget if it cuts in
    save_every = max(5, train_steps // 25)
    return {"train_steps": train_steps, "warmup_steps": warmup, "save_checkpoint_steps": save_every,
            "keep_checkpoint": 3}


def eole_config(inputs: dict, model_dir: Path, schedule: dict, seed: int = 42, report_every: int = 10,
                overrides: dict | None = None) -> dict:
    """eole's training config (a dict to write as YAML): our data, vocabulary and the fixed settings;
    `overrides` replace keys of its `training` section (e.g. learning_rate)."""
    return {
        "seed": seed, "overwrite": True, "report_every": report_every,
        "src_vocab": inputs["vocab"], "tgt_vocab": inputs["vocab"], "share_vocab": True,
        "src_vocab_size": inputs["vocab_size"], "tgt_vocab_size": inputs["vocab_size"],
        "vocab_size_multiple": 8, "src_words_min_frequency": 0, "tgt_words_min_frequency": 0,
        # our tokenizer's specials (eole's pad is "<blank>" by default); all four are in the vocabulary
        "pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "data": {"corpus_1": {"path_src": inputs["train_src"], "path_tgt": inputs["train_tgt"],
                              "transforms": []}},
        "model": json.loads(json.dumps(MODEL)),  # a copy: callers may edit it
        "training": {**TRAINING, **schedule, "model_path": str(model_dir), "gpu_ranks": [], "world_size": 1,
                     "valid_steps": 10 ** 9,
                     # one bucket per epoch: eole's default (262,144 examples) would read a small corpus
                     # many times over before the first step, and refill rarely after
                     "bucket_size": inputs["train_pairs"], **(overrides or {})},
    }


# --- running eole ----------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its waited-for children, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # after the ")" closing the name: fields[11..14] are utime, stime, cutime, cstime in clock ticks
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def checkpoint_done(path: Path) -> bool:
    """A step folder eole has finished writing (config.json comes after the weights)."""
    try:
        json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return any(path.glob("model.*.safetensors"))


def step_of(path: Path) -> int:
    return int(path.name.split("_", 1)[1])


def watch(eole_bin: Path, args: list, log_path: Path, budget_cpu_s: float, core: int, on_poll=None,
          poll_s: float = 0.5) -> dict:
    """Run `eole <args>` pinned to `core` with one thread; stop it once its CPU time reaches the budget.

    `on_poll(cpu_s)` runs at every poll while eole runs. Returns its CPU seconds (capped at the budget),
    whether the budget stopped it, its exit code and the 1-minute load averages seen. Polls see CPU
    time to within a poll; the exact total comes from the reaped child's resource usage.
    """
    before = children_cpu_seconds()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = ["taskset", "-c", str(core), str(eole_bin), *map(str, args)]
    loads, cpu, stopped = [], 0.0, False
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        while process.poll() is None:
            time.sleep(poll_s)
            try:
                cpu = cpu_seconds(process.pid)
            except (OSError, IndexError):
                break  # it just ended
            loads.append(os.getloadavg()[0])
            if on_poll is not None:
                on_poll(cpu)
            if cpu >= budget_cpu_s:
                stopped = True
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                break
        process.wait()
    if not stopped and process.returncode != 0:
        raise RuntimeError(f"eole {args[0]} failed (exit {process.returncode}); see {log_path}")
    total = children_cpu_seconds() - before  # this process runs one eole at a time
    return {"cpu_s": min(total, budget_cpu_s) if stopped else total, "process_cpu_s": total,
            "stopped_by_budget": stopped, "returncode": process.returncode, "loads": loads}


def children_cpu_seconds() -> float:
    """User + system CPU time of this process's ended, reaped children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_training(eole_bin: Path, config_path: Path, model_dir: Path, budget_cpu_s: float, core: int,
                 log_path: Path) -> dict:
    """`watch` over `eole train`, plus each finished checkpoint with the CPU time when it was first seen
    finished (within one poll of the truth); only checkpoints finished inside the budget are listed."""
    seen: dict[str, float] = {}

    def note_checkpoints(cpu: float):
        for path in model_dir.glob("step_*"):
            if path.name not in seen and cpu <= budget_cpu_s and checkpoint_done(path):
                seen[path.name] = cpu

    run = watch(eole_bin, ["train", "-config", config_path], log_path, budget_cpu_s, core, note_checkpoints)
    if not run["stopped_by_budget"]:
        note_checkpoints(run["cpu_s"])  # it ended by itself, inside the budget: the final save counts
    run["checkpoints"] = sorted(({"path": str(model_dir / name), "step": step_of(model_dir / name), "cpu_s": cpu}
                                 for name, cpu in seen.items() if (model_dir / name).exists()),
                                key=lambda checkpoint: checkpoint["step"])
    return run


STEP_LINE = re.compile(r"Step +(\d+)/\s*\d+; acc: [\d.]+; ppl: +[\d.]+; xent: ([\d.]+);.*?lr: ([\d.e+-]+);"
                       r".*?bsz: +([\d.]+)/ *([\d.]+)/")
PARAMS_LINE = re.compile(r"\* number of parameters: (\d+)")


def parse_log(text: str) -> dict:
    """Steps, losses (smoothed cross-entropy), learning rates and target tokens from eole's log."""
    rows, tokens, last_step = [], 0.0, 0
    for step, xent, lr, _src_bsz, tgt_bsz in STEP_LINE.findall(text):
        step = int(step)
        tokens += float(tgt_bsz) * (step - last_step)  # bsz is the mean per batch since the last report
        rows.append({"step": step, "loss": float(xent), "lr": float(lr), "target_tokens": tokens})
        last_step = step
    params = PARAMS_LINE.search(text)
    return {"rows": rows, "parameters": int(params.group(1)) if params else None}


def rate_from_calibration(rows: list, cpu_at_rows: list) -> tuple[float, float]:
    """Steps per CPU second over the logged reports, and the start-up CPU before step 0 at that rate."""
    if len(rows) < 2:
        raise RuntimeError("calibration logged fewer than two reports; give it more CPU seconds")
    first, last = 0, len(rows) - 1
    rate = (rows[last]["step"] - rows[first]["step"]) / max(cpu_at_rows[last] - cpu_at_rows[first], 1e-9)
    startup = max(0.0, cpu_at_rows[first] - rows[first]["step"] / rate)
    return rate, startup


def calibrate(eole_bin: Path, inputs: dict, folder: Path, calibration_s: float, core: int,
              overrides: dict | None = None) -> dict:
    """Train for `calibration_s` CPU seconds with a long schedule; measure steps per CPU second."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    model_dir = folder / "model"
    shutil.rmtree(model_dir, ignore_errors=True)
    config = eole_config(inputs, model_dir, {"train_steps": 10 ** 6, "warmup_steps": WARMUP_STEPS,
                                             "save_checkpoint_steps": 0, "keep_checkpoint": 0},
                         report_every=2, overrides=overrides)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    log_path = folder / "train.log"
    marks: dict[int, float] = {}

    def note_reports(cpu: float):
        # eole's log has wall-clock times only: note the CPU time at which each step report appears
        for step, *_ in STEP_LINE.findall(log_path.read_text(errors="replace")):
            marks.setdefault(int(step), cpu)

    watch(eole_bin, ["train", "-config", folder / "config.yaml"], log_path, calibration_s, core, note_reports,
          poll_s=0.2)
    rows = parse_log(log_path.read_text())["rows"]
    timed = [row for row in rows if row["step"] in marks]
    rate, startup = rate_from_calibration(timed, [marks[row["step"]] for row in timed])
    shutil.rmtree(model_dir, ignore_errors=True)
    return {"steps_per_cpu_s": rate, "startup_cpu_s": startup, "calibration_cpu_s": calibration_s,
            "calibration_steps": rows[-1]["step"] if rows else 0}


def predict(eole_bin: Path, checkpoint: str, src: str, output: Path, core: int, log_path: Path) -> float:
    """Decode `src` with a checkpoint (beam 4, at most 160 tokens); returns the wall seconds it took."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = ["taskset", "-c", str(core), str(eole_bin), "predict", "-model_path", checkpoint, "-src", src,
               "-output", str(output), "-seed", "42"]
    for key, value in DECODING.items():
        command += [f"-{key}", str(value)]
    started = time.perf_counter()
    with open(log_path, "w") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    if code != 0:
        raise RuntimeError(f"eole predict failed (exit {code}); see {log_path}")
    return time.perf_counter() - started


def count_parameters(checkpoint: str) -> int:
    """Parameters stored in a checkpoint (shared embeddings count once, as stored)."""
    from safetensors import safe_open

    total = 0
    for path in Path(checkpoint).glob("model.*.safetensors"):
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                total += math.prod(handle.get_slice(key).get_shape())
    return total


# --- the arm ---------------------------------------------------------------------------------------

def tokens_through(rows: list, step: int) -> float:
    """Target tokens seen up to `step`, from the last log report at or before it."""
    before = [row["target_tokens"] for row in rows if row["step"] <= step]
    return before[-1] if before else 0.0


def run_arm(raw, tokenizer, out: Path, budget_s: float, eole_bin: Path, core: int, calibration_s: float = 60.0,
            name: str = "eole", seed: int = 42, overrides: dict | None = None) -> dict:
    """Calibrate, train for `budget_s` CPU seconds, decode validation and score; writes result.json."""
    import platform

    import yaml

    from bigmodel_hf.metrics import corpus_translation_scores

    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    inputs = write_inputs(raw, tokenizer, folder / "inputs", seed=seed)
    calibration = calibrate(eole_bin, inputs, folder / "calibration", calibration_s, core, overrides)
    schedule = schedule_for_budget(calibration["steps_per_cpu_s"], calibration["startup_cpu_s"], budget_s)
    model_dir = folder / "model"
    shutil.rmtree(model_dir, ignore_errors=True)
    config = eole_config(inputs, model_dir, schedule, seed=seed, overrides=overrides)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    run = run_training(eole_bin, folder / "config.yaml", model_dir, budget_s, core, folder / "train.log")
    if not run["checkpoints"]:
        raise RuntimeError(f"eole saved no checkpoint within {budget_s:.0f} CPU seconds; see {folder / 'train.log'}")
    checkpoint = run["checkpoints"][-1]
    log = parse_log((folder / "train.log").read_text(errors="replace"))

    outputs = folder / "validation.pieces"
    decode_s = predict(eole_bin, checkpoint["path"], inputs["valid_src"], outputs, core, folder / "predict.log")
    predictions = [from_pieces(tokenizer, line) for line in outputs.read_text(encoding="utf-8").split("\n")]
    predictions = predictions[:len(raw["validation"])]  # the file ends with a newline
    references = list(raw["validation"]["target"])
    scores = corpus_translation_scores(predictions, references)
    tokens = tokens_through(log["rows"], checkpoint["step"])
    loads = run["loads"]
    result = {
        "arm": "eole", "name": name, "model_class": "eole transformer",
        "parameters": log["parameters"] or count_parameters(checkpoint["path"]),
        "settings": {**{k: v for k, v in TRAINING.items() if k != "num_workers"}, **schedule, **(overrides or {}),
                     "model": MODEL, "budget_clock": "CPU seconds of the eole process",
                     "steps_per_cpu_s_calibrated": round(calibration["steps_per_cpu_s"], 4),
                     "startup_cpu_s_calibrated": round(calibration["startup_cpu_s"], 1),
                     "calibration_cpu_s": calibration_s, "checkpoint": Path(checkpoint["path"]).name},
        "clock": "cpu", "budget_s": budget_s, "training_s": checkpoint["cpu_s"], "training_cpu_s": checkpoint["cpu_s"],
        "training_cpu_minutes": checkpoint["cpu_s"] / 60, "process_cpu_s": run["process_cpu_s"],
        "stopped_by_budget": run["stopped_by_budget"], "steps": checkpoint["step"],
        "epochs": tokens / inputs["target_tokens_per_epoch"], "target_tokens": int(tokens),
        "target_tokens_per_s": tokens / max(checkpoint["cpu_s"], 1e-9),
        "losses": [(row["step"], row["loss"]) for row in log["rows"] if row["step"] <= checkpoint["step"]],
        "train_pairs": inputs["train_pairs"], "validation_pairs": len(predictions), "decode_s": decode_s,
        "decoding": DECODING, **scores,
        "samples": [{"source": s, "output": p, "reference": r}
                    for s, p, r in list(zip(raw["validation"]["source"], predictions, references))[:3]],
        "machine": {"python": platform.python_version(), "eole_bin": str(eole_bin), "threads": 1,
                    "affinity": [core], "cpu": platform.processor() or platform.machine(),
                    "loadavg_during_training": [min(loads), sum(loads) / len(loads), max(loads)] if loads else None},
    }
    (folder / "result.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    (folder / "validation.es").write_text("\n".join(predictions) + "\n")
    return result
