"""Stock multilingual checkpoints (M2M100, NLLB, mBART-50) fine-tuned on several directions at once: each
row's own language tokens, the first decoded token forced per direction, LoRA. Tiny random checkpoints
built in `stock_checkpoints` (no downloads)."""

import json
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from bigmodel_hf.languages import parse_language_pairs, route_translations
from bigmodel_hf.training import ConfigError
from bigmodel_hf.training.stock_multilingual import (
    checkpoint_code, checkpoint_family, stock_family, target_token_id, tokenize_by_direction,
)
from bigmodel_hf.training.translation import parse_translation_config, run_translation
from stock_checkpoints import FAMILIES, ROWS, build_checkpoint, write_rows
from tiny_runs import flags

PAIRS = parse_language_pairs("en-es,de-en")
# what the encoder input starts with and the labels start with, per family, for each data code
OWN_CODES = {"m2m100": {"en": "__en__", "es": "__es__", "de": "__de__"},
             "nllb": {"en": "eng_Latn", "es": "spa_Latn", "de": "deu_Latn"},
             "mbart50": {"en": "en_XX", "es": "es_XX", "de": "de_DE"}}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stock")
    return {family: build_checkpoint(family, root / family) for family in FAMILIES}


def routed_rows() -> Dataset:
    rows = Dataset.from_dict({"translation": ROWS})
    return rows.map(route_translations, batched=True, fn_kwargs={"pairs": PAIRS}, remove_columns=["translation"])


@pytest.mark.parametrize("family", FAMILIES)
def test_each_row_carries_its_own_source_and_target_language_tokens(checkpoints, family):
    tokenizer = AutoTokenizer.from_pretrained(checkpoints[family])
    assert stock_family(tokenizer) == checkpoint_family(str(checkpoints[family])) == family
    before = tokenizer.src_lang, tokenizer.tgt_lang
    routed = routed_rows()
    tokenized = tokenize_by_direction(routed, tokenizer, max_source_length=32, max_target_length=32)
    assert len(tokenized) == len(routed) == 2 * len(ROWS) and tokenized.column_names == [
        "input_ids", "attention_mask", "labels"]
    codes = OWN_CODES[family]
    directions = set()
    for row, encoded in zip(routed, tokenized):
        source_token, target_token = codes[row["source_lang"]], codes[row["target_lang"]]
        directions.add((row["source_lang"], row["target_lang"]))
        assert tokenizer.convert_ids_to_tokens(encoded["input_ids"][0]) == source_token
        assert tokenizer.convert_ids_to_tokens(encoded["labels"][0]) == target_token
        assert encoded["input_ids"][-1] == encoded["labels"][-1] == tokenizer.eos_token_id
        # the text between is the row's own, as the tokenizer encodes it alone
        assert tokenizer.decode(encoded["labels"], skip_special_tokens=True) == row["target"]
        assert tokenizer.decode(encoded["input_ids"], skip_special_tokens=True) == row["source"]
    assert directions == {("en", "es"), ("de", "en")}
    assert (tokenizer.src_lang, tokenizer.tgt_lang) == before  # the tokenizer is left as it was found


def test_the_data_codes_map_to_each_family_and_an_unknown_one_is_one_line(checkpoints):
    tokenizers = {family: AutoTokenizer.from_pretrained(checkpoints[family]) for family in FAMILIES}
    assert [checkpoint_code(tokenizers[f], "pt_BR") for f in FAMILIES] == ["pt", "por_Latn", "pt_XX"]
    assert [checkpoint_code(tokenizers[f], "zh_CN") for f in FAMILIES] == ["zh", "zho_Hans", "zh_CN"]
    assert [checkpoint_code(tokenizers[f], "ja") for f in FAMILIES] == ["ja", "jpn_Jpan", "ja_XX"]
    assert checkpoint_code(tokenizers["nllb"], "ron_Latn") == "ron_Latn"  # its own spelling is taken as is
    assert target_token_id(tokenizers["m2m100"], "pt_BR") == tokenizers["m2m100"].get_lang_id("pt")
    with pytest.raises(ConfigError) as error:
        checkpoint_code(tokenizers["mbart50"], "tlh")
    message = str(error.value)
    assert "\n" not in message and "'tlh'" in message and "mBART-50" in message and "en_XX" in message


# ---------------------------------------------------------------- through the recipe


def stock_run(checkpoint: Path, data: Path, output_dir: Path, **overrides) -> list[str]:
    """A few steps of the translation recipe on a stock checkpoint: seconds, not a quality run."""
    settings = dict(model_name_or_path=checkpoint, train_file=data, validation_file=data, clean_data="false",
                    output_dir=output_dir, max_steps=6, warmup_steps=0, learning_rate=1e-2,
                    per_device_train_batch_size=8, eval_strategy="no", save_strategy="no", num_beams=1,
                    generation_max_length=12, max_source_length=32, max_target_length=32, num_sample_outputs=0,
                    plot="false", seed=0, report_to="none")
    return flags(**{**settings, **overrides})


