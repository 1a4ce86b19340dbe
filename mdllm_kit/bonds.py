"""Bond-length limits of a protein chain, in one place (nm).

Three different questions use three different limits; each is defined here
once and imported by the code that asks it:

* **Is a decoded Calpha bond physical?** :data:`CA_BOND_OK_NM`, 3.5-4.1 A
  around the 3.8 A trans Calpha-Calpha distance (the tokenizer's
  ``bonds_ok_pct`` and the demo's "physical bonds").
* **Is a generated chain broken?** :data:`CA_BREAK_NM` (4.2 A) and
  :data:`CA_CLASH_NM` (3.0 A), ProteinBench's criteria
  (:mod:`mdllm_kit.analysis.validity` explains them), and
  :data:`PEPTIDE_BOND_MAX_NM` (2.0 A) for C(i)-N(i+1).
* **Are two residues of a loaded structure bonded at all?**
  :data:`PEPTIDE_BOND_MAX_NM` between C and N and, for Calpha-only input,
  :data:`CA_CHAIN_BREAK_NM` (5 A: consecutive Calpha atoms are 3.8 A apart
  trans and 2.9 A cis, Calpha(i)-Calpha(i+2) never closer than 5 A); used by
  :func:`mdllm_kit.find_chain_breaks` at load time.
"""
from __future__ import annotations

__all__ = ["CA_BOND_NM", "CA_BOND_OK_NM", "CA_BREAK_NM", "CA_CHAIN_BREAK_NM", "CA_CLASH_NM", "PEPTIDE_BOND_MAX_NM"]

#: Consecutive (trans) Calpha-Calpha distance (3.8 A).
CA_BOND_NM = 0.38
#: ``(low, high)``: a consecutive Calpha-Calpha distance in this range is physical (3.5-4.1 A).
CA_BOND_OK_NM: tuple[float, float] = (0.35, 0.41)
#: Consecutive Calpha atoms farther apart than this are a broken chain (4.2 A).
CA_BREAK_NM = 0.42
#: Two non-bonded Calpha atoms closer than this clash (3.0 A).
CA_CLASH_NM = 0.30
#: A C(i)-N(i+1) distance above this means the residues are not bonded (2.0 A; the bond is 1.33 A).
PEPTIDE_BOND_MAX_NM = 0.2
#: Load time, Calpha-only input: consecutive Calpha atoms farther apart than this are not bonded (5 A).
CA_CHAIN_BREAK_NM = 0.5
