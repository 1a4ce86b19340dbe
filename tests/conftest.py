"""Shared pytest fixtures.

``allatom`` is a real all-atom system made at test time by
:func:`mdllm_kit.testing.make_solvated_fixture`: two AdK peptide chains in
TIP3P water with Na+/Cl- in a rhombic-dodecahedron cell, a few OpenMM CPU steps,
every atom wrapped into the cell (molecules split across its faces) and written
as xtc/dcd/trr/nc with PDB and GRO topologies. Built once per session (about
5-10 s on one core) in a temporary folder; nothing is committed or downloaded.
"""
from __future__ import annotations

import pytest

from mdllm_kit.testing import AllAtomFixture, make_solvated_fixture


@pytest.fixture(scope="session")
def allatom(tmp_path_factory: pytest.TempPathFactory) -> AllAtomFixture:
    """Solvated two-chain all-atom system with wrapped (broken) coordinates."""
    return make_solvated_fixture(tmp_path_factory.mktemp("allatom"))
