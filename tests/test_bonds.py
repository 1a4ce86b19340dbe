"""The bond-length limits (mdllm_kit.bonds) are the ones every stage uses."""
from __future__ import annotations

import numpy as np


def test_bond_limits_have_one_owner():
    from mdllm_kit import bonds
    from mdllm_kit.analysis import validity
    from mdllm_kit.loading import checks
    from mdllm_kit.tokenizer import metrics

    assert validity.CA_BREAK_NM is bonds.CA_BREAK_NM and validity.CN_BREAK_NM == bonds.PEPTIDE_BOND_MAX_NM
    assert checks._CA_CA_MAX_NM == bonds.CA_CHAIN_BREAK_NM
    ca = np.cumsum(np.full((1, 4, 3), [bonds.CA_BOND_OK_NM[1] + 1e-3, 0, 0]), axis=1)  # bonds just too long
    assert metrics.bond_ok_fraction(ca) == 0.0
