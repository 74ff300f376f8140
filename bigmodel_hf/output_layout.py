"""Where a run's results go. The model card (and anything else) can be rebuilt from this folder alone.

    <output_dir>/
      config.json, model.safetensors, *.py       the model, with the code `trust_remote_code` needs
      tokenizer.json, tokenizer_config.json      the tokenizer
      generation_config.json                     the decoding settings of the final evaluation
      run_config.yaml                            the resolved run: rerun with --config run_config.yaml
      eval_results.json                          {"validation": {...}, "test": {...}} per split
      translations/test.<lang>                   one output line per test input (generations/ for LMs)
      samples.jsonl                              sample outputs logged at each evaluation
      run_info.json                              processes, device, versions, wall-clock
      data_fingerprint.json                      what the checkpoints were trained on (training.rerun)
      training_curves.png                        loss and metric curves
      runs/                                      TensorBoard events
      checkpoint-<step>/                         Trainer checkpoints (not part of what is shared)
"""

import json
from dataclasses import dataclass
from pathlib import Path

import transformers
import yaml


@dataclass(frozen=True)
class OutputLayout:
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def run_config(self) -> Path:
        return self.root / "run_config.yaml"

    @property
    def eval_results(self) -> Path:
        return self.root / "eval_results.json"

    @property
    def training_curves(self) -> Path:
        return self.root / "training_curves.png"

    @property
    def samples(self) -> Path:
        return self.root / "samples.jsonl"

    @property
    def run_info(self) -> Path:
        return self.root / "run_info.json"

    @property
    def data_fingerprint(self) -> Path:
        return self.root / "data_fingerprint.json"

    @property
    def tensorboard(self) -> Path:
        return self.root / "runs"

    def predictions(self, split: str, suffix: str, kind: str = "translations") -> Path:
        """`translations/test.es` for a translation run, `generations/test.txt` for an LM."""
        return self.root / kind / f"{split}.{suffix}"

    def write_run_config(self, values: dict) -> Path:
        """Save the resolved run as YAML, with the library versions it ran with."""
        self.root.mkdir(parents=True, exist_ok=True)
        header = f"# Resolved run configuration (transformers {transformers.__version__}).\n"
        self.run_config.write_text(header + yaml.safe_dump(values, sort_keys=True, allow_unicode=True), "utf-8")
        return self.run_config

    def write_run_info(self, info: dict) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        self.run_info.write_text(json.dumps(info, indent=2) + "\n", "utf-8")
        return self.run_info

    def read_eval_results(self) -> dict:
        return json.loads(self.eval_results.read_text("utf-8")) if self.eval_results.is_file() else {}

    def update_eval_results(self, split: str, metrics: dict) -> Path:
        """Set the results of one split (e.g. "validation", "test"), keeping the other splits'."""
        results = self.read_eval_results()
        results[split] = metrics
        self.root.mkdir(parents=True, exist_ok=True)
        self.eval_results.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", "utf-8")
        return self.eval_results

    def write_predictions(self, split: str, suffix: str, lines: list[str], kind: str = "translations") -> Path:
        """One output per line; newlines inside an output are flattened so line i is input i."""
        path = self.predictions(split, suffix, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line.replace("\n", " ") + "\n" for line in lines), "utf-8")
        return path


def strip_metric_prefix(metrics: dict, prefix: str) -> dict:
    """`{"test_bleu": 1}` -> `{"bleu": 1}` (the Trainer prefixes metric names with the split)."""
    start = f"{prefix}_"
    return {(key[len(start):] if key.startswith(start) else key): value for key, value in metrics.items()}
