"""Stand-in for transformers' `tests/generation/test_utils.py`, which its PyPI sdist does not ship.

`test_modeling_common.py` imports `GenerationTesterMixin` to check that generative models' test classes
inherit it. Without the real file (available only from the transformers git repository), this empty mixin
satisfies the import and that check; the generation behaviour itself (cached vs uncached decoding, beam
search, sampling, left padding) is asserted by our own `tests/test_modeling.py`.
"""


class GenerationTesterMixin:
    pass
