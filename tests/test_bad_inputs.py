"""Hostile and broken inputs to recipes/translate.py (the table in docs/bad_inputs.md): each stops the run
with a message naming the thing and the fix, exit status 1, and an existing output directory untouched;
a few run as real subprocesses. Hypothesis fuzzes config values and dataset rows."""

import hashlib
import json
import math
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import BertConfig, BertModel

from bigmodel_hf import BigModelForCausalLM, BigModelForSeq2SeqLM
from bigmodel_hf.data import DataError, clean_translation_dataset, load_translation_dataset
from bigmodel_hf.tokenization import tokenize_translation_dataset, train_translation_tokenizer
from bigmodel_hf.toy_data import toy_translation_pairs
from bigmodel_hf.training import ConfigError
from bigmodel_hf.training.translation import parse_translation_config
from tiny_models import tiny_config
from tiny_runs import make_output_dir

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "translate.py"
PAIRS = toy_translation_pairs(24, seed=3)


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "utf-8")
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Good and broken data files and checkpoints, side by side."""
    root = tmp_path_factory.mktemp("inputs")
    write_jsonl(root / "good.jsonl", PAIRS)
    write_jsonl(root / "null.jsonl", [*PAIRS[:3], {"en": "a cat", "es": None}])
    write_jsonl(root / "missing.jsonl", [*PAIRS[:3], {"en": "a cat"}])
    (root / "latin1.tsv").write_bytes("hello\thola\n".encode() + "caf\xe9\tcaf\xe9\n".encode("latin-1"))
    (root / "cut.jsonl").write_text((root / "good.jsonl").read_text("utf-8")[:-20], "utf-8")
    (root / "empty.jsonl").write_text("")
    (root / "blank_lines.tsv").write_text("\n\n\n")
    write_jsonl(root / "fr.jsonl", [{"translation": {"en": r["en"], "fr": "un chat"}} for r in PAIRS[:4]])
    (root / "config.yaml").write_text("- a list, not a mapping\n")

    tokenizer = train_translation_tokenizer([r["en"] for r in PAIRS] + [r["es"] for r in PAIRS], vocab_size=120,
                                            min_frequency=1)
    special = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                   eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.bos_token_id)
    good = root / "ckpt"
    BigModelForSeq2SeqLM(tiny_config("classic", vocab_size=len(tokenizer), **special)).save_pretrained(good)
    tokenizer.save_pretrained(good)
    tokenizer.save_pretrained(root / "tokenizer")
    for name, damage in [("trunc_config", "config.json"), ("trunc_weights", "model.safetensors")]:
        folder = root / name
        BigModelForSeq2SeqLM(tiny_config("classic", vocab_size=len(tokenizer), **special)).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        data = (folder / damage).read_bytes()
        (folder / damage).write_bytes(data[: len(data) // 2])
    small = root / "small_vocab"
    BigModelForSeq2SeqLM(tiny_config("classic", vocab_size=40, **special)).save_pretrained(small)
    BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                         vocab_size=len(tokenizer))).save_pretrained(root / "bert")
    tokenizer.save_pretrained(root / "bert")
    lm = BigModelForCausalLM(tiny_config("classic", False, vocab_size=len(tokenizer), **special))
    lm.save_pretrained(root / "lm")
    tokenizer.save_pretrained(root / "lm")
    return root


@pytest.fixture
def existing_run(tmp_path) -> Path:
    """A finished run's output directory (model, card, results, a checkpoint) that a bad run must not touch."""
    root, _ = make_output_dir(tmp_path / "existing")
    return root


