"""Tiny run output directories in the layout of `bigmodel_hf.output_layout`, for card and push tests.

The model, tokenizer and files are real (a tiny model saved with `save_pretrained`, a trained tokenizer,
a drawn plot); the numbers in eval_results.json / run_info.json / cleaning_report.json are made up.
"""

import json

import torch
from datasets import Dataset

from bigmodel_hf import BigModelForCausalLM, BigModelForSeq2SeqLM
from bigmodel_hf.tokenization import train_lm_tokenizer, train_translation_tokenizer
from bigmodel_hf.output_layout import OutputLayout
from bigmodel_hf.training.plotting import plot_training_curves
from tiny_models import tiny_config

PAIRS = [("the cat sees the dog", "el gato ve al perro"), ("a red house", "una casa roja"),
         ("the girl reads a book", "la niña lee un libro"), ("two small birds", "dos pájaros pequeños")] * 5
TEXTS = ["Once upon a time a cat lived in a red house.", "The dog ran to the river and back."] * 5
BLEU_SIGNATURE = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
CHRF_SIGNATURE = "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0"
TRANSLATION_RESULTS = {
    "validation": {"bleu": 12.3456, "chrf": 40.123, "bleu_signature": BLEU_SIGNATURE, "chrf_signature": CHRF_SIGNATURE,
                   "gen_len": 7.5, "loss": 2.1, "num_samples": 200, "num_beams": 4, "length_penalty": 1.0,
                   "copy_source_bleu": 0.5},
    "test": {"bleu": 11.0, "chrf": 39.5, "bleu_signature": BLEU_SIGNATURE, "chrf_signature": CHRF_SIGNATURE,
             "gen_len": 7.4, "loss": 2.2, "num_samples": 500, "num_beams": 4, "length_penalty": 1.0,
             "copy_source_bleu": 0.4},
}
LM_RESULTS = {"validation": {"perplexity": 35.123456, "nll": 3.5589, "tokens": 4096, "loss": 3.56}}
LOG_HISTORY = [{"step": 1, "loss": 5.0}, {"step": 2, "loss": 4.0}, {"step": 2, "eval_loss": 4.2, "eval_bleu": 1.0}]


def make_output_dir(root, encoder_decoder: bool = True, **run_config_overrides):
    """A finished run's output directory under `root`; returns `(root, model)`.

    `run_config.yaml` holds the absolute `output_dir` (as a run given an absolute path writes it) and
    whatever `run_config_overrides` set (e.g. `model_name_or_path`, `dataset_name`).
    """
    layout = OutputLayout(root)
    torch.manual_seed(0)
    if encoder_decoder:
        dataset = Dataset.from_dict({"source": [s for s, _ in PAIRS], "target": [t for _, t in PAIRS]})
        tokenizer = train_translation_tokenizer(dataset, vocab_size=80, min_frequency=1)
        model = BigModelForSeq2SeqLM(tiny_config("classic", True, vocab_size=len(tokenizer)))
        run_config = {"dataset_name": "toy_en_es", "source_lang": "en", "target_lang": "es", "preset": "vaswani-small",
                      "config_overrides": "d_model=32", "tokenizer_type": "bpe", "tokenizer_min_frequency": 1,
                      "metric_for_best_model": "bleu"}
        results, kind, predictions = TRANSLATION_RESULTS, "translations", ["una casa roja"]
    else:
        tokenizer = train_lm_tokenizer(Dataset.from_dict({"text": TEXTS}), vocab_size=300, min_frequency=1)
        model = BigModelForCausalLM(tiny_config("modern", False, vocab_size=len(tokenizer)))
        run_config = {"dataset_name": "lm_web", "preset": "modern-small", "metric_for_best_model": "perplexity",
                      "data_note": "Trained on Bible chapters (derived from the World English Bible): archaic "
                                   "religious prose."}
        results, kind, predictions = LM_RESULTS, "generations", ["Once upon a time"]
    model.eval()
    model.save_pretrained(root)
    tokenizer.save_pretrained(root)
    run_config.update({"output_dir": str(root), "learning_rate": 0.0007, "lr_scheduler_type": "inverse_sqrt",
                       "warmup_steps": 0.05, "max_steps": 2, "per_device_train_batch_size": 8, "seed": 42,
                       "load_best_model_at_end": True, "model_name_or_path": None, "tokenizer_name": None,
                       **run_config_overrides})
    layout.write_run_config(run_config)
    for split, metrics in results.items():
        layout.update_eval_results(split, metrics)
    layout.write_run_info({"num_processes": 1, "distributed_type": "NO", "device": "cpu", "device_name": "cpu",
                           "cpu_count": 2, "global_step": 2, "train_runtime_seconds": 61.5,
                           "wall_clock_seconds": 75.2, "torch_version": torch.__version__,
                           "transformers_version": "5.24.0"})
    splits = {"train": (21, 20), "validation": (500, 500), "test": (500, 500)}
    (root / "cleaning_report.json").write_text(json.dumps({"settings": {}, "splits": {
        split: {"rows_in": rows_in, "rows_out": rows_out, "dropped": {}, "examples": {}}
        for split, (rows_in, rows_out) in splits.items()}}))
    plot_training_curves(LOG_HISTORY, layout.training_curves, "bleu" if encoder_decoder else "perplexity")
    layout.samples.write_text(json.dumps({"step": 2, "input": PAIRS[1][0] if encoder_decoder else TEXTS[0][:16],
                                          "output": "x"}) + "\n")
    layout.write_predictions("test", "es" if encoder_decoder else "txt", predictions, kind)
    (root / "data").mkdir()
    (root / "data" / "train.jsonl").write_text('{"source": "a", "target": "b"}\n')
    (root / "training_args.bin").write_bytes(f"pickled arguments with {root}".encode())
    (root / "runs" / "Jan01_host").mkdir(parents=True)
    (root / "runs" / "Jan01_host" / "events.out.tfevents.1.host").write_bytes(b"\x00scalars loss\x00")
    checkpoint = root / "checkpoint-2"
    model.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"best_model_checkpoint": str(checkpoint),
                                                               "global_step": 2}))
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        (checkpoint / name).write_bytes(b"state")
    (checkpoint / "training_args.bin").write_bytes(f"pickled arguments with {root}".encode())
    return root, model


def flags(**values) -> list[str]:
    """`flags(max_steps=10, bf16="false")` -> `["--max_steps", "10", "--bf16", "false"]`: a recipe's argv."""
    return [item for key, value in values.items() for item in (f"--{key}", str(value))]
