"""Whether a causal LM keeps packed documents apart: one tiny forward, before a `--packing documents` run trains.

`--packing documents` relies on the model reading document boundaries from position ids that restart (what
transformers' masking_utils does for models built on `create_causal_mask`, BigModel among them). A model
whose attention ignores them would silently train across documents, so the run stops instead.
"""

import torch

from .setting_checks import ConfigError

TOLERANCE = 1e-4  # float32 logits of the same document, alone and packed after another


def check_model_separates_documents(model) -> None:
    """Raise `ConfigError` (one line) unless the second of two packed documents scores as it does alone."""
    vocab = model.get_input_embeddings().num_embeddings
    first, second = torch.arange(3, 8) % vocab, torch.arange(11, 15) % vocab
    device = next(model.parameters()).device
    row = torch.cat([first, second])[None].to(device)  # (1, 9)
    positions = torch.cat([torch.arange(len(first)), torch.arange(len(second))])[None].to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            packed = model(input_ids=row, position_ids=positions, use_cache=False).logits[0, len(first):]
            alone = model(input_ids=second[None].to(device), use_cache=False).logits[0]
    finally:
        model.train(was_training)
    gap = (packed.float() - alone.float()).abs().max().item()
    if gap > TOLERANCE:
        raise ConfigError(
            f"--packing documents: {type(model).__name__} ({model.config._attn_implementation} attention) lets a packed document "
            f"attend to the one before it (logits differ by {gap:.2g}); use --packing concat."
        )
