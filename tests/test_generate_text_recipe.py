"""recipes/generate_text.py end to end on a tiny corpus: from scratch (perplexity falls), output layout and
reload, fine-tuning tiny Llama and GPT-2 checkpoints, conversion on the fly, LoRA adapters and merged
LoRA, resume, WSD schedule, options, config errors, the 2-process run, and the real SmolLM2 when present."""

import json
import math
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from bigmodel_hf.batching import pack_lm_blocks
from bigmodel_hf.metrics import token_weighted_perplexity
from bigmodel_hf.tokenization import train_lm_tokenizer
from bigmodel_hf.training.checkpoints import list_checkpoints
from bigmodel_hf.toy_data import toy_translation_pairs
from bigmodel_hf.training.lora import load_lora_result
from bigmodel_hf.training.text_generation import parse_text_generation_config, run_text_generation
from tiny_runs import flags
from two_processes import run_in_two_cpu_processes

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "generate_text.py"
SMOLLM2 = ROOT / ".cache" / "smollm2-135m"
TINY_MODEL = "d_model=64,ffn_dim=128,decoder_layers=1,num_attention_heads=2,num_key_value_heads=1,dropout=0.0"
BLOCK = 32




def tiny_run(corpus: Path, output_dir: Path, **overrides) -> list[str]:
    """A run that fits the tiny corpus in seconds; validation is the training text."""
    settings = dict(
        train_file=corpus, validation_file=corpus, output_dir=output_dir, config_overrides=TINY_MODEL,
        vocab_size=300, tokenizer_min_frequency=1, block_size=BLOCK, max_steps=120, warmup_steps=10,
        learning_rate=5e-3, per_device_train_batch_size=8, eval_steps=60, save_steps=60, logging_steps=10,
        num_sample_outputs=2, max_new_tokens=8, seed=0,
    )
    return flags(**{**settings, **overrides})


QUICK = dict(max_steps=6, warmup_steps=1, eval_steps=6, save_steps=6, report_to="none", num_sample_outputs=0,
             learning_rate=1e-3)


def run(argv) -> dict:
    return run_text_generation(parse_text_generation_config(argv))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """40 documents of 4 sentences from the toy grammar (a few dozen words: quick to learn)."""
    sentences = [row["en"] for row in toy_translation_pairs(160, seed=3)]
    path = tmp_path_factory.mktemp("corpus") / "tiny.jsonl"
    path.write_text("".join(json.dumps({"text": " ".join(sentences[i:i + 4])}) + "\n" for i in range(0, 160, 4)))
    return path


def texts_of(corpus: Path) -> list[str]:
    return [json.loads(line)["text"] for line in corpus.read_text().splitlines()]


@torch.no_grad()
def perplexity_of(model, tokenizer, texts: list[str], block_size: int = BLOCK, packing: str = "concat") -> float:
    """Independent of the recipe: concatenate documents (EOS after each), cut blocks, score them one at a time;
    with `packing="documents"` each block's document pieces are scored alone (a piece's first token unscored)."""
    stream, piece_of = [], []
    for number, text in enumerate(texts):
        ids = tokenizer(text)["input_ids"]
        ids = ids if ids and ids[-1] == tokenizer.eos_token_id else ids + [tokenizer.eos_token_id]
        stream += ids
        piece_of += [number] * len(ids)
    model.eval()
    nll, count = 0.0, 0
    for start in range(0, len(stream), block_size):
        block, owners = stream[start:start + block_size], piece_of[start:start + block_size]
        pieces = [block] if packing == "concat" else [
            [token for token, owner in zip(block, owners) if owner == number] for number in dict.fromkeys(owners)]
        for piece in pieces:
            if len(piece) < 2:
                continue
            ids = torch.tensor([piece])
            logits = model(input_ids=ids).logits[0, :-1].float()
            nll += F.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
            count += ids.shape[1] - 1
    return math.exp(nll / count)


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("run")
    return output_dir, run(tiny_run(corpus, output_dir))


def test_from_scratch_perplexity_falls_well_below_its_start(trained):
    _, results = trained
    validation = results["validation"]
    assert validation["perplexity_at_start"] > 100  # about the vocabulary size: an untrained model
    assert validation["perplexity"] < validation["perplexity_at_start"] / 10
    assert validation["nll"] == pytest.approx(math.log(validation["perplexity"]))