@pytest.fixture(scope="module")
def l10n_file(tmp_path_factory) -> Path:
    return write_rows(tmp_path_factory.mktemp("data") / "en_es_de.jsonl")


@pytest.mark.parametrize("family", ["m2m100", "mbart50"])
def test_one_pair_fine_tune_saves_the_direction_as_run_translation_does(checkpoints, l10n_file, tmp_path, family):
    results = run_translation(parse_translation_config(stock_run(
        checkpoints[family], l10n_file, tmp_path, source_lang="de", target_lang="es")))
    assert results["training"]["steps"] == 6 and results["validation"]["num_samples"] == len(ROWS)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    model = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    # transformers alone then translates de -> es: the source token by default, the target forced
    assert model.generation_config.forced_bos_token_id == target_token_id(tokenizer, "es")
    assert tokenizer.convert_ids_to_tokens(tokenizer("öffne")["input_ids"][0]) == OWN_CODES[family]["de"]
    generated = model.generate(**tokenizer(["öffne die Datei"], return_tensors="pt"), max_new_tokens=3)
    assert generated[0, 1] == target_token_id(tokenizer, "es")


def test_lora_on_a_stock_checkpoint_trains_only_the_adapters(checkpoints, l10n_file, tmp_path):
    peft = pytest.importorskip("peft")  # the [lora] extra, in the dev extras
    base = AutoModelForSeq2SeqLM.from_pretrained(checkpoints["m2m100"])
    results = run_translation(parse_translation_config(stock_run(
        checkpoints["m2m100"], l10n_file, tmp_path, source_lang="en", target_lang="de", use_peft="true",
        lora_r=4, lora_alpha=8, lora_dropout=0.0)))
    assert results["training"]["steps"] == 6
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert saved["task_type"] == "SEQ_2_SEQ_LM"
    # unset lora_target_modules: every attention projection of M2M100 (out_proj, not Llama's o_proj)
    assert set(saved["target_modules"]) == {"q_proj", "k_proj", "v_proj", "out_proj"}
    assert not (tmp_path / "model.safetensors").exists()
    tuned = peft.AutoPeftModelForSeq2SeqLM.from_pretrained(tmp_path)
    lora = {name: p for name, p in tuned.named_parameters() if "lora_" in name}
    assert lora and any(p.abs().sum() > 0 for name, p in lora.items() if "lora_B" in name)  # B starts at zero
    base_weights = base.state_dict()
    for name, tensor in tuned.get_base_model().state_dict().items():
        if "lora_" not in name:  # every weight of the checkpoint itself is as it was
            key = name.replace(".base_layer", "")
            torch.testing.assert_close(tensor, base_weights[key], rtol=0, atol=0, msg=name)
    assert AutoTokenizer.from_pretrained(tmp_path).src_lang == "en"


def test_the_collator_gives_m2m100_its_decoder_inputs_as_the_model_would_make_them(checkpoints):
    from transformers.models.m2m_100.modeling_m2m_100 import shift_tokens_right

    from bigmodel_hf.batching import make_seq2seq_collator

    tokenizer = AutoTokenizer.from_pretrained(checkpoints["m2m100"])
    model = AutoModelForSeq2SeqLM.from_pretrained(checkpoints["m2m100"])
    assert not hasattr(model, "prepare_decoder_input_ids_from_labels")  # why the collator makes them
    tokenized = tokenize_by_direction(routed_rows(), tokenizer)
    batch = make_seq2seq_collator(tokenizer, model)([tokenized[i] for i in range(5)])
    expected = shift_tokens_right(batch["labels"], model.config.pad_token_id, model.config.decoder_start_token_id)
    assert torch.equal(batch["decoder_input_ids"], expected)
    # so a Trainer that takes the labels out (label smoothing) still computes the same logits
    with torch.no_grad():
        with_labels = model(**batch).logits
        without = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    torch.testing.assert_close(with_labels, without, rtol=0, atol=0)


# ---------------------------------------------------------------- bad inputs (docs/bad_inputs.md, MS rows)


def recipe_exit(argv) -> str:
    """What `recipes/translate.py` prints when it stops (its SystemExit message)."""
    import runpy

    main = runpy.run_path(str(Path(__file__).resolve().parents[1] / "recipes" / "translate.py"))["main"]
    with pytest.raises(SystemExit) as stop:
        main([str(item) for item in argv])
    return str(stop.value.code)


