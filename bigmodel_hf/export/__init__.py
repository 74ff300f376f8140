"""Exports of trained models to other inference stacks: CTranslate2 (`ct2`) and Llama checkpoints (`llama`).

Nothing here is imported by the package at start-up; `ctranslate2` is an optional extra.
"""


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message says which extra to install."""
