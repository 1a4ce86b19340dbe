"""The one evenly-spaced subset rule (mdllm_kit.subsample)."""
import numpy as np
import pytest

from mdllm_kit.errors import MdllmError
from mdllm_kit.subsample import evenly_spaced_indices


def test_evenly_spaced_indices():
    np.testing.assert_array_equal(evenly_spaced_indices(5, 10), np.arange(5))
    np.testing.assert_array_equal(evenly_spaced_indices(25, 10), [0, 3, 5, 8, 11, 13, 16, 19, 21, 24])
    np.testing.assert_array_equal(evenly_spaced_indices(7, 1), [0])
    assert evenly_spaced_indices(0, 3).size == 0
    with pytest.raises(MdllmError, match="max_count must be >= 1"):
        evenly_spaced_indices(4, 0)
