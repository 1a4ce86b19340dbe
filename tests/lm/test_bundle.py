"""Bundle export: a plain Hugging Face checkpoint of a frame-aware pretrained model trained with LoRA."""
import argparse

import pytest
import torch

from tiny_models import save_tiny_pretrained
from mdllm_kit.contracts import is_frame_model
from mdllm_kit.errors import ModelError
from mdllm_kit.lm import cli as lm_cli
from mdllm_kit.lm.config import LoraSettings, ModelSettings
from mdllm_kit.lm.train import train


@pytest.mark.slow
def test_export_merged_writes_a_plain_hf_checkpoint(tmp_path, toy_traj, toy_tok, tiny_train_settings):
    import transformers
    from safetensors import safe_open

    from mdllm_kit.lm.frame_model import make_frame_aware

    settings = ModelSettings(base_model=save_tiny_pretrained("llama", tmp_path / "base"),
                             lora=LoraSettings(r=4, dropout=0.0))
    bundle = train(toy_traj, toy_tok, tmp_path / "bundle", settings,
                   tiny_train_settings.replace(max_steps=3, learning_rate=1e-2), progress=False, device="cpu")
    parser = argparse.ArgumentParser(prog="mdllm")
    lm_cli.add_lm_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", str(tmp_path / "bundle"), "--out", str(tmp_path / "hf")])
    with pytest.raises(ModelError, match="pass --merged"):
        args.func(args)
    args = parser.parse_args(["export", str(tmp_path / "bundle"), "--merged", "--out", str(tmp_path / "hf")])
    assert args.func(args) == 0
    out = tmp_path / "hf"
    assert (out / "config.json").is_file() and (out / "mdllm_codec.json").is_file()
    assert (out / "tokenizer" / "tokenizer_config.json").is_file()
    plain = transformers.AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    assert type(plain) is transformers.LlamaForCausalLM and not is_frame_model(plain)
    merged = bundle.model.merge_and_unload() if hasattr(bundle.model, "peft_config") else bundle.model
    merged.eval()
    # LoRA merged into the projections, the trained structure-token rows included
    torch.testing.assert_close(plain.get_input_embeddings().weight, merged.get_input_embeddings().weight)
    torch.testing.assert_close(plain.get_output_embeddings().weight, merged.get_output_embeddings().weight)
    torch.testing.assert_close(plain.model.layers[0].self_attn.q_proj.weight,
                               merged.model.layers[0].self_attn.q_proj.weight)
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        assert "frame_position_embeddings.weight" in f.keys()
        table = f.get_tensor("frame_position_embeddings.weight")
    cfg = plain.config
    make_frame_aware(plain, cfg.frame_length, previous_frame_embedding=cfg.previous_frame_embedding,
                     tie_previous_frame_embedding=cfg.tie_previous_frame_embedding)
    with torch.no_grad():
        plain.frame_position_embeddings.weight.copy_(table)
        ids = torch.from_numpy(bundle.codec.encode_frames(toy_tok.encode(toy_traj[:2])))[None]
        torch.testing.assert_close(plain(input_ids=ids).logits, merged(input_ids=ids).logits, rtol=1e-4, atol=1e-4)
    with pytest.raises(ModelError, match="not empty"):
        args.func(args)


def test_find_bundle_returns_the_first_that_loads(trained_bundle_dir, tmp_path, caplog):
    import shutil

    from mdllm_kit.lm.bundle import find_bundle

    broken = tmp_path / "broken"
    shutil.copytree(trained_bundle_dir, broken)
    (broken / "codec.json").write_text("{not json")
    empty = tmp_path / "empty"
    empty.mkdir()
    with caplog.at_level("WARNING"):
        found = find_bundle([None, tmp_path / "missing", empty, broken, trained_bundle_dir], device="cpu")
    assert found is not None and found.path.resolve() == trained_bundle_dir.resolve()
    assert any(str(broken) in r.getMessage() and "not using" in r.getMessage() for r in caplog.records)
    assert find_bundle([None, empty]) is None
