"""Unit conversion of the analysis package (coordinates are nm inside, Angstrom only where shown)."""
from __future__ import annotations

__all__ = ["NM_TO_A"]

#: Angstrom per nanometre: nm (mdtraj, inside the toolkit) to Angstrom (values shown to people, ``_A`` keys).
NM_TO_A = 10.0
