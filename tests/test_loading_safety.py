"""Loading safely: weights from safetensors only (nothing unpickled unless asked), and a push never sends
secrets files or anything outside the output directory."""

import pytest
import torch

from bigmodel_hf import BigModelForSeq2SeqLM
from bigmodel_hf.hub import UnsafeUploadError, check_upload, plan_upload
from bigmodel_hf.tokenization import train_translation_tokenizer
from bigmodel_hf.training.arguments import ModelArguments
from bigmodel_hf.training.translation import build_model
from bigmodel_hf.training.setting_checks import ConfigError
from bigmodel_hf.translator import Translator
from tiny_models import tiny_config
from tiny_runs import make_output_dir


class NoTokenizer(list):  # build_model only asks a fine-tuned model's tokenizer for its length
    name_or_path = "tiny"


def test_checkpoints_load_without_unpickling_and_pickled_weights_need_opting_in(tmp_path, monkeypatch):
    model = BigModelForSeq2SeqLM(tiny_config("classic"))
    model.save_pretrained(tmp_path / "safe")
    model.save_pretrained(tmp_path / "legacy")  # a legacy checkpoint: pickled pytorch_model.bin only
    (tmp_path / "legacy" / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "legacy" / "pytorch_model.bin")
    unpickled = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: unpickled.append(a[0]) or real_load(*a, **k))

    loaded = build_model(ModelArguments(model_name_or_path=str(tmp_path / "safe")), NoTokenizer())
    assert unpickled == [] and torch.equal(loaded.get_input_embeddings().weight, model.get_input_embeddings().weight)
    with pytest.raises(ConfigError, match="(?s)could not be loaded.*load with --load_legacy_bin"):
        build_model(ModelArguments(model_name_or_path=str(tmp_path / "legacy")), NoTokenizer())
    assert unpickled == []
    build_model(ModelArguments(model_name_or_path=str(tmp_path / "legacy"), load_legacy_bin=True), NoTokenizer())
    assert [str(path).endswith("pytorch_model.bin") for path in unpickled] == [True]


def test_the_translator_loads_safetensors_only_unless_asked(tmp_path):
    model = BigModelForSeq2SeqLM(tiny_config("classic"))
    tokenizer = train_translation_tokenizer(["a cat", "un gato"], vocab_size=60, min_frequency=1)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(OSError, match="no file named model.safetensors"):
        Translator.from_pretrained(tmp_path, device="cpu")
    loaded = Translator.from_pretrained(tmp_path, device="cpu", load_legacy_bin=True).model
    assert torch.equal(loaded.get_input_embeddings().weight, model.get_input_embeddings().weight)


def test_secrets_files_in_the_output_dir_are_never_pushed(tmp_path):
    root, _ = make_output_dir(tmp_path / "run")
    (root / ".env").write_text("OPENAI_API_KEY=sk-not-a-real-key\n")
    (root / "checkpoint-2" / ".env").write_text("AWS_SECRET_ACCESS_KEY=x\n")
    planned = {f.path_in_repo for f in plan_upload(root, include_logs=True, include_optimizer_states=True)}
    assert not any(".env" in name for name in planned)  # only named model/card files are picked
    (root / "runs" / "Jan01_host" / ".env").write_text("OPENAI_API_KEY=sk-not-a-real-key\n")  # logs take a whole tree
    with pytest.raises(UnsafeUploadError, match=r"runs/Jan01_host/\.env: a secrets file"):
        check_upload(plan_upload(root, include_logs=True), root)


def test_a_link_out_of_the_output_dir_is_never_pushed(tmp_path):
    root, _ = make_output_dir(tmp_path / "run")
    outside = tmp_path / "elsewhere.json"
    outside.write_text((root / "tokenizer_config.json").read_text())
    (root / "tokenizer_config.json").unlink()
    (root / "tokenizer_config.json").symlink_to(outside)
    with pytest.raises(UnsafeUploadError, match=f"tokenizer_config.json: a link to {outside}, outside the output"):
        check_upload(plan_upload(root), root)
