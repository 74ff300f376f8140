"""Model cards built from an output directory: Hub metadata, results equal to eval_results.json, no leaks."""

import json
import re

import pytest
import yaml
from huggingface_hub import ModelCard

from bigmodel_hf.cards import build_model_card, read_run, write_model_card
from bigmodel_hf.cli import main as cli_main
from bigmodel_hf.redaction import find_leaks, known_tokens, local_path_prefixes
from tiny_runs import BLEU_SIGNATURE, CHRF_SIGNATURE, LM_RESULTS, TRANSLATION_RESULTS, make_output_dir

FAKE_TOKEN = "hf_" + "aBcD1234" * 5


@pytest.fixture(scope="module")
def translation_run(tmp_path_factory):
    root, _ = make_output_dir(tmp_path_factory.mktemp("cards") / "translate_run")
    return root


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    root, _ = make_output_dir(tmp_path_factory.mktemp("cards") / "lm_run", encoder_decoder=False)
    return root


def reparsed(card: ModelCard) -> ModelCard:
    """What the Hub (or `ModelCard.load`) reads back from the card text."""
    return ModelCard(str(card))


def metadata_yaml(card: ModelCard) -> dict:
    return yaml.safe_load(str(card).split("---")[1])


def test_from_scratch_translation_metadata(translation_run):
    card = reparsed(build_model_card(translation_run, repo_id="alice/bigmodel-en-es"))
    data = card.data
    assert data.license == "apache-2.0"
    assert data.language == ["en", "es"]
    assert data.library_name == "transformers"
    assert data.pipeline_tag == "translation"
    assert {"bigmodel_hf", "translation"} <= set(data.tags)
    assert data.model_name == "bigmodel-en-es"
    raw = metadata_yaml(card)
    assert "base_model" not in raw  # from scratch: no base model, and no empty link to one
    assert "datasets" not in raw  # the toy corpus is not a Hub dataset
    assert raw["model-index"][0]["name"] == "bigmodel-en-es"


def test_model_index_equals_eval_results(translation_run):
    results = reparsed(build_model_card(translation_run)).data.eval_results
    measured = json.loads((translation_run / "eval_results.json").read_text())
    assert measured == TRANSLATION_RESULTS
    got = {(r.dataset_split, r.metric_type): r for r in results}
    # 200 of the 500 cleaned validation pairs were scored: datasets' slice syntax says so; test was whole.
    assert set(got) == {("validation[:200]", "bleu"), ("validation[:200]", "chrf"), ("test", "bleu"), ("test", "chrf")}
    for split, label in (("validation", "validation[:200]"), ("test", "test")):
        assert got[label, "bleu"].metric_value == round(measured[split]["bleu"], 2)
        assert got[label, "chrf"].metric_value == round(measured[split]["chrf"], 2)
        assert got[label, "bleu"].metric_config == BLEU_SIGNATURE
        assert got[label, "chrf"].metric_config == CHRF_SIGNATURE
        assert got[label, "bleu"].metric_name == "sacreBLEU"
    assert all(r.task_type == "translation" and r.dataset_name == "toy_en_es" for r in results)


def test_fine_tuned_card_names_its_base_model_and_hub_dataset(tmp_path):
    root, _ = make_output_dir(tmp_path / "ft", model_name_or_path="Helsinki-NLP/opus-mt-en-es",
                              dataset_name="wmt/wmt14", dataset_config_name="es-en")
    card = reparsed(build_model_card(root))
    assert card.data.base_model == "Helsinki-NLP/opus-mt-en-es"
    assert card.data.datasets == ["wmt/wmt14"]
    assert {r.dataset_type for r in card.data.eval_results} == {"wmt/wmt14"}
    assert {r.dataset_config for r in card.data.eval_results} == {"es-en"}
    assert "fine-tuned from `Helsinki-NLP/opus-mt-en-es`" in card.text
    assert "the tokenizer of `Helsinki-NLP/opus-mt-en-es`" in card.text


def test_fine_tuned_from_a_local_folder_links_nothing_and_names_only_the_folder(tmp_path):
    base = tmp_path / "private" / "my-base-model"
    base.mkdir(parents=True)
    root, _ = make_output_dir(tmp_path / "ft", model_name_or_path=str(base), train_file=str(tmp_path / "train.jsonl"),
                              dataset_name=None)
    card = build_model_card(root)
    assert "base_model" not in metadata_yaml(card) and "datasets" not in metadata_yaml(card)
    assert "fine-tuned from `my-base-model`" in card.text
    assert str(tmp_path) not in str(card)


