"""Make the protein-only AdK reference structures shipped in ``mdllm_kit/data/adk``.

Reads the CHARMM-named structures (``adk_closed.pdb`` = PDB 1AKE coordinates,
``adk_open.pdb`` = PDB 4AKE coordinates) together with the CHARMM ``adk.psf``
(so that elements are right: from the PDB alone mdtraj guesses HG*/HE* as
mercury/helium), keeps heavy atoms, renames residues and atoms to PDB
conventions and writes small PDB files.

Usage::

    python scripts/make_adk_references.py ../shared/data/adk mdllm_kit/data/adk
"""
from __future__ import annotations

import argparse
from pathlib import Path

import mdtraj as md

RESIDUE_RENAMES = {"HSD": "HIS", "HSE": "HIS", "HSP": "HIS"}
ATOM_RENAMES = {("ILE", "CD"): "CD1", ("*", "OT1"): "O", ("*", "OT2"): "OXT"}


def standardise(traj: md.Trajectory) -> md.Trajectory:
    """Return heavy atoms only, with PDB residue and atom names."""
    heavy = traj.topology.select("not element H")
    out = traj.atom_slice(heavy)
    for residue in out.topology.residues:
        residue.name = RESIDUE_RENAMES.get(residue.name, residue.name)
        for atom in residue.atoms:
            atom.name = ATOM_RENAMES.get((residue.name, atom.name),
                                         ATOM_RENAMES.get(("*", atom.name), atom.name))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder with adk.psf, adk_closed.pdb, adk_open.pdb")
    parser.add_argument("dest", type=Path, help="output folder")
    args = parser.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)
    for state in ("closed", "open"):
        traj = md.load(args.source / f"adk_{state}.pdb", top=args.source / "adk.psf")
        out = standardise(traj)
        out.unitcell_vectors = None
        out.save_pdb(str(args.dest / f"adk_{state}.pdb"))
        print(f"{state}: {out.n_atoms} atoms, {out.n_residues} residues -> {args.dest / f'adk_{state}.pdb'}")


if __name__ == "__main__":
    main()
