"""The eole arm of benchmarks/translation_quality.py: what our side of it can get wrong, without eole.

The config we write (model size, vocabulary, batch, schedule from a calibration rate), the pieces <->
text round trip, the log parsing and the CPU clock. One test runs eole itself and skips when its venv
(benchmarks/eole_arm.py's docstring says how to install it) is absent.
"""

import os
import subprocess
import sys

import pytest
import yaml
from benchmark_scripts import load_benchmark

from bigmodel_hf.tokenization import load_pretrained_tokenizer
from bigmodel_hf.toy_data import write_toy_translation_corpus


@pytest.fixture(scope="module")
def quality():
    return load_benchmark("translation_quality")


@pytest.fixture(scope="module")
def eole_arm(quality):
    return sys.modules["eole_arm"]  # imported by translation_quality as a script would


@pytest.fixture(scope="module")
def prepared(quality, tmp_path_factory):
    folder = tmp_path_factory.mktemp("eole_arm")
    write_toy_translation_corpus(folder / "corpus", train=120, validation=8, test=1)
    raw = quality.prepare(folder / "corpus", folder / "out", vocab_size=200)
    return raw, load_pretrained_tokenizer(folder / "out" / "tokenizer"), folder


def test_pieces_round_trip_reproduces_the_text(eole_arm, prepared):
    raw, tokenizer, _ = prepared
    for text in list(raw["train"]["source"][:20]) + list(raw["validation"]["target"]):
        line = eole_arm.to_pieces(tokenizer, text)
        assert "  " not in line and line == line.strip()  # eole splits on single spaces
        assert eole_arm.from_pieces(tokenizer, line) == text
    # specials and pieces our vocabulary lacks drop out of eole's output
    line = eole_arm.to_pieces(tokenizer, raw["validation"]["target"][0])
    assert eole_arm.from_pieces(tokenizer, "<s> " + line + " </s> <unk> notapiece") == raw["validation"]["target"][0]