def snapshot(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def argv(inputs: Path, output_dir: Path, **overrides) -> list[str]:
    good = inputs / "good.jsonl"
    settings_ = dict(train_file=good, validation_file=good, test_file=good, output_dir=output_dir, clean_data="false",
                     config_overrides="d_model=32,ffn_dim=64,encoder_layers=1,decoder_layers=1,num_attention_heads=2",
                     vocab_size=120, tokenizer_min_frequency=1, max_steps=2, warmup_steps=0, save_steps=2,
                     eval_strategy="no", load_best_model_at_end="false", report_to="none", num_sample_outputs=0,
                     num_beams=1, max_predict_samples=2, resume_from_checkpoint="last")
    values = {**settings_, **overrides}
    return [item for key, value in values.items() if value is not None for item in (f"--{key}", str(value))]


# (id, overrides (a function of the inputs folder), fragments the message must contain)
BAD_RUNS = [
    ("batch_size_zero", lambda d: dict(per_device_train_batch_size=0),
     ["per_device_train_batch_size must be a positive"]),
    ("batch_size_negative", lambda d: dict(per_device_train_batch_size=-8), ["per_device_train_batch_size", "-8"]),
    ("learning_rate_zero", lambda d: dict(learning_rate=0), ["learning_rate must be a positive float, got 0"]),
    ("learning_rate_negative", lambda d: dict(learning_rate=-1e-3), ["learning_rate must be a positive float"]),
    ("learning_rate_infinite", lambda d: dict(learning_rate="inf"), ["learning_rate must be a finite number, got inf"]),
    ("max_steps_below_warmup", lambda d: dict(max_steps=5, warmup_steps=10),
     ["max_steps (5) must exceed warmup_steps"]),
    ("unknown_key", lambda d: dict(lerning_rate=1e-3), ["'lerning_rate' is not a known setting", "learning_rate"]),
    ("renamed_key", lambda d: dict(evaluation_strategy="steps"), ["use eval_strategy"]),
    ("config_not_a_mapping", lambda d: dict(config=d / "config.yaml"), ["must hold a mapping"]),
    ("bad_model_override", lambda d: dict(config_overrides="d_model=30,num_attention_heads=4"),
     ["--config_overrides", "d_model (30) must be divisible"]),
    ("missing_file", lambda d: dict(train_file=d / "nope.jsonl"), ["nope.jsonl: no such file"]),
    ("null_field", lambda d: dict(train_file=d / "null.jsonl"), ["null.jsonl: line 4: field 'es' is missing or null"]),
    ("missing_field", lambda d: dict(train_file=d / "missing.jsonl"), ["missing.jsonl: line 4: field 'es' is missing"]),
    ("undecodable_bytes", lambda d: dict(train_file=d / "latin1.tsv"), ["latin1.tsv: line 2, byte column 4", "iconv"]),
    ("truncated_jsonl", lambda d: dict(train_file=d / "cut.jsonl"), ["cut.jsonl: line 24", "not valid JSON"]),
    ("empty_split", lambda d: dict(validation_file=d / "empty.jsonl"), ["empty.jsonl", "is empty"]),
    ("only_blank_lines", lambda d: dict(train_file=d / "blank_lines.tsv", clean_data="true"),
     ["split 'train' is empty after cleaning", "empty=3", "Check the data"]),
    ("train_is_the_validation_set", lambda d: dict(clean_data="true"), ["empty after cleaning", "eval_overlap=24"]),
    ("validation_in_other_languages", lambda d: dict(validation_file=d / "fr.jsonl"),
     ["languages ['en', 'fr'], not ['es']"]),
    ("target_language_missing", lambda d: dict(target_lang="de"), ["columns", "'de'", "source_field"]),
    ("dataset_and_train_file", lambda d: dict(dataset_name="toy_en_es"), ["either --dataset_name or --train_file"]),
    ("truncated_config_json", lambda d: dict(model_name_or_path=d / "trunc_config"),
     ["trunc_config", "not a valid JSON", "complete checkpoint or tokenizer folder"]),
    ("truncated_safetensors", lambda d: dict(model_name_or_path=d / "trunc_weights"),
     ["trunc_weights could not be loaded", "incomplete metadata"]),
    ("other_model_type", lambda d: dict(model_name_or_path=d / "bert"),
     ["bert could not be loaded", "BertConfig", "encoder-decoder model"]),
    ("decoder_only_checkpoint", lambda d: dict(model_name_or_path=d / "lm"),
     ["lm could not be loaded", "BigModelForCausalLM"]),
    ("tokenizer_larger_than_model",
     lambda d: dict(model_name_or_path=d / "small_vocab", tokenizer_name=d / "tokenizer"),
     ["has 120 tokens but the model", "has 40 embeddings", "leave --tokenizer_name unset"]),
    ("resume_from_missing_checkpoint", lambda d: dict(resume_from_checkpoint=d / "checkpoint-9"),
     ["is not a checkpoint folder", "use 'last'"]),
]


@pytest.fixture(scope="module")
def recipe_main():
    return runpy.run_path(str(RECIPE))["main"]  # the script's own main(), without paying a fresh interpreter


@pytest.mark.parametrize("overrides, fragments", [case[1:] for case in BAD_RUNS], ids=[case[0] for case in BAD_RUNS])
def test_a_bad_input_stops_the_recipe_clearly_and_touches_nothing(recipe_main, inputs, existing_run, overrides,
                                                                 fragments):
    before = snapshot(existing_run)
    with pytest.raises(SystemExit) as stop:
        recipe_main(argv(inputs, existing_run, **overrides(inputs)))
    message = str(stop.value.code)
    assert message.startswith("translate.py: "), message  # sys.exit(str): exit status 1, message on stderr
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert snapshot(existing_run) == before


@pytest.mark.slow
@pytest.mark.parametrize("case", ["truncated_safetensors"])
def test_bad_inputs_exit_non_zero_from_a_real_process(inputs, existing_run, case):
    _, overrides, fragments = next(c for c in BAD_RUNS if c[0] == case)
    before = snapshot(existing_run)
    done = subprocess.run([sys.executable, str(RECIPE), *argv(inputs, existing_run, **overrides(inputs))],
                          capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "translate.py: " in done.stderr and all(fragment in done.stderr for fragment in fragments)
    assert snapshot(existing_run) == before


def test_empty_lines_and_a_100k_character_line_are_dropped_and_counted(tmp_path):
    """Not errors: blank lines of JSON Lines are skipped; blank TSV lines and an over-long pair are dropped by
    the cleaner and counted; without cleaning, tokenization cuts a long line to max_source_length."""
    long = "word " * 20_000  # 100,000 characters
    jsonl = tmp_path / "train.jsonl"
    rows = [json.dumps({"en": "a cat", "es": "un gato"}), json.dumps({"en": "a dog", "es": "un perro"})]
    jsonl.write_text("\n\n" + rows[0] + "\n\n" + rows[1] + "\n")
    assert len(load_translation_dataset(jsonl, validation_size=None)["train"]) == 2
    tsv = tmp_path / "train.tsv"
    tsv.write_text(f"a cat\tun gato\n\n{long}\tuna palabra\na dog\tun perro\n")
    raw = load_translation_dataset(tsv, validation_size=None)
    cleaned, report = clean_translation_dataset(raw)
    assert report["splits"]["train"]["dropped"]["empty"] == 1 and report["splits"]["train"]["dropped"]["too_long"] == 1
    assert cleaned["train"]["source"] == ["a cat", "a dog"]
    tokenizer = train_translation_tokenizer(["a cat", "un gato", "word"], vocab_size=60, min_frequency=1)
    tokenized = tokenize_translation_dataset(raw, tokenizer, max_source_length=16, max_target_length=16)
    assert max(len(ids) for ids in tokenized["train"]["input_ids"]) == 16


# ---------------------------------------------------------------------------------------------- fuzzing

NUMBERS = st.one_of(st.integers(-10, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, -1, 1e-12]))
CONFIG_KEYS = ["per_device_train_batch_size", "learning_rate", "max_steps", "warmup_steps", "num_train_epochs",
               "label_smoothing_factor", "gradient_accumulation_steps", "max_tokens", "num_beams", "save_total_limit",
               "early_stopping_patience", "average_last_checkpoints", "max_source_length", "weight_decay"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.dictionaries(st.sampled_from(CONFIG_KEYS), NUMBERS, max_size=5))
def test_fuzzed_config_values_parse_or_fail_with_a_config_error(values):
    args = [item for key, value in values.items() for item in (f"--{key}", str(value))]
    try:
        run_config = parse_translation_config(["--train_file", "x.jsonl", *args])
    except ConfigError:
        return
    except SystemExit as stop:  # argparse: a float given to an integer flag; exit status 2 with usage
        assert stop.code == 2
        return
    training = run_config.training
    assert training.per_device_train_batch_size > 0
    assert math.isfinite(training.learning_rate) and training.learning_rate > 0
    assert training.max_steps == -1 or training.max_steps > 0


TEXT = st.text(max_size=30)
VALUE = st.one_of(TEXT, st.none(), st.integers(), st.lists(TEXT, max_size=2),
                  st.dictionaries(st.sampled_from(["en", "es"]), TEXT))
PAIR = st.fixed_dictionaries({"en": TEXT, "es": TEXT})
ODD_ROW = st.dictionaries(st.sampled_from(["en", "es", "translation", "source", "target", "x"]), VALUE, max_size=4)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(rows=st.lists(PAIR, max_size=5), odd=st.lists(ODD_ROW, max_size=1),
       junk=st.sampled_from([b"", b"\n", b"\xff\xfe\n", b"{\n", b"[1]\n"]))
def test_fuzzed_dataset_rows_load_and_clean_or_fail_with_a_data_error(tmp_path, rows, odd, junk):
    path = tmp_path / "train.jsonl"
    lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in odd + rows]
    path.write_bytes("".join(lines).encode("utf-8", "surrogatepass") + junk)
    try:
        raw = load_translation_dataset(path, validation_size=None)
        cleaned, _ = clean_translation_dataset(raw)
    except DataError:
        return
    for split in cleaned.values():
        assert all(isinstance(text, str) and text for text in [*split["source"], *split["target"]])
