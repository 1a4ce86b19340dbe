import math

import pytest
import torch

from mdllm_kit.errors import MdllmError, TokenizerError
from mdllm_kit.tokenizer import TokenizerConfig
from mdllm_kit.tokenizer.quantize import UniformBins


def test_uniform_bins_round_trip_within_half_bin():
    q = UniformBins(0.0, 2.0, 64)
    v = torch.linspace(0.0, 1.999, 500, dtype=torch.float64)
    codes, clipped = q.encode(v)
    assert not clipped.any() and codes.min() == 0 and codes.max() == 63
    assert (q.decode(codes) - v).abs().max() <= q.width / 2 + 1e-12


def test_uniform_bins_clip_and_wrap():
    q = UniformBins(0.0, 1.0, 10)
    codes, clipped = q.encode(torch.tensor([-0.5, 0.05, 1.5]))
    assert codes.tolist() == [0, 0, 9] and clipped.tolist() == [True, False, True]
    p = UniformBins(-math.pi, math.pi, 8, periodic=True)
    codes, clipped = p.encode(torch.tensor([math.pi + 0.1, -math.pi - 0.1]))
    assert codes.tolist() == [0, 7] and not clipped.any()


def test_config_json_round_trip():
    c = TokenizerConfig(codebook_size=128, anchor_offsets=(1, 2, 5), atoms="ca", max_distance_nm=9.0)
    assert TokenizerConfig.from_json(c.to_json()) == c


@pytest.mark.parametrize("kwargs", [
    {"codebook_size": 1}, {"codebook_size": 2.5}, {"atoms": "allatom"}, {"angle_range_deg": (90, 10)},
    {"anchor_stride": 0}, {"anchor_offsets": ()}, {"anchor_offsets": (1, 1)}, {"max_distance_nm": 0.1},
    {"refine_iterations": -1}, {"batch_size": 0},
])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(TokenizerError):
        TokenizerConfig(**kwargs)


def test_config_from_json_errors():
    with pytest.raises(TokenizerError, match="unknown"):
        TokenizerConfig.from_dict({"codebook": 3})
    with pytest.raises(MdllmError):
        TokenizerConfig.from_json("{not json")