def test_card_has_no_local_paths_or_tokens(translation_run, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    text = str(build_model_card(translation_run))
    assert str(translation_run) in (translation_run / "run_config.yaml").read_text()  # the source had one
    assert find_leaks(text.encode(), known_tokens(), local_path_prefixes(translation_run)) == []
    assert not re.search(r"(?m)^output_dir: /", text)
    assert "output_dir: translate_run" in text


def test_push_settings_stay_out_of_the_published_config(tmp_path):
    root, _ = make_output_dir(tmp_path / "run", push_to_hub=True, hub_model_id="alice/x", hub_private_repo=True)
    config_block = build_model_card(root).text.split("```yaml")[1]
    assert "push_to_hub" not in config_block and "hub_" not in config_block
    assert "learning_rate: 0.0007" in config_block


def test_body_reports_model_training_results_and_usage(translation_run):
    text = build_model_card(translation_run, repo_id="alice/bigmodel-en-es").text
    run = read_run(translation_run)
    assert f"{run.num_parameters:,} parameters" in text
    assert "2 encoder + 2 decoder layers" in text and "post-norm LayerNorm" in text
    assert "trained from scratch from the `vaswani-small` preset" in text
    assert "train: 20 rows after cleaning (21 before)" in text
    assert "BPE" in text and "trained on the training split" in text
    assert "learning rate: 0.0007" in text
    assert "1 process on cpu, 2 CPU cores; wall-clock 1 min 15 s in all, training 1 min 2 s" in text
    assert "| validation[:200] | 200 | 12.35 | 40.12 | 0.50 | 4 |" in text
    assert "![Training and validation loss and validation BLEU by step](training_curves.png)" in text
    assert 'AutoModelForSeq2SeqLM.from_pretrained("alice/bigmodel-en-es", trust_remote_code=True)' in text
    assert "python recipes/translate.py --config run_config.yaml" in text
    assert "synthetic English→Spanish corpus" in text  # the limitation of the toy data
    assert "validation split also chose the checkpoint" in text


def test_parameter_count_counts_tied_weights_once(translation_run):
    from bigmodel_hf import BigModelForSeq2SeqLM

    model = BigModelForSeq2SeqLM.from_pretrained(translation_run)
    assert read_run(translation_run).num_parameters == model.num_parameters()


def test_text_generation_card(lm_run):
    card = reparsed(build_model_card(lm_run, repo_id="alice/bigmodel-lm"))
    assert card.data.pipeline_tag == "text-generation"
    assert {"bigmodel_hf", "text-generation"} <= set(card.data.tags)
    assert "base_model" not in metadata_yaml(card)
    [result] = card.data.eval_results
    assert (result.metric_type, result.dataset_split) == ("perplexity", "validation")
    assert result.metric_value == round(LM_RESULTS["validation"]["perplexity"], 3)
    assert "decoder-only, 2 layers" in card.text and "RMSNorm" in card.text
    assert "| validation | 35.123 | 3.5589 | 4,096 |" in card.text
    assert 'AutoModelForCausalLM.from_pretrained("alice/bigmodel-lm", trust_remote_code=True)' in card.text
    assert "Bible chapters" in card.text  # lm_web's limitation


def test_card_command_writes_readme_from_the_folder_alone(translation_run, capsys):
    cli_main(["card", str(translation_run), "--hub_model_id", "alice/bigmodel-en-es"])
    assert "README.md" in capsys.readouterr().out
    written = (translation_run / "README.md").read_text("utf-8")
    assert written == str(build_model_card(translation_run, repo_id="alice/bigmodel-en-es"))
    assert write_model_card(translation_run) == translation_run / "README.md"


def test_card_command_options_reach_the_metadata(lm_run):
    cli_main(["card", str(lm_run), "--language", "en", "--base_model", "HuggingFaceTB/SmolLM2-135M", "--license", "mit"])
    card = ModelCard.load(lm_run / "README.md")
    assert (card.data.language, card.data.base_model, card.data.license) == (["en"], "HuggingFaceTB/SmolLM2-135M", "mit")
    assert "fine-tuned from `HuggingFaceTB/SmolLM2-135M`" in card.text


def test_card_of_a_folder_without_a_model_fails_clearly(tmp_path):
    with pytest.raises(SystemExit, match="no config.json"):
        cli_main(["card", str(tmp_path)])


def test_fine_tuned_stock_transformers_model_needs_no_remote_code(tmp_path):
    from transformers import MarianConfig, MarianMTModel

    from bigmodel_hf.hub import plan_upload

    root, _ = make_output_dir(tmp_path / "run", model_name_or_path="Helsinki-NLP/opus-mt-en-es")
    for path in [*root.glob("*.py"), *root.glob("*.safetensors"), root / "config.json"]:
        path.unlink()
    config = MarianConfig(vocab_size=80, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                          decoder_attention_heads=2, encoder_ffn_dim=16, decoder_ffn_dim=16, max_position_embeddings=64,
                          pad_token_id=0, decoder_start_token_id=0)
    MarianMTModel(config).save_pretrained(root)
    card = reparsed(build_model_card(root, repo_id="alice/opus-ft"))
    assert card.data.base_model == "Helsinki-NLP/opus-mt-en-es"
    assert "custom_code" not in card.data.tags
    assert "`MarianMTModel`, transformers' own `marian` architecture" in card.text
    assert 'AutoModelForSeq2SeqLM.from_pretrained("alice/opus-ft")' in card.text
    assert "trust_remote_code" not in card.text.split("## Limitations")[0]
    assert not any(f.path_in_repo.endswith(".py") for f in plan_upload(root))


@pytest.mark.parametrize("prefix, shown", [
    ("translate English to Spanish: ", "translate English to Spanish: "),
    ("/home/alice/corpora/prefix.txt", "prefix.txt"),
    ("C:\\Users\\alice\\corpora\\prefix.txt", "prefix.txt"),
    ("/mnt/c/Users/alice/prefix/", "prefix"),
    ("see {root}/x: ", "see <local>/x: "),
])
def test_the_usage_snippet_shows_the_source_prefix_redacted_like_run_config_yaml(tmp_path, hub_free, prefix, shown):
    root, _ = make_output_dir(tmp_path / "run", source_prefix=prefix.format(root=tmp_path / "run"))
    (root / "samples.jsonl").write_text(json.dumps({"step": 2, "input": prefix.format(root=root) + "a red house"}) + "\n")
    text = build_model_card(root, repo_id="someone/x").text
    snippet = text.split("## How to use")[1].split("```python")[1].split("```")[0]
    assert f"prefix = {json.dumps(shown)}" in snippet
    assert 'tokenizer([prefix + text for text in ["a red house"]]' in snippet  # the logged input, prefix once
    assert "alice" not in text and str(root) not in text
    published = yaml.safe_load(text.split("```yaml")[1].split("```")[0])
    assert published["source_prefix"] == shown  # the same redaction as the published run_config.yaml
    assert find_leaks(text.encode(), known_tokens(), local_path_prefixes(root)) == []


@pytest.fixture
def hub_free(monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)


def test_a_card_without_a_prefix_shows_the_plain_snippet(translation_run):
    snippet = build_model_card(translation_run).text.split("## How to use")[1]
    assert "prefix" not in snippet.split("```bash")[0]


def test_samples_are_read_as_json_lines_split_at_newlines_only(tmp_path):
    """With --no_clean_data, a U+2028 inside a validation sentence crashed the card (`splitlines()`)."""
    root, _ = make_output_dir(tmp_path / "run")
    sentence = "the cat\u2028sees\x85the dog\u2029"
    (root / "samples.jsonl").write_text("".join(json.dumps({"step": s, "input": sentence}, ensure_ascii=False) + "\n"
                                                for s in (1, 2)), "utf-8")
    assert "\u2028" in (root / "samples.jsonl").read_text("utf-8")  # written raw, as ensure_ascii=False does
    assert read_run(root).samples[0]["input"] == sentence
    assert json.dumps([sentence], ensure_ascii=False) in build_model_card(root).text
    cli_main(["card", str(root)])
    (root / "samples.jsonl").write_text('{"step": 1}\n{"step": \n', "utf-8")
    with pytest.raises(SystemExit, match=r"samples.jsonl: line 2, column \d+: not valid JSON"):
        cli_main(["card", str(root)])


def test_no_file_in_the_package_is_read_with_splitlines():
    """One reader for JSON Lines (`data.jsonl.read_json_lines`); `read_text().splitlines()` cuts records at U+2028."""
    import ast
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "bigmodel_hf"
    offenders = [f"{path.name}:{node.lineno}" for path in package.rglob("*.py")
                 for node in ast.walk(ast.parse(path.read_text("utf-8")))
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                 and node.func.attr == "splitlines" and isinstance(node.func.value, ast.Call)
                 and isinstance(node.func.value.func, ast.Attribute)
                 and node.func.value.func.attr in ("read_text", "read")]
    assert offenders == []
