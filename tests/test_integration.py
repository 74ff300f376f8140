"""BigModel with the rest of the Hugging Face stack: Trainer gradient accumulation, pipelines, and
conversion of Llama checkpoints."""

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Trainer,
    TrainingArguments,
    pipeline,
)

from bigmodel_hf import BigModelForCausalLM, BigModelForSeq2SeqLM
from bigmodel_hf.convert import convert_llama_checkpoint, convert_llama_model
from tiny_models import VOCAB, random_ids, tiny_config


class PaddedSeq2SeqRows(torch.utils.data.Dataset):
    """Eight source/target pairs of different lengths; the collator pads them per batch."""

    def __init__(self):
        self.rows = [(random_ids(1, 3 + i, seed=i)[0], random_ids(1, 2 + (5 * i) % 7, seed=50 + i)[0]) for i in range(8)]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return {"input_ids": self.rows[i][0], "labels": self.rows[i][1]}


def pad_batch(rows):
    def pad(seqs, value):
        out = torch.full((len(seqs), max(len(s) for s in seqs)), value)
        for i, s in enumerate(seqs):
            out[i, : len(s)] = s
        return out

    input_ids = pad([r["input_ids"] for r in rows], 0)
    return {"input_ids": input_ids, "attention_mask": input_ids.ne(0).long(),
            "labels": pad([r["labels"] for r in rows], -100)}


def one_trainer_step(tmp_path, batch_size, accumulation):
    torch.manual_seed(0)
    model = BigModelForSeq2SeqLM(tiny_config("modern", True))
    args = TrainingArguments(
        output_dir=str(tmp_path / f"b{batch_size}"), per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation, max_steps=1, learning_rate=1e-3, logging_steps=1,
        report_to=[], use_cpu=True, save_strategy="no", dataloader_drop_last=False, seed=0, disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=PaddedSeq2SeqRows(), data_collator=pad_batch)
    trainer.train()
    logged = next(entry for entry in trainer.state.log_history if "loss" in entry)
    return logged["loss"], logged["grad_norm"], model


def test_gradient_accumulation_does_not_change_loss_or_gradients(tmp_path):
    loss_full, norm_full, model_full = one_trainer_step(tmp_path, batch_size=8, accumulation=1)
    loss_accum, norm_accum, model_accum = one_trainer_step(tmp_path, batch_size=2, accumulation=4)
    assert loss_accum == pytest.approx(loss_full, rel=1e-5)
    assert norm_accum == pytest.approx(norm_full, rel=1e-4)
    for (name, a), (_, b) in zip(model_full.named_parameters(), model_accum.named_parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)


def word_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{f"w{i}": i for i in range(4, VOCAB)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece()  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>")


def test_text_generation_pipeline_with_a_saved_causal_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = BigModelForCausalLM(tiny_config("modern", False)).eval()
    model.save_pretrained(tmp_path)
    word_tokenizer().save_pretrained(tmp_path)
    generator = pipeline("text-generation", model=str(tmp_path), device="cpu")
    assert isinstance(generator.model, BigModelForCausalLM)
    result = generator("w5 w6 w7", max_new_tokens=5, min_new_tokens=5, do_sample=False)[0]["generated_text"]
    expected = model.generate(torch.tensor([[5, 6, 7]]), max_new_tokens=5, min_new_tokens=5, do_sample=False)
    # The pipeline glues prompt and continuation without a separator; compare the word sequence.
    assert result.replace(" ", "") == "".join(f"w{i}" for i in expected[0].tolist())


def tiny_llama(tie: bool) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=tie, rope_parameters={"rope_type": "default", "rope_theta": 5000.0},
                         pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("tie", [True, False])
def test_llama_conversion_matches_logits_and_greedy_generations(tie):
    llama = tiny_llama(tie)
    converted = convert_llama_model(llama)
    assert isinstance(converted, BigModelForCausalLM)
    assert converted.num_parameters() == llama.num_parameters()
    tokens = random_ids(3, 20)
    mask = torch.ones_like(tokens)
    mask[0, :5] = 0  # a left-padded row too
    with torch.no_grad():
        difference = (converted(input_ids=tokens, attention_mask=mask).logits
                      - llama(input_ids=tokens, attention_mask=mask).logits)[mask.bool()].abs().max()
    assert difference <= 1e-4
    kwargs = dict(max_new_tokens=15, min_new_tokens=15, do_sample=False, pad_token_id=0)
    assert torch.equal(converted.generate(tokens[1:], **kwargs), llama.generate(tokens[1:], **kwargs))


def test_converted_checkpoint_round_trips_with_its_tokenizer(tmp_path):
    llama = tiny_llama(True)
    llama.save_pretrained(tmp_path / "llama")
    word_tokenizer().save_pretrained(tmp_path / "llama")
    convert_llama_checkpoint(tmp_path / "llama", tmp_path / "bigmodel")
    loaded = BigModelForCausalLM.from_pretrained(tmp_path / "bigmodel").eval()
    tokens = random_ids(2, 12)
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=tokens).logits, llama(input_ids=tokens).logits,
                                   rtol=0, atol=1e-4)
    assert (tmp_path / "bigmodel" / "tokenizer.json").exists()


