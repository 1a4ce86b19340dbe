import numpy as np
import pytest
import torch

from mdllm_kit.lm.fastdecode import StaticDecoder
from mdllm_kit.lm.sampler import Sampler


@pytest.mark.parametrize("kv_heads", [1, 2])
def test_matches_hf_forward(kv_heads):
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    model = MistralForCausalLM(MistralConfig(vocab_size=30, hidden_size=32, intermediate_size=48,
                                             num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=kv_heads,
                                             sliding_window=None)).eval()
    assert StaticDecoder.supports(model, 64)
    ids = torch.randint(0, 30, (3, 12))
    dec = StaticDecoder(model, batch=3, max_len=16)
    with torch.no_grad():
        full = model(input_ids=ids).logits
        torch.testing.assert_close(dec.forward(ids[:, :8], reset=True), full[:, 7], rtol=1e-4, atol=1e-5)
        for t in range(8, 12):
            torch.testing.assert_close(dec.forward(ids[:, t:t + 1]), full[:, t], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(dec.forward(ids[:, :5], reset=True), full[:, 4], rtol=1e-4, atol=1e-5)


def test_unsupported_models_fall_back():
    from transformers import MistralConfig, MistralForCausalLM

    model = MistralForCausalLM(MistralConfig(vocab_size=30, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                                             num_attention_heads=2, num_key_value_heads=1, sliding_window=16))
    assert not StaticDecoder.supports(model, 64)
    assert StaticDecoder.supports(model, 16)


def test_fast_and_hf_paths_sample_the_same(trained_bundle):
    fast = Sampler(trained_bundle, precision="fp32").sample(n_frames=2, n_walkers=2, seed=9)
    slow = Sampler(trained_bundle, fast=False, precision="fp32").sample(n_frames=2, n_walkers=2, seed=9)
    np.testing.assert_array_equal(fast.tokens, slow.tokens)
    np.testing.assert_allclose(fast.log_likelihood, slow.log_likelihood, rtol=1e-5)


@pytest.mark.parametrize("previous,tie", [(True, False), (True, True), (False, False)])
def test_frame_model_matches_hf_forward(previous, tie):
    from mdllm_kit.lm.frame_model import FrameMistralConfig, FrameMistralForCausalLM, previous_frame_ids

    torch.manual_seed(0)
    model = FrameMistralForCausalLM(FrameMistralConfig(
        vocab_size=30, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, sliding_window=None, frame_length=5, previous_frame_embedding=previous,
        tie_previous_frame_embedding=tie, pad_token_id=0)).eval()
    assert StaticDecoder.supports(model, 64)
    ids = torch.randint(3, 30, (3, 17))
    prev = previous_frame_ids(ids, 5, model.none_id)
    dec = StaticDecoder(model, batch=3, max_len=20)
    with torch.no_grad():
        full = model(input_ids=ids).logits
        torch.testing.assert_close(dec.forward(ids[:, :9], reset=True), full[:, 8], rtol=1e-4, atol=1e-5)
        for t in range(9, 17):
            extra = {"previous_frame_ids": prev[:, t:t + 1]} if previous else {}
            torch.testing.assert_close(dec.forward(ids[:, t:t + 1], **extra), full[:, t], rtol=1e-4, atol=1e-5)


def test_bf16_prefill_and_cache_stay_close_to_fp32():
    import copy

    from mdllm_kit.lm.frame_model import FrameMistralConfig, FrameMistralForCausalLM, previous_frame_ids

    torch.manual_seed(0)
    model = FrameMistralForCausalLM(FrameMistralConfig(
        vocab_size=30, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, sliding_window=None, frame_length=5, tie_previous_frame_embedding=True,
        pad_token_id=0)).eval()
    ids = torch.randint(3, 30, (3, 17))
    prev = previous_frame_ids(ids, 5, model.none_id)
    dec = StaticDecoder(model, batch=3, max_len=20, cache_dtype=torch.bfloat16,
                        prefill_model=copy.deepcopy(model).to(torch.bfloat16))
    assert dec.keys[0].dtype == torch.bfloat16
    with torch.no_grad():
        full = model(input_ids=ids).logits
        first = dec.forward(ids[:, :9], reset=True)
        assert first.dtype == torch.float32  # the logits come from the fp32 output layer
        torch.testing.assert_close(first, full[:, 8], rtol=0.05, atol=0.05)
        for t in range(9, 17):
            step = dec.forward(ids[:, t:t + 1], previous_frame_ids=prev[:, t:t + 1])
            assert step.dtype == torch.float32
            torch.testing.assert_close(step, full[:, t], rtol=0.05, atol=0.05)


@pytest.mark.parametrize("kv_heads,cache_dtype", [(1, None), (2, None), (1, torch.bfloat16)])
def test_lean_single_token_path_matches_the_generic_one(kv_heads, cache_dtype):
    """The lean step (fused q/k/v and gate/up, RoPE table, no module calls) gives the generic step's numbers,
    and its fused weights follow changes of the model's parameters."""
    from mdllm_kit.lm.frame_model import FrameMistralConfig, FrameMistralForCausalLM, previous_frame_ids

    torch.manual_seed(0)
    model = FrameMistralForCausalLM(FrameMistralConfig(
        vocab_size=30, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=kv_heads, sliding_window=None, frame_length=5, tie_previous_frame_embedding=True,
        pad_token_id=0)).eval()
    ids = torch.randint(3, 30, (3, 17))
    prev = previous_frame_ids(ids, 5, model.none_id)
    lean = StaticDecoder(model, batch=3, max_len=20, cache_dtype=cache_dtype)
    generic = StaticDecoder(model, batch=3, max_len=20, cache_dtype=cache_dtype)
    generic._lean_ok = False
    assert lean._lean_ok

    def run():
        out = []
        for dec in (lean, generic):
            dec.forward(ids[:, :9], reset=True)
            out.append(torch.stack([dec.forward(ids[:, t:t + 1], previous_frame_ids=prev[:, t:t + 1])
                                    for t in range(9, 17)]))
        return out

    a, b = run()
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    for ka, kb in zip(lean.keys, generic.keys):
        torch.testing.assert_close(ka, kb, rtol=1e-6, atol=1e-6)
    with torch.no_grad():  # e.g. more training after the sampler was made: the next prefill sees it
        model.model.layers[0].self_attn.k_proj.weight.mul_(1.5)
        model.model.layers[1].mlp.up_proj.weight.add_(0.1)
    c, d = run()
    torch.testing.assert_close(c, d, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(a, c)
    with pytest.raises(Exception, match="previous_frame_ids"):
        lean.forward(ids[:, 9:10])


def test_lean_path_is_skipped_for_wrapped_linear_layers():
    from transformers import MistralConfig, MistralForCausalLM

    model = MistralForCausalLM(MistralConfig(vocab_size=30, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                                             num_attention_heads=2, num_key_value_heads=1, sliding_window=None))

    class Wrapped(torch.nn.Module):  # stands for a quantised or adapter-wrapped layer
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    assert StaticDecoder(model, batch=1, max_len=8)._lean_ok
    model.model.layers[0].self_attn.q_proj = Wrapped(model.model.layers[0].self_attn.q_proj)
    assert not StaticDecoder(model, batch=1, max_len=8)._lean_ok
