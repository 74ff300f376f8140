"""Exports: CTranslate2 (`export/ct2.py`, run by `export/ct2_runtime.py`) and Llama (`export/llama.py`).

CTranslate2 exports of each block setting must decode greedily token for token like our `generate()` in
float32; the Llama export must give the same logits (max abs difference <= 1e-5) and the same greedy
generations, and come back through `convert-llama` with identical weights. Both load on a machine
without `bigmodel_hf`.
"""

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from bigmodel_hf import BigModelForCausalLM, BigModelForSeq2SeqLM
from bigmodel_hf.cli import main
from bigmodel_hf.tokenization import train_lm_tokenizer, train_translation_tokenizer
from bigmodel_hf.toy_data import toy_translation_pairs
from tiny_models import tiny_config
from without_package import BLOCK_BIGMODEL_HF, offline_env

PAIRS = toy_translation_pairs(60, seed=5)
SOURCES = [row["en"] for row in PAIRS[:12]]
MAX_LENGTH = 24  # generate's max_length: the start token + 23 new tokens

needs_ct2 = pytest.mark.skipif(
    __import__("importlib").util.find_spec("ctranslate2") is None,
    reason="ctranslate2 is not installed (pip install 'bigmodel-hf[ct2]' or '.[dev]')")

# Every block setting the CTranslate2 export covers; `initializer_range` large enough that random weights
# make decisive (not tied) greedy choices.
CT2_SETTINGS = {
    "vaswani": dict(block="classic"),
    "pre-layernorm-learned-gelu-untied-unscaled-nobias": dict(
        block="classic", norm_position="pre", position_embedding="learned", activation="gelu",
        tie_word_embeddings=False, scale_embedding=False, attention_bias=False, mlp_bias=False),
    "modern-rope-rmsnorm-swiglu-gqa": dict(block="modern"),
    "geglu-sinusoidal-head-dim": dict(block="modern", activation="geglu", position_embedding="sinusoidal",
                                      num_key_value_heads=4, head_dim=16),
    "silu-rope-pre-layernorm": dict(block="classic", activation="silu", position_embedding="rope",
                                    norm_position="pre"),
}


@pytest.fixture(scope="module")
def tokenizer():
    return train_translation_tokenizer([row["en"] for row in PAIRS] + [row["es"] for row in PAIRS],
                                       vocab_size=300, min_frequency=1)


def save_seq2seq(folder, tokenizer, block="classic", **overrides):
    torch.manual_seed(0)
    config = tiny_config(block, vocab_size=len(tokenizer), initializer_range=0.2, **overrides)
    model = BigModelForSeq2SeqLM(config).eval()
    model.generation_config.num_beams, model.generation_config.max_length = 1, MAX_LENGTH
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model


def our_greedy(model, tokenizer, sources):
    out = []
    for source in sources:
        ids = model.generate(**tokenizer([source], return_tensors="pt"), num_beams=1, max_length=MAX_LENGTH)[0, 1:]
        out.append(tokenizer.decode(ids, skip_special_tokens=True).strip())
    return out


# ------------------------------------------------------------------------------------------ CTranslate2


@needs_ct2
@pytest.mark.parametrize("setting", list(CT2_SETTINGS))
def test_ct2_export_decodes_like_generate_in_float32(tmp_path, tokenizer, setting):
    from bigmodel_hf.translator import Translator
    from bigmodel_hf.export.ct2 import export_ct2

    options = dict(CT2_SETTINGS[setting])
    model = save_seq2seq(tmp_path / "model", tokenizer, **options)
    export_ct2(tmp_path / "model", tmp_path / "model" / "ct2", quantization="float32")
    translator = Translator.from_pretrained(tmp_path / "model", engine="auto")
    assert translator.engine == "ct2"
    expected = our_greedy(model, tokenizer, SOURCES)
    assert translator(SOURCES, num_beams=1) == expected
    # beyond the argmax: CTranslate2's log-probabilities of reference translations are ours
    targets = [row["es"] for row in PAIRS[:4]]
    ct2_model = translator.ct2_model
    scored = ct2_model.translator.score_batch([ct2_model.source_tokens(s) for s in SOURCES[:4]],
                                              [ct2_model.target_tokens(t) for t in targets])
    for source, target, result in zip(SOURCES[:4], targets, scored):
        labels = tokenizer(text_target=[target], return_tensors="pt").input_ids  # ends with EOS, as scored
        with torch.no_grad():
            logits = model(**tokenizer([source], return_tensors="pt"), labels=labels).logits
        ours = logits.log_softmax(-1).gather(-1, labels[..., None])[0, :, 0]
        assert torch.allclose(torch.tensor(result.log_probs), ours, atol=1e-4)


