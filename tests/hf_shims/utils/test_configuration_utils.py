"""Stand-in for transformers' `tests/utils/test_configuration_utils.py` (not in the PyPI sdist).

`ConfigTester.check_config_can_be_init_without_params`-style checks build a config from these common,
non-default keyword arguments and verify each one sticks. Our own choice of values.
"""

config_common_kwargs = {
    "return_dict": False,
    "output_hidden_states": True,
    "dtype": "float16",
    "tie_word_embeddings": False,
    "chunk_size_feed_forward": 4,
    "architectures": ["BigModelForSeq2SeqLM"],
    "id2label": {0: "only"},
    "label2id": {"only": 0},
    "problem_type": "regression",
    "bos_token_id": 5,
    "pad_token_id": 6,
    "eos_token_id": 7,
    "decoder_start_token_id": 8,
}