def test_output_directory_layout(trained):
    output_dir, results = trained
    config = json.loads((output_dir / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"].endswith("BigModelForCausalLM")
    assert config["is_encoder_decoder"] is False
    for name in ["model.safetensors", "modeling_bigmodel.py", "configuration_bigmodel.py", "tokenizer.json",
                 "training_curves.png", "run_info.json"]:
        assert (output_dir / name).is_file(), name
    generation = json.loads((output_dir / "generation_config.json").read_text())
    assert generation["do_sample"] and generation["max_new_tokens"] == 8 and generation["top_p"] == 0.95
    assert json.loads((output_dir / "eval_results.json").read_text()) == json.loads(json.dumps(results))
    assert list((output_dir / "runs").rglob("events.out.tfevents*")), "TensorBoard is on by default"
    samples = [json.loads(line) for line in (output_dir / "samples.jsonl").read_text().splitlines()]
    assert {row["step"] for row in samples} == {60, 120} and all(row["output"] for row in samples)
    assert len((output_dir / "generations" / "validation.txt").read_text().splitlines()) == 2
    resolved = yaml.safe_load((output_dir / "run_config.yaml").read_text())
    assert resolved["max_steps"] == 120 and resolved["preset"] == "modern-small"
    card = (output_dir / "README.md").read_text("utf-8")
    assert "pipeline_tag: text-generation" in card and f"value: {round(results['validation']['perplexity'], 3)}" in card
    validation = results["validation"]
    assert f"validation: {validation['blocks']:,} blocks of {BLOCK} tokens" in card and "after cleaning" not in card


def test_reloaded_model_scores_the_reported_perplexity(trained, corpus):
    output_dir, results = trained
    model = AutoModelForCausalLM.from_pretrained(output_dir)
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    validation = results["validation"]
    assert perplexity_of(model, tokenizer, texts_of(corpus)) == pytest.approx(validation["perplexity"], rel=1e-4)
    stream_tokens = sum(len(tokenizer(t)["input_ids"]) for t in texts_of(corpus))  # each text ends with EOS
    assert validation["tokens"] == stream_tokens - validation["blocks"]  # every token scored except block starts


def test_documents_packing_scores_each_document_piece_alone(corpus, tmp_path):
    results = run(tiny_run(corpus, tmp_path, packing="documents", **{**QUICK, "max_steps": 30, "eval_steps": 30,
                                                                     "save_steps": 30, "learning_rate": 5e-3}))
    model, tokenizer = AutoModelForCausalLM.from_pretrained(tmp_path), AutoTokenizer.from_pretrained(tmp_path)
    validation = results["validation"]
    # each document piece of a block scored alone, its first token unscored; not what concat blocks give
    assert perplexity_of(model, tokenizer, texts_of(corpus), packing="documents") == pytest.approx(
        validation["perplexity"], rel=1e-4)
    assert perplexity_of(model, tokenizer, texts_of(corpus)) != pytest.approx(validation["perplexity"], rel=1e-4)
    lengths = [len(tokenizer(t)["input_ids"]) for t in texts_of(corpus)]  # each text ends with EOS
    starts = {0} | set(np.cumsum(lengths)[:-1].tolist()) | set(range(0, sum(lengths), BLOCK))
    assert validation["tokens"] == sum(lengths) - len(starts)  # every token scored except piece starts


def test_resume_continues_from_the_last_checkpoint(corpus, tmp_path):
    quick = dict(eval_strategy="no", load_best_model_at_end="false", save_steps=10, report_to="none",
                 num_sample_outputs=0)
    run(tiny_run(corpus, tmp_path, max_steps=20, **quick))
    first_state = json.loads((tmp_path / "checkpoint-20" / "trainer_state.json").read_text())
    results = run(tiny_run(corpus, tmp_path, max_steps=30, resume_from_checkpoint="last", **quick))
    state = json.loads((tmp_path / "checkpoint-30" / "trainer_state.json").read_text())
    assert state["global_step"] == 30 and state["log_history"][0] == first_state["log_history"][0]
    assert "perplexity_at_start" not in results["validation"]  # a resumed run does not start from scratch


@pytest.fixture(scope="module")
def tiny_llama(corpus, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("llama")
    tokenizer = train_lm_tokenizer(texts_of(corpus), vocab_size=300, min_frequency=1)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def llama_run(corpus, tiny_llama, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("llama_run")
    return output_dir, run(tiny_run(corpus, output_dir, model_name_or_path=tiny_llama, **QUICK))


def test_fine_tunes_a_tiny_llama(llama_run):
    output_dir, results = llama_run
    assert results["validation"]["perplexity"] < results["validation"]["perplexity_at_start"]
    assert json.loads((output_dir / "config.json").read_text())["model_type"] == "llama"
    assert not (output_dir / "tokenizer").exists()  # the checkpoint's tokenizer, not a new one


def test_converted_llama_starts_at_the_same_perplexity(corpus, tiny_llama, llama_run, tmp_path):
    _, llama_results = llama_run
    results = run(tiny_run(corpus, tmp_path, model_name_or_path=tiny_llama, convert_to_bigmodel="true", **QUICK))
    start = llama_results["validation"]["perplexity_at_start"]
    assert results["validation"]["perplexity_at_start"] == pytest.approx(start, rel=1e-5)
    assert results["validation"]["perplexity"] < start
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "bigmodel" and "AutoModelForCausalLM" in config["auto_map"]


def test_fine_tunes_a_tiny_gpt2(corpus, tmp_path):
    tokenizer = train_lm_tokenizer(texts_of(corpus), vocab_size=300, min_frequency=1)
    tokenizer.pad_token = None  # like GPT-2's own tokenizer: the recipe must supply one
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=64,
                        bos_token_id=1, eos_token_id=2)
    GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    tokenizer.save_pretrained(tmp_path / "gpt2")
    results = run(tiny_run(corpus, tmp_path / "out", model_name_or_path=tmp_path / "gpt2", packing="documents",
                           **{**QUICK, "num_sample_outputs": 1}))  # GPT-2 passes the packed-documents probe
    assert results["validation"]["perplexity"] < results["validation"]["perplexity_at_start"]
    assert json.loads((tmp_path / "out" / "config.json").read_text())["model_type"] == "gpt2"


def test_lora_adapters_train_only_adapters_and_load_back(corpus, tiny_llama, tmp_path):
    results = run(tiny_run(corpus, tmp_path, model_name_or_path=tiny_llama, use_peft="true", lora_r=4,
                           **{**QUICK, "learning_rate": 1e-2}))
    assert (tmp_path / "adapter_config.json").is_file() and not (tmp_path / "model.safetensors").exists()
    assert json.loads((tmp_path / "adapter_config.json").read_text())["target_modules"]
    model = load_lora_result(tmp_path)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    tuned = dict(model.get_base_model().named_parameters())
    for name, weight in base.named_parameters():  # the base weights are untouched: only adapters trained
        assert torch.equal(tuned[name.replace("proj.weight", "proj.base_layer.weight")
                                 if any(t in name for t in ("q_proj", "k_proj", "v_proj", "o_proj")) else name], weight)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    validation = results["validation"]
    assert validation["perplexity"] < validation["perplexity_at_start"]
    assert perplexity_of(model, tokenizer, texts_of(corpus)) == pytest.approx(validation["perplexity"], rel=1e-4)


def test_lora_run_resumes_from_its_adapter_checkpoint(corpus, tiny_llama, tmp_path):
    quick = {**QUICK, "eval_strategy": "no", "load_best_model_at_end": "false", "save_steps": 3}
    run(tiny_run(corpus, tmp_path, model_name_or_path=tiny_llama, use_peft="true", **{**quick, "max_steps": 3}))
    assert (tmp_path / "checkpoint-3" / "adapter_model.safetensors").is_file()
    first_state = json.loads((tmp_path / "checkpoint-3" / "trainer_state.json").read_text())
    run(tiny_run(corpus, tmp_path, model_name_or_path=tiny_llama, use_peft="true", resume_from_checkpoint="last",
                 **{**quick, "max_steps": 6}))
    state = json.loads((tmp_path / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6 and (tmp_path / "adapter_config.json").is_file()
    assert state["log_history"][0] == first_state["log_history"][0]  # continued, not restarted


def test_merged_lora_on_a_converted_llama_loads_as_a_plain_bigmodel(corpus, tiny_llama, tmp_path):
    results = run(tiny_run(corpus, tmp_path, model_name_or_path=tiny_llama, convert_to_bigmodel="true",
                           use_peft="true", merge_lora="true", **{**QUICK, "learning_rate": 1e-2}))
    assert not (tmp_path / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(model).__name__ == "BigModelForCausalLM"
    assert not any("lora" in name for name in model.state_dict())
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert perplexity_of(model, tokenizer, texts_of(corpus)) == pytest.approx(
        results["validation"]["perplexity"], rel=1e-4)
    assert (tmp_path / "README.md").is_file()  # a merged model gets its card


def test_wsd_schedule_holds_the_peak_then_decays(corpus, tmp_path):
    run(tiny_run(corpus, tmp_path, lr_scheduler_type="warmup_stable_decay", wsd_decay_steps=0.25, logging_steps=1,
                 **{**QUICK, "max_steps": 20, "warmup_steps": 2}))
    history = json.loads((tmp_path / "checkpoint-20" / "trainer_state.json").read_text())["log_history"]
    rates = {entry["step"]: entry["learning_rate"] for entry in history if "learning_rate" in entry}
    assert all(rates[step] == pytest.approx(1e-3) for step in range(3, 16))  # stable after 2 warmup steps
    assert rates[1] < 1e-3 and rates[20] < 1e-4  # warming up; decayed over the last 5 steps


def test_lora_with_activation_checkpointing_still_trains_the_adapters(corpus, tiny_llama, tmp_path):
    results = run(tiny_run(corpus, tmp_path, model_name_or_path=tiny_llama, use_peft="true",
                           activation_checkpointing="true", **{**QUICK, "learning_rate": 1e-2}))
    assert results["validation"]["perplexity"] < results["validation"]["perplexity_at_start"]
    assert not (tmp_path / "generations").exists()  # num_sample_outputs 0: no samples at all


def test_early_stopping_ends_the_run_when_perplexity_stops_improving(corpus, tmp_path):
    # an improvement must exceed 1e6 to count: every evaluation after the first is "no improvement"
    run(tiny_run(corpus, tmp_path, early_stopping_patience=1, early_stopping_threshold=1e6,
                 **{**QUICK, "max_steps": 30, "eval_steps": 5, "save_steps": 5}))
    state = json.loads((list_checkpoints(tmp_path)[-1] / "trainer_state.json").read_text())
    assert state["global_step"] == 10  # evaluations at steps 5 and 10, stopped instead of running to 30


def test_accumulation_activation_checkpointing_and_bf16_options(corpus, tmp_path):
    run_config = parse_text_generation_config(tiny_run(
        corpus, tmp_path, gradient_accumulation_steps=2, activation_checkpointing="true", bf16="true",
        use_cpu="true", **{**QUICK, "max_steps": 3}))
    args = run_config.training
    assert args.activation_checkpointing and args.bf16 and args.gradient_accumulation_steps == 2
    results = run_text_generation(run_config)
    assert math.isfinite(results["validation"]["perplexity"])


@pytest.mark.parametrize(
    "argv, hint",
    [(["--use_peft"], "use_peft trains adapters on a pretrained checkpoint"),
     (["--model_name_or_path", "x", "--merge_lora"], "merge_lora needs use_peft"),
     (["--block_size", "0"], "block_size must be a positive"),
     (["--packing", "flat"], "packing must be one of documents, concat, got 'flat'")],
)
def test_config_errors_stop_the_recipe_at_start(argv, hint, tmp_path):
    recipe = runpy.run_path(str(RECIPE))
    with pytest.raises(SystemExit) as stop:
        recipe["main"](argv + ["--output_dir", str(tmp_path)])
    assert str(stop.value.code).startswith("generate_text.py: ") and hint in str(stop.value.code)


@pytest.mark.slow
def test_two_cpu_processes_train_in_sync_and_score_like_one(corpus, tmp_path):
    run_in_two_cpu_processes("generate_text.py", tiny_run(
        corpus, tmp_path, max_steps=20, eval_steps=20, save_steps=20, per_device_train_batch_size=4,
        max_eval_samples=23, report_to="none", num_sample_outputs=0), tmp_path)
    # perplexity gathered across ranks over 23 blocks (odd: not split evenly) = one process's over the same blocks
    validation = json.loads((tmp_path / "eval_results.json").read_text())["validation"]
    assert validation["blocks"] == 23
    model, tokenizer = AutoModelForCausalLM.from_pretrained(tmp_path), AutoTokenizer.from_pretrained(tmp_path)
    blocks = pack_lm_blocks(Dataset.from_dict({"input_ids": [tokenizer(t)["input_ids"] for t in texts_of(corpus)]}),
                            BLOCK, eos_token_id=tokenizer.eos_token_id, drop_remainder=False).select(range(23))
    sums = []
    with torch.no_grad():
        for ids in blocks["input_ids"]:
            ids = torch.tensor([ids])
            logits = model(input_ids=ids).logits[0, :-1]
            sums.append((F.cross_entropy(logits, ids[0, 1:], reduction="sum").item(), ids.shape[1] - 1))
    single = token_weighted_perplexity([s for s, _ in sums], [n for _, n in sums])
    assert single["tokens"] == validation["tokens"]
    assert single["perplexity"] == pytest.approx(validation["perplexity"], rel=1e-5)


@pytest.mark.slow
def test_smollm2_fine_tunes_as_llama_and_as_converted_bigmodel(tmp_path):
    if not (SMOLLM2 / "model.safetensors").is_file():
        pytest.skip(f"{SMOLLM2} not present (build it with: bash ../shared/scripts/get_smollm2.sh {SMOLLM2})")
    from bigmodel_hf.stdlib_corpus import stdlib_documents

    documents = stdlib_documents()
    for split, texts in (("train", documents[:40]), ("validation", documents[40:48])):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    settings = dict(train_file=tmp_path / "train.jsonl", validation_file=tmp_path / "validation.jsonl",
                    model_name_or_path=SMOLLM2, block_size=128, max_eval_samples=8, per_device_train_batch_size=2,
                    per_device_eval_batch_size=4, max_steps=4, warmup_steps=1, learning_rate=2e-5, eval_steps=4,
                    save_steps=4, report_to="none", num_sample_outputs=0, seed=0)
    llama = run(flags(**settings, output_dir=tmp_path / "llama"))["validation"]
    converted = run(flags(**settings, output_dir=tmp_path / "bigmodel", convert_to_bigmodel="true"))["validation"]
    assert f"{llama['perplexity_at_start']:.3g}" == f"{converted['perplexity_at_start']:.3g}"
    for result in (llama, converted):
        assert result["perplexity"] < result["perplexity_at_start"]
    assert converted["perplexity"] == pytest.approx(llama["perplexity"], rel=1e-2)


def test_stdlib_corpus_run_and_its_card(tmp_path):
    """The embedded default's corpus, written into the output dir; the card names it, not as a Hub dataset."""
    results = run(flags(dataset_name="stdlib_docs", output_dir=tmp_path, config_overrides=TINY_MODEL, vocab_size=300,
                        block_size=BLOCK, max_train_samples=60, max_eval_samples=8, **{**QUICK, "max_steps": 2}))
    train = (tmp_path / "data" / "train.jsonl").read_text().splitlines()
    validation = (tmp_path / "data" / "validation.jsonl").read_text().splitlines()
    assert len(train) > 1000 and validation and not set(train) & set(validation)
    assert results["validation"]["blocks"] == 8
    card = (tmp_path / "README.md").read_text("utf-8")
    assert "bigmodel_hf.stdlib_corpus" in card and "datasets:" not in card.split("---")[1]


def test_sample_prompts_are_document_openings_cut_at_whitespace():
    from bigmodel_hf.training.text_generation import sample_prompts

    texts = ["logging.BufferingFormatter.format\n\nFormat the records", "short", "", "one two three four five six"]
    assert sample_prompts(texts, 3, max_chars=40) == ["logging.BufferingFormatter.format", "short",
                                                      "one two three four five six"]
    assert sample_prompts(texts, 1, max_chars=12) == ["logging.Buff"]  # no whitespace within: cut as is
    assert sample_prompts(texts, 0) == []


def test_lora_targets_are_checked_against_the_model():
    from bigmodel_hf.training import ConfigError
    from bigmodel_hf.training.lora import add_lora

    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=16, n_layer=1, n_head=2, n_positions=32))
    with pytest.raises(ConfigError, match="c_attn"):  # the Llama names do not exist in GPT-2; the error lists its own
        add_lora(gpt2, r=2, alpha=4, dropout=0.0, target_modules="q_proj,k_proj,v_proj,o_proj")
    model = add_lora(gpt2, r=2, alpha=4, dropout=0.0, target_modules="c_attn,c_proj")
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