@needs_ct2
def test_ct2_export_keeps_the_decoding_defaults_and_quantises(tmp_path, tokenizer):
    from bigmodel_hf.translator import Translator
    from bigmodel_hf.export.ct2 import export_ct2

    model = save_seq2seq(tmp_path / "model", tokenizer)
    model.generation_config.num_beams, model.generation_config.length_penalty = 3, 0.6
    model.save_pretrained(tmp_path / "model")
    sizes = {}
    for quantization in ("float32", "int8"):
        out = export_ct2(tmp_path / "model", tmp_path / quantization, quantization=quantization)
        sizes[quantization] = (out / "model.bin").stat().st_size
    defaults = json.loads((tmp_path / "int8" / "decoding.json").read_text())
    assert defaults == {"beam_size": 3, "length_penalty": 0.6, "max_decoding_length": MAX_LENGTH - 1,
                        "source_prefix": "", "max_positions": 1024}
    assert sizes["int8"] < 0.75 * sizes["float32"]  # the float32 position tables stay: 0.59 here
    int8 = Translator.from_pretrained(tmp_path / "int8", engine="ct2")
    float32 = Translator.from_pretrained(tmp_path / "float32", engine="ct2")
    # int8 weights are not float32 weights: the log-probabilities of references stay close, not equal
    targets = [row["es"] for row in PAIRS[:12]]
    log_probs = {}
    for name, translator in (("int8", int8), ("float32", float32)):
        ct2 = translator.ct2_model
        scored = ct2.translator.score_batch([ct2.source_tokens(s) for s in SOURCES], [ct2.target_tokens(t) for t in targets])
        log_probs[name] = torch.tensor([p for result in scored for p in result.log_probs])
    difference = (log_probs["int8"] - log_probs["float32"]).abs()
    assert 0 < difference.mean() < 0.1 * log_probs["float32"].abs().mean()  # measured: 0.25 of 5-6 nats
    # batching and the per-call options reach CTranslate2: a 2-token budget cuts every output short
    full = int8(SOURCES, batch_size=32)
    assert int8(SOURCES, batch_size=5) == full
    short = int8(SOURCES, max_new_tokens=2)
    assert sum(map(len, short)) < sum(map(len, full))


