"""The speed changes in modeling_bigmodel.py keep behaviour: sinusoid table, precomputed signature, dropout skip."""

import inspect

import torch

from bigmodel_hf import BigModelConfig, BigModelForCausalLM, BigModelForSeq2SeqLM
from bigmodel_hf.modeling_bigmodel import BigModelInputEmbedding, dropout_if_training, sinusoidal_positions


def test_sinusoid_table_matches_on_the_fly_values_and_grows_past_max_positions():
    config = BigModelConfig.from_preset("vaswani-small", d_model=32, max_position_embeddings=16)
    embedding = BigModelInputEmbedding(config)
    for position_ids in (torch.tensor([[0, 5, 15]]), torch.arange(40)[None], torch.tensor([[3], [39]])):
        expected = sinusoidal_positions(position_ids, 32, torch.float32)
        assert torch.equal(embedding._sinusoids(position_ids), expected)
    assert embedding._sinusoid_table.shape == (40, 32)  # grew from 16 when position 39 was asked for


def test_cached_decoding_past_max_positions_matches_uncached():
    torch.manual_seed(0)
    config = BigModelConfig.from_preset("vaswani-small", d_model=32, ffn_dim=64, encoder_layers=1, decoder_layers=1,
                                        vocab_size=50, max_position_embeddings=8, dropout=0.0)
    model = BigModelForSeq2SeqLM(config).eval()
    source = torch.randint(3, 50, (2, 5))
    out = model.generate(source, max_new_tokens=12, eos_token_id=None, do_sample=False)  # positions reach 11 > 8
    with torch.no_grad():
        logits = model(input_ids=source, decoder_input_ids=out[:, :-1]).logits
    assert torch.equal(logits.argmax(-1), out[:, 1:])


def test_precomputed_signature_is_the_real_one():
    for head in (BigModelForSeq2SeqLM, BigModelForCausalLM):
        assert head.forward.__signature__ == inspect.signature(inspect.unwrap(head.forward))
        assert "cache" in head.forward.__signature__.parameters
    model = BigModelForCausalLM(BigModelConfig.from_preset("modern-small", is_encoder_decoder=False, d_model=32,
                                                           ffn_dim=48, decoder_layers=1, vocab_size=50))
    assert list(inspect.signature(model.forward).parameters)[0] == "input_ids"  # bound: no `self`


def test_dropout_if_training_only_acts_in_training_with_p_above_zero():
    x = torch.ones(1000)
    assert dropout_if_training(x, 0.5, training=False) is x
    assert dropout_if_training(x, 0.0, training=True) is x
    dropped = dropout_if_training(x, 0.5, training=True)
    assert 0.3 < (dropped == 0).float().mean() < 0.7 and set(dropped.unique().tolist()) == {0.0, 2.0}