def test_inputs_use_our_vocabulary_and_truncate_like_our_arm(eole_arm, prepared, tmp_path):
    raw, tokenizer, _ = prepared
    inputs = eole_arm.write_inputs(raw, tokenizer, tmp_path)
    vocab = (tmp_path / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocab == tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    assert vocab[:4] == ["<pad>", "<s>", "</s>", "<unk>"] and inputs["vocab_size"] == len(tokenizer)
    sources = (tmp_path / "train.src").read_text(encoding="utf-8").splitlines()
    targets = (tmp_path / "train.tgt").read_text(encoding="utf-8").splitlines()
    assert len(sources) == len(targets) == len(raw["train"]) == inputs["train_pairs"]
    # shuffled as pairs: each line pair is still a pair of the data
    pairs = set(zip(raw["train"]["source"], raw["train"]["target"]))
    assert all((eole_arm.from_pieces(tokenizer, s), eole_arm.from_pieces(tokenizer, t)) in pairs
               for s, t in zip(sources, targets))
    assert all(piece in set(vocab) for line in sources + targets for piece in line.split(" "))
    assert inputs["target_tokens_per_epoch"] == sum(len(t.split(" ")) + 1 for t in targets)
    long = " ".join(["word"] * 300)
    assert len(eole_arm.to_pieces(tokenizer, long, eole_arm.MAX_PIECES).split(" ")) == 127


def test_schedule_ends_at_the_budget(eole_arm):
    # 1.0 steps per CPU second, 10 s of start-up, a 60-minute budget
    schedule = eole_arm.schedule_for_budget(1.0, 10.0, 3600.0)
    assert schedule["train_steps"] == int(3590 * 1.0 * 0.97)
    assert schedule["warmup_steps"] == 200 and schedule["save_checkpoint_steps"] == schedule["train_steps"] // 25
    short = eole_arm.schedule_for_budget(0.8, 10.0, 120.0)  # a smoke run: warmup a tenth of it
    assert short["warmup_steps"] == short["train_steps"] // 10 >= 1
    with pytest.raises(ValueError, match="no progress"):
        eole_arm.schedule_for_budget(0.0, 10.0, 120.0)


def test_config_has_our_model_size_vocabulary_batch_and_schedule(eole_arm, prepared, tmp_path):
    raw, tokenizer, _ = prepared
    inputs = eole_arm.write_inputs(raw, tokenizer, tmp_path / "inputs")
    schedule = eole_arm.schedule_for_budget(1.2, 8.0, 3000.0)
    config = eole_arm.eole_config(inputs, tmp_path / "model", schedule, overrides={"learning_rate": 2e-3})
    config = yaml.safe_load(yaml.safe_dump(config))  # as eole reads it
    model, training = config["model"], config["training"]
    assert (model["hidden_size"], model["layers"], model["heads"], model["transformer_ff"]) == (256, 3, 4, 1024)
    assert model["embeddings"]["position_encoding_type"].startswith("Sinusoidal")
    assert model["share_embeddings"] and model["share_decoder_embeddings"] and config["share_vocab"]
    assert config["src_vocab"] == config["tgt_vocab"] == inputs["vocab"]
    assert config["src_vocab_size"] == len(tokenizer) and config["pad_token"] == tokenizer.pad_token
    assert config["data"]["corpus_1"]["transforms"] == []
    assert (training["batch_type"], training["batch_size"], training["normalization"]) == ("tokens", 2048, "tokens")
    assert training["label_smoothing"] == 0.1 and training["dropout"] == [0.1] and training["compute_dtype"] == "fp32"
    assert training["optim"] == "adam" and training["adam_beta2"] == 0.998
    assert training["decay_method"] == "cosine" and training["learning_rate"] == 2e-3
    assert training["train_steps"] == int(2992 * 1.2 * 0.97) == schedule["train_steps"]
    assert training["warmup_steps"] == 200 and training["gpu_ranks"] == [] and training["num_workers"] == 0
    assert training["bucket_size"] == len(raw["train"])


LOG = """[2026 INFO] * number of parameters: 7586624
[2026 INFO] Step  8/  400; acc: 4.1; ppl: 6015.78; xent: 8.80; aux: 0.000; mtp: 0.000; attn_ent: 3.113; lr: 8.00e-05; sents:  201; bsz:  996/ 1100/40; 174/192 tok/s;  30 sec;
[2026 INFO] Step 10/  400; acc: 4.1; ppl: 6015.78; xent: 8.70; aux: 0.000; mtp: 0.000; attn_ent: 3.113; lr: 1.00e-04; sents:  201; bsz: 1096/1200/40; 174/192 tok/s;  32 sec;
[2026 INFO] Weighted corpora loaded so far:
[2026 INFO] Step 20/  400; acc: 5.7; ppl: 2342.05; xent: 7.76; aux: 0.000; mtp: 0.000; attn_ent: 3.090; lr: 2.00e-04; sents:  235; bsz: 1175/1300/47; 157/173 tok/s;  69 sec;
"""


def test_log_parsing_counts_steps_tokens_and_rate(eole_arm):
    log = eole_arm.parse_log(LOG)
    assert log["parameters"] == 7586624
    # eole pads step numbers ("Step  8/"): the short ones count too
    assert [(row["step"], row["loss"], row["lr"]) for row in log["rows"]] == [(8, 8.80, 8e-5), (10, 8.70, 1e-4),
                                                                              (20, 7.76, 2e-4)]
    assert log["rows"][-1]["target_tokens"] == 8 * 1100 + 2 * 1200 + 10 * 1300
    assert eole_arm.tokens_through(log["rows"], 15) == 11200 and eole_arm.tokens_through(log["rows"], 5) == 0
    rate, startup = eole_arm.rate_from_calibration(log["rows"][1:], [14.0, 24.0])
    assert rate == pytest.approx(1.0) and startup == pytest.approx(4.0)


def test_cpu_clock_reads_proc(eole_arm):
    busy = subprocess.Popen([sys.executable, "-c", "import time\nend = time.process_time() + 0.3\n"
                             "while time.process_time() < end: pass\ntime.sleep(30)"])
    try:
        import time

        deadline = time.time() + 20
        while eole_arm.cpu_seconds(busy.pid) < 0.25 and time.time() < deadline:
            time.sleep(0.05)
        assert 0.25 <= eole_arm.cpu_seconds(busy.pid) < 5
    finally:
        busy.kill()
        busy.wait()


def test_missing_eole_exits_with_the_install_command(eole_arm, tmp_path):
    with pytest.raises(SystemExit, match="pip install eole==0.6.4 torch==2.13.0"):
        eole_arm.eole_bin_or_exit(tmp_path / "bin" / "eole")


def test_report_includes_the_eole_arm(quality, tmp_path):
    row = {"model_class": "eole transformer", "parameters": 7.6e6, "clock": "cpu", "training_s": 600.0, "steps": 700,
           "epochs": 0.5, "target_tokens": 900000, "target_tokens_per_s": 1500.0, "bleu": 10.0, "chrf": 30.0,
           "decode_s": 50.0, "validation_pairs": 100, "train_pairs": 120, "bleu_signature": "nrefs:1",
           "chrf_signature": "nrefs:1", "settings": {"optim": "adam"}, "losses": [(10, 8.0), (20, 7.0)],
           "machine": {"affinity": [0], "threads": 1, "loadavg_during_training": [1.0, 1.5, 2.0]},
           "samples": [{"source": "a", "output": "b", "reference": "c"}] * 2}
    (tmp_path / "eole").mkdir()
    (tmp_path / "eole" / "result.json").write_text(__import__("json").dumps(row))
    text = quality.write_report(tmp_path, tmp_path / "page.md", data_name="l10n/en_es")
    assert "| eole | eole transformer | 7.60 M | 10.0 CPU min | 700 |" in text and "`l10n/en_es`" in text


EOLE_BIN = os.environ.get("EOLE_BIN", "/work/venv-eole/bin/eole")


@pytest.mark.skipif(not os.path.isfile(EOLE_BIN), reason=f"eole is not installed at {EOLE_BIN} (its own venv; "
                    "see benchmarks/eole_arm.py for the install command)")
def test_eole_accepts_the_config(eole_arm, prepared, tmp_path):
    """eole itself trains 4 steps on the toy corpus with our config and saves a checkpoint (about 20 s)."""
    from pathlib import Path

    raw, tokenizer, _ = prepared
    inputs = eole_arm.write_inputs(raw, tokenizer, tmp_path / "inputs")
    schedule = {"train_steps": 4, "warmup_steps": 1, "save_checkpoint_steps": 2, "keep_checkpoint": 3}
    config = eole_arm.eole_config(inputs, tmp_path / "model", schedule, report_every=2,
                                  overrides={"batch_size": 256})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    core = min(os.sched_getaffinity(0))
    run = eole_arm.run_training(Path(EOLE_BIN), tmp_path / "config.yaml", tmp_path / "model", 120.0, core,
                                tmp_path / "train.log")
    log = eole_arm.parse_log((tmp_path / "train.log").read_text())
    assert not run["stopped_by_budget"] and [c["step"] for c in run["checkpoints"]][-1] == 4
    assert [row["step"] for row in log["rows"]] == [2, 4] and log["parameters"] > 0