@needs_ct2
def test_ct2_refusals_name_the_setting_and_write_nothing(tmp_path, tokenizer):
    from bigmodel_hf.export.ct2 import export_ct2

    save_seq2seq(tmp_path / "scaled", tokenizer, block="modern",
                 rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0})
    with pytest.raises(ValueError, match=r"rope_type='linear'.*vaswani"):
        export_ct2(tmp_path / "scaled", tmp_path / "out")
    lm = BigModelForCausalLM(tiny_config("modern", is_encoder_decoder=False, vocab_size=len(tokenizer)))
    lm.save_pretrained(tmp_path / "lm")
    with pytest.raises(ValueError, match=r"is_encoder_decoder=False.*export llama"):
        export_ct2(tmp_path / "lm", tmp_path / "out")
    with pytest.raises(ValueError, match="quantization 'int4'"):
        export_ct2(tmp_path / "scaled", tmp_path / "out", quantization="int4")
    (tmp_path / "marian").mkdir()
    (tmp_path / "marian" / "config.json").write_text(json.dumps({"model_type": "marian"}))
    with pytest.raises(ValueError, match="holds a 'marian' model; only BigModel checkpoints"):
        export_ct2(tmp_path / "marian", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@needs_ct2
def test_cli_exports_and_translates_with_engine_ct2(tmp_path, tokenizer, capsys):
    model = save_seq2seq(tmp_path / "model", tokenizer)
    main(["export", "ct2", str(tmp_path / "model"), str(tmp_path / "ct2"), "--quantization", "float32"])
    main(["translate", "--model", str(tmp_path / "ct2"), "--engine", "ct2", "--num_beams", "1", *SOURCES[:3]])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("Exported")
    assert lines[1:] == our_greedy(model, tokenizer, SOURCES[:3])
    with pytest.raises(SystemExit) as stop:  # a second export into the same folder: refused, one line
        main(["export", "ct2", str(tmp_path / "model"), str(tmp_path / "ct2")])
    assert "--force" in str(stop.value) and "\n" not in str(stop.value)
    with pytest.raises(SystemExit) as stop:  # --engine ct2 on a folder without an export
        main(["translate", "--model", str(tmp_path / "model"), "--engine", "ct2", "hello"])
    assert "export ct2" in str(stop.value)


# ------------------------------------------------------------------------------------------ Llama


@pytest.fixture(scope="module")
def lm_tokenizer():
    return train_lm_tokenizer([row["en"] for row in PAIRS], vocab_size=300, min_frequency=1)


def save_lm(folder, tokenizer, **overrides):
    torch.manual_seed(0)
    config = tiny_config("modern", is_encoder_decoder=False, vocab_size=len(tokenizer), initializer_range=0.2,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, **overrides)
    model = BigModelForCausalLM(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model


@pytest.mark.parametrize("tied", [True, False])
def test_llama_export_gives_the_same_logits_and_generations_and_converts_back(tmp_path, lm_tokenizer, tied):
    from transformers import LlamaForCausalLM

    from bigmodel_hf.convert import convert_llama_checkpoint

    model = save_lm(tmp_path / "lm", lm_tokenizer, tie_word_embeddings=tied, attention_bias=True, mlp_bias=True)
    main(["export", "llama", str(tmp_path / "lm"), str(tmp_path / "llama")])
    llama = LlamaForCausalLM.from_pretrained(tmp_path / "llama").eval()
    ids = lm_tokenizer(SOURCES[:4], return_tensors="pt", padding=True)
    with torch.no_grad():
        difference = (llama(**ids).logits - model(**ids).logits).abs().max().item()
    assert difference <= 1e-5
    prompt = lm_tokenizer(SOURCES[0], return_tensors="pt")
    greedy = dict(do_sample=False, max_new_tokens=12)
    assert torch.equal(llama.generate(**prompt, **greedy), model.generate(**prompt, **greedy))

    convert_llama_checkpoint(tmp_path / "llama", tmp_path / "back")
    back = BigModelForCausalLM.from_pretrained(tmp_path / "back")
    original, returned = model.state_dict(), back.state_dict()
    assert original.keys() == returned.keys()
    assert all(torch.equal(original[key], returned[key]) for key in original)


def test_llama_export_refuses_what_llama_cannot_express(tmp_path, lm_tokenizer, tokenizer, capsys):
    save_lm(tmp_path / "classic", lm_tokenizer, norm_type="layernorm", scale_embedding=True)
    with pytest.raises(SystemExit) as stop:
        main(["export", "llama", str(tmp_path / "classic"), str(tmp_path / "out")])
    assert "norm_type='layernorm'" in str(stop.value) and "scale_embedding=True" in str(stop.value)
    save_seq2seq(tmp_path / "seq2seq", tokenizer, block="modern")
    with pytest.raises(SystemExit) as stop:
        main(["export", "llama", str(tmp_path / "seq2seq"), str(tmp_path / "out")])
    assert "is_encoder_decoder=True" in str(stop.value)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ without us


@needs_ct2
def test_exports_load_on_a_machine_without_bigmodel_hf(tmp_path, tokenizer, lm_tokenizer):
    from bigmodel_hf.export.ct2 import export_ct2
    from bigmodel_hf.export.llama import export_llama

    seq2seq = save_seq2seq(tmp_path / "model", tokenizer)
    export_ct2(tmp_path / "model", tmp_path / "ct2", quantization="float32")
    lm = save_lm(tmp_path / "lm", lm_tokenizer)
    export_llama(tmp_path / "lm", tmp_path / "llama")
    prompt = lm_tokenizer(SOURCES[0], return_tensors="pt")
    expected = {"ct2": our_greedy(seq2seq, tokenizer, SOURCES),
                "llama": lm.generate(**prompt, do_sample=False, max_new_tokens=10)[0].tolist()}
    script = BLOCK_BIGMODEL_HF + textwrap.dedent(f"""
        import json, ctranslate2
        from transformers import AutoTokenizer, AutoModelForCausalLM
        folder = {str(tmp_path / "ct2")!r}
        tokenizer = AutoTokenizer.from_pretrained(folder)
        translator = ctranslate2.Translator(folder)
        tokens = [tokenizer.convert_ids_to_tokens(tokenizer(s, add_special_tokens=False).input_ids)
                  for s in {SOURCES!r}]
        results = translator.translate_batch(tokens, beam_size=1, max_decoding_length={MAX_LENGTH - 1})
        ct2 = [tokenizer.decode(tokenizer.convert_tokens_to_ids(r.hypotheses[0]), skip_special_tokens=True).strip()
               for r in results]
        llama = AutoModelForCausalLM.from_pretrained({str(tmp_path / "llama")!r})
        assert type(llama).__name__ == "LlamaForCausalLM"
        llama_tokenizer = AutoTokenizer.from_pretrained({str(tmp_path / "llama")!r})
        prompt = llama_tokenizer({SOURCES[0]!r}, return_tensors="pt")
        generated = llama.generate(**prompt, do_sample=False, max_new_tokens=10)[0].tolist()
        print(json.dumps({{"ct2": ct2, "llama": generated}}))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env=offline_env(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == expected