def test_conversion_refuses_non_swiglu_llama():
    llama = tiny_llama(True)
    llama.config.hidden_act = "gelu"
    with pytest.raises(ValueError, match="SwiGLU"):
        convert_llama_model(llama)


def test_cli_converts_and_reports_bad_sources(tmp_path, capsys):
    from bigmodel_hf.cli import main

    tiny_llama(False).save_pretrained(tmp_path / "llama")
    word_tokenizer().save_pretrained(tmp_path / "llama")
    main(["convert-llama", str(tmp_path / "llama"), str(tmp_path / "out")])
    assert "Converted" in capsys.readouterr().out
    assert BigModelForCausalLM.from_pretrained(tmp_path / "out").config.tie_word_embeddings is False
    with pytest.raises(SystemExit, match="convert-llama"):
        main(["convert-llama", str(tmp_path / "missing"), str(tmp_path / "out2")])


def test_convert_llama_unpickles_weights_only_with_load_legacy_bin(tmp_path, monkeypatch, capsys):
    from bigmodel_hf.cli import main

    llama = tiny_llama(True)
    llama.save_pretrained(tmp_path / "llama")
    word_tokenizer().save_pretrained(tmp_path / "llama")
    (tmp_path / "llama" / "model.safetensors").unlink()  # a legacy checkpoint: pickled pytorch_model.bin only
    torch.save(llama.state_dict(), tmp_path / "llama" / "pytorch_model.bin")
    unpickled = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: unpickled.append(a[0]) or real_load(*a, **k))
    with pytest.raises(SystemExit) as stopped:
        main(["convert-llama", str(tmp_path / "llama"), str(tmp_path / "out")])
    message = str(stopped.value.code)
    assert message.startswith(f"bigmodel-hf convert-llama: {tmp_path / 'llama'} has no safetensors weights")
    assert "--load_legacy_bin" in message and "\n" not in message
    assert unpickled == [] and not (tmp_path / "out").exists()
    main(["convert-llama", str(tmp_path / "llama"), str(tmp_path / "out"), "--load_legacy_bin"])
    assert [str(path).endswith("pytorch_model.bin") for path in unpickled] == [True]
    loaded = BigModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    tokens = random_ids(2, 12)
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=tokens).logits, llama(input_ids=tokens).logits, rtol=0, atol=1e-4)


def test_convert_llama_checks_the_model_type_before_loading_weights(tmp_path):
    from bigmodel_hf.cli import main

    BigModelForCausalLM(tiny_config("modern", False)).save_pretrained(tmp_path / "ours")
    with pytest.raises(SystemExit, match="'bigmodel' checkpoint; only Llama-family ones convert"):
        main(["convert-llama", str(tmp_path / "ours"), str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