@pytest.mark.parametrize("row, overrides, expected", [
    ("MS1", dict(target_lang="tlh"), "language 'tlh' is not one of this mBART-50 checkpoint's languages"),
    ("MS1-pairs", dict(language_pairs="en-es,tlh-en"), "language 'tlh' is not one of this mBART-50 checkpoint's"),
    ("MS2", dict(model_name_or_path="", use_peft="true"),
     "Invalid settings: use_peft trains adapters on a pretrained checkpoint: give --model_name_or_path"),
    ("MS3", dict(use_peft="true", lora_target_modules="o_proj"),
     "lora_target_modules ['o_proj'] name no module of this MBartForConditionalGeneration; its linear layers"),
    ("MS4", dict(bpe_dropout=0.1), "--bpe_dropout re-encodes text without the language tokens that mBART-50"),
    ("MS5", dict(streaming="true"), "--streaming tokenises without the language tokens that mBART-50 checkpoints need"),
])
def test_bad_inputs_for_stock_checkpoints_stop_with_one_line(checkpoints, l10n_file, tmp_path, row, overrides,
                                                            expected):
    if row.startswith("MS1"):  # data in a language the checkpoint lacks
        l10n_file = write_rows(tmp_path / "tlh.jsonl", [{"en": r["en"], "es": r["es"], "tlh": r["de"]} for r in ROWS])
    argv = stock_run(checkpoints["mbart50"], l10n_file, tmp_path / "out", **{"source_lang": "en",
                                                                          "target_lang": "es", **overrides})
    if overrides.get("model_name_or_path") == "":  # left out altogether
        at = argv.index("--model_name_or_path")
        del argv[at:at + 2]
    message = recipe_exit(argv)
    assert message.startswith("translate.py: ") and expected in message and "\n" not in message, message
    assert not (tmp_path / "out" / "model.safetensors").exists() and not (tmp_path / "out" / "checkpoint-1").exists()


@pytest.mark.parametrize("family, lora", [(family, False) for family in FAMILIES] + [("mbart50", True)],
                         ids=[*FAMILIES, "mbart50-lora-merged"])
def test_two_pairs_in_one_run_each_decoded_from_its_own_target_token(checkpoints, l10n_file, tmp_path, family, lora,
                                                                      monkeypatch):
    tokenizer = AutoTokenizer.from_pretrained(checkpoints[family])
    source_token = {code: tokenizer.convert_tokens_to_ids(token) for code, token in OWN_CODES[family].items()}
    target_of = {source_token["en"]: target_token_id(tokenizer, "es"),
                 source_token["de"]: target_token_id(tokenizer, "en")}
    model_class = type(AutoModelForSeq2SeqLM.from_pretrained(checkpoints[family]))
    seen = []  # (source-language token of each input row, its first generated token), every generate() call
    original = model_class.generate

    def recording_generate(self, *args, **kwargs):
        generated = original(self, *args, **kwargs)
        inputs = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
        seen.extend(zip(inputs[:, 0].tolist(), generated[:, 1].tolist()))
        return generated

    monkeypatch.setattr(model_class, "generate", recording_generate)
    results = run_translation(parse_translation_config(stock_run(
        checkpoints[family], l10n_file, tmp_path, language_pairs="en-es,de-en", eval_strategy="steps",
        eval_steps=3, load_best_model_at_end="false",
        **(dict(use_peft="true", merge_lora="true", lora_r=4, lora_dropout=0.0) if lora else {}),
        **(dict(max_tokens=160) if family == "nllb" else {}))))  # NLLB: token-budget batches, pairs sampled at T=5
    if family == "nllb":  # batches of one direction each, drawn from both
        mix = json.loads((tmp_path / "run_info.json").read_text())["language_mix"]
        assert set(mix) == {"en-es", "de-en"} and all(m["batches"] > 0 for m in mix.values())
    validation = results["validation"]
    assert set(validation["directions"]) == {"en-es", "de-en"}
    assert all(validation["directions"][d]["num_samples"] == len(ROWS) for d in ("en-es", "de-en"))
    # during training and at the end, each row decoded from its direction's target token
    assert {source for source, _ in seen} == {source_token["en"], source_token["de"]}
    assert all(first == target_of[source] for source, first in seen), seen
    # the run trained two directions; the saved model forces none by default (the caller picks one)
    assert AutoModelForSeq2SeqLM.from_pretrained(tmp_path).generation_config.forced_bos_token_id is None
    from huggingface_hub import ModelCard

    card = ModelCard.load(tmp_path / "README.md").data.to_dict()
    assert {r["task"]["name"] for r in card["model-index"][0]["results"]} == {"Translation en-es",
                                                                              "Translation de-en"}


@pytest.mark.shared_data
def test_the_tokenization_benchmark_runs_and_both_ways_agree(shared_data):
    from benchmark_scripts import load_benchmark

    results = load_benchmark("stock_tokenization").main(["--rows", "3"])  # asserts equal ids itself
    assert [r["rows"] for r in results] == [36, 36]  # 3 messages x 6 sets x 2 directions
