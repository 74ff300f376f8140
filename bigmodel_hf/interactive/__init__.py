"""Interactive-predictive translation: the model completes whatever prefix the person has accepted or typed.

`CompletionEngine` (engine.py) does prefix-constrained beam search with n-best and word probabilities;
`TranslationSession` (session.py) is one sentence's accept / correct / approve loop, driven alike by the
terminal (`bigmodel-hf translate --interactive`, terminal.py) and the local web page (`bigmodel-hf serve`,
web.py, which checks every request's fields with api_fields.py); `CorrectionLog` appends approved translations as JSON Lines the translation recipe trains on;
simulation.py measures how many words a simulated translator types.
"""

from .engine import Completion, CompletionEngine, Word

__all__ = ["Completion", "CompletionEngine", "Word"]
