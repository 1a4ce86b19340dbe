"""Fixtures of the visualisation tests.

The tiny trained model of the language-model tests (``tests/lm/conftest.py``:
a 6-atom toy tokenizer and a 2-layer model trained for a few steps) is reused
for the sampling explorer; its fixtures are loaded from that file so both
suites build the model the same way.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import mdtraj as md
import numpy as np
import pytest

import mdllm_kit as mk

_LM_CONFTEST = Path(__file__).parents[1] / "lm" / "conftest.py"
_spec = importlib.util.spec_from_file_location("mdllm_tests_lm_conftest", _LM_CONFTEST)
_lm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_lm)

toy_traj = _lm.toy_traj
toy_tok = _lm.toy_tok
trained_bundle_dir = _lm.trained_bundle_dir
trained_bundle = _lm.trained_bundle


@pytest.fixture(scope="session")
def references():
    """The bundled all-atom AdK crystals, closed and open."""
    return mk.datasets.adk_references()


@pytest.fixture(scope="session")
def closed_ca(references):
    """Calpha trace (214 residues) of the closed crystal, nm."""
    ref = references["closed"]
    return ref.atom_slice(ref.topology.select("name CA"))


@pytest.fixture(scope="session")
def ca_frames(closed_ca):
    """8 frames of the closed Calpha trace, frame i shifted rigidly by i * 0.1 nm along x (nm)."""
    shift = np.zeros((8, 1, 3), dtype=np.float32)
    shift[:, 0, 0] = 0.1 * np.arange(8)
    return md.Trajectory(closed_ca.xyz + shift, closed_ca.topology)
