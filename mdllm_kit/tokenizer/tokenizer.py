"""The structure tokenizer: MD frames <-> discrete tokens.

A token is a quantised piece of *local* geometry or a quantised anchor
distance; see :class:`StructureTokenizer` for the layout.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import mdtraj as md
import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..atomic import atomic_path, atomic_write_json
from ..contracts import check_frame_tokens, jitter_frame_tokens
from ..errors import TokenizerError
from ..threads import DECODE_THREADS, torch_threads
from .config import TokenizerConfig
from .clashes import min_angle_for_floor, min_nonbonded_distance
from .decode import DecodeSettings, decode_chain, place_backbone
from .geometry import internal_coordinates, pair_distances, plane_angles
from .quantize import UniformBins

__all__ = ["StructureTokenizer", "anchor_pairs"]

logger = logging.getLogger(__name__)

FORMAT = "mdllm-structure-tokenizer"
FORMAT_VERSION = 3  # 2: segment realignment in the decoder; 3: skeleton-first decoder, fitted clash floor
CONFIG_FILE = "tokenizer_config.json"
WEIGHTS_FILE = "tokenizer.safetensors"
_BACKBONE = ("N", "CA", "C", "O")
#: kinds of token that :meth:`StructureTokenizer.jitter` moves (local geometry; anchors stay)
JITTER_KINDS = frozenset({"angle", "dihedral"})
_O_ALIASES = ("O", "OT1", "OC1", "O1")

Progress = Callable[[int, int], Any] | Any


def anchor_pairs(n_residues: int, stride: int, offsets: Sequence[int]) -> np.ndarray:
    """Residue pairs whose Calpha distance is encoded as an anchor token.

    Landmarks are residues ``0, stride, 2 * stride, ...`` and the last
    residue; landmark ``i`` is paired with landmark ``i + o`` for each offset.

    Returns
    -------
    numpy.ndarray of int64, shape (n_pairs, 2)
        ``(a, c)`` with ``a < c``, sorted.
    """
    lm = list(range(0, n_residues, stride))
    if lm[-1] != n_residues - 1:
        lm.append(n_residues - 1)
    pairs = {(lm[i], lm[i + o]) for i in range(len(lm)) for o in offsets if i + o < len(lm)}
    return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)


def _report(progress: Progress | None, done: int, total: int, step: int) -> None:
    if progress is None:
        return
    if hasattr(progress, "update"):
        progress.update(step)
    else:
        progress(done, total)



class StructureTokenizer:
    """Discrete tokens for the frames of one protein, with a deterministic decoder.

    What a token is
        Per residue, two tokens of local geometry that transfer between
        conformational states: the Calpha bond angle at residue ``i`` and the
        Calpha dihedral ``(i-1, i, i+1, i+2)``, each a uniform bin
        (``codebook_size`` bins; in backbone mode the angle token also
        carries the rotation of the following peptide plane, a joint code).
        Then one token per anchor: the quantised Calpha distance between
        two landmark residues (every ``anchor_stride``-th residue, paired at
        multi-scale offsets), which fixes the global shape.

    Layout of a frame
        ``[plane0] angle_1 dihedral_1 angle_2 dihedral_2 ... angle_{n-2}
        anchor_1 ... anchor_k`` (``plane0``, the first peptide plane, only
        in backbone mode). Each kind of token has its own contiguous id
        range; ``valid_token_ranges()`` gives ``[lo, hi)`` per position.

    Decoder
        The global shape from the anchor tokens alone (a landmark skeleton,
        robust to wrong anchors), the chain of the local tokens placed onto
        it, a robust Gauss-Newton refinement that ties every angle and
        dihedral to its token while keeping the skeleton, and clash removal
        down to a floor measured on the fitting frames
        (:func:`~mdllm_kit.tokenizer.decode.decode_chain`). No structure is
        stored, nothing is random.

    Parameters
    ----------
    config : TokenizerConfig, optional
        Hyperparameters; alternatively pass them as keyword arguments.
    **kwargs
        Fields of :class:`TokenizerConfig`, e.g. ``codebook_size=512``.

    Examples
    --------
    >>> tok = StructureTokenizer().fit(train_traj)          # doctest: +SKIP
    >>> tokens = tok.encode(traj)                           # doctest: +SKIP
    >>> frames = tok.decode(tokens)                         # doctest: +SKIP
    """

    def __init__(self, config: TokenizerConfig | None = None, **kwargs: Any) -> None:
        if config is not None and kwargs:
            raise TokenizerError("pass either a TokenizerConfig or keyword arguments, not both")
        self.config = config if config is not None else TokenizerConfig(**kwargs)
        self._fitted: dict[str, Any] | None = None
        self._tensors: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ state
    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`from_pretrained`) has run."""
        return self._fitted is not None

    def _need_fit(self) -> dict[str, Any]:
        if self._fitted is None:
            raise TokenizerError("the tokenizer is not fitted; call .fit(traj) or StructureTokenizer.from_pretrained(dir)")
        return self._fitted

    @property
    def mode(self) -> str:
        """``"ca"`` or ``"backbone"``: the atoms encoded and decoded."""
        return self._need_fit()["mode"]

    @property
    def n_residues(self) -> int:
        """Residue count of the protein the tokenizer was fitted on."""
        return int(self._need_fit()["n_residues"])

    @property
    def n_anchors(self) -> int:
        """Anchor-distance tokens per frame."""
        return int(self._tensors["anchor_pairs"].shape[0]) if self.is_fitted else 0

    def _kinds(self) -> list[tuple[str, int]]:
        c = self.config
        if self.mode == "backbone":
            return [
                ("plane", c.plane_bins),
                ("angle_plane", c.backbone_angle_bins * c.plane_bins),
                ("dihedral", c.codebook_size),
                ("distance", c.codebook_size),
            ]
        return [("angle", c.codebook_size), ("dihedral", c.codebook_size), ("distance", c.codebook_size)]

    def kind_ranges(self) -> dict[str, tuple[int, int]]:
        """Id range ``[lo, hi)`` of each kind of token.

        Returns
        -------
        dict of str to (int, int)
            Kinds ``angle``, ``dihedral``, ``distance`` (Calpha mode) or
            ``plane``, ``angle_plane``, ``dihedral``, ``distance`` (backbone
            mode); ranges are contiguous from 0 and together cover
            ``range(vocab_size)``.
        """
        out, lo = {}, 0
        for name, size in self._kinds():
            out[name] = (lo, lo + size)
            lo += size
        return out

    @property
    def vocab_size(self) -> int:
        """Number of distinct token ids (all kinds together)."""
        return sum(size for _, size in self._kinds())

    def _layout(self) -> dict[str, np.ndarray]:
        """Frame positions of each kind, in the order of its values."""
        n = self.n_residues
        n_ang, n_dih = n - 2, n - 3
        start = 1 if self.mode == "backbone" else 0
        ang = start + 2 * np.arange(n_ang)
        dih = start + 2 * np.arange(n_dih) + 1
        anc = start + n_ang + n_dih + np.arange(self.n_anchors)
        lay = {"angle_plane" if self.mode == "backbone" else "angle": ang, "dihedral": dih, "distance": anc}
        if self.mode == "backbone":
            lay["plane"] = np.array([0])
        return lay

    @property
    def tokens_per_frame(self) -> int:
        """Tokens of one frame: ``2 n - 5`` local tokens (+1 in backbone mode) plus the anchors."""
        n = self.n_residues
        return (2 * n - 5) + self.n_anchors + (1 if self.mode == "backbone" else 0)

    def position_kinds(self) -> list[str]:
        """Kind of token at each position of a frame (length ``tokens_per_frame``)."""
        kinds = [""] * self.tokens_per_frame
        for name, pos in self._layout().items():
            for p in pos:
                kinds[p] = name
        return kinds

    @property
    def periodic_kinds(self) -> frozenset[str]:
        """Kinds of token whose bins are a periodic angle in [-pi, pi) (their bin distance wraps around)."""
        return frozenset(name for name, q in self._quantisers().items() if q.periodic)

    def valid_token_ranges(self) -> np.ndarray:
        """Valid id range of every position of a frame.

        Returns
        -------
        numpy.ndarray of int64, shape (tokens_per_frame, 2)
            ``[lo, hi)`` per position; a sampler should only draw ids in it.
        """
        rng = self.kind_ranges()
        return np.array([rng[k] for k in self.position_kinds()], dtype=np.int64)

    def position_vocab(self, position: int) -> tuple[int, int]:
        """Valid id range ``[lo, hi)`` of one position of a frame."""
        if not 0 <= position < self.tokens_per_frame:
            raise TokenizerError(f"position {position} is outside a frame of {self.tokens_per_frame} tokens")
        lo, hi = self.valid_token_ranges()[position]
        return int(lo), int(hi)

    @property
    def fingerprint(self) -> str:
        """Short hash of the config and the fitted state; equal fingerprints decode identically."""
        fitted = self._need_fit()
        h = hashlib.sha256()
        meta = {k: v for k, v in fitted.items() if k != "fingerprint"}
        h.update(json.dumps({"config": self.config.to_dict(), "fitted": meta}, sort_keys=True).encode())
        for name in sorted(self._tensors):
            t = self._tensors[name].detach().cpu().contiguous()
            h.update(name.encode())
            h.update(t.numpy().tobytes())
        return h.hexdigest()[:16]

    # ------------------------------------------------------------- quantisers
    def _quantisers(self) -> dict[str, UniformBins]:
        c = self.config
        lo, hi = (math.radians(v) for v in c.angle_range_deg)
        n_ang = c.backbone_angle_bins if self.mode == "backbone" else c.codebook_size
        return {
            "angle": UniformBins(lo, hi, n_ang),
            "dihedral": UniformBins(-math.pi, math.pi, c.codebook_size, periodic=True),
            "distance": UniformBins(0.0, float(self._need_fit()["max_distance_nm"]), c.codebook_size),
            "plane": UniformBins(-math.pi, math.pi, c.plane_bins, periodic=True),
        }

    def _device(self) -> torch.device:
        d = self.config.device
        if d == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            return torch.device(d)
        except RuntimeError as exc:
            raise TokenizerError(f"unknown device {d!r}: {exc}") from exc

    # ------------------------------------------------------------- atoms in
    def _select(self, traj: md.Trajectory, mode: str | None, n_residues: int | None) -> tuple[np.ndarray, list[str]]:
        """Coordinates of the atoms the tokenizer uses: (f, n, 1 or 4, 3) nm, and residue names."""
        if not isinstance(traj, md.Trajectory):
            raise TokenizerError(f"expected an mdtraj.Trajectory, got {type(traj).__name__}")
        if traj.n_frames == 0:
            raise TokenizerError("the trajectory has no frames; pass at least one frame")
        residues = [r for r in traj.topology.residues if r.is_protein and any(a.name == "CA" for a in r.atoms)]
        if not residues:
            residues = [r for r in traj.topology.residues if any(a.name == "CA" for a in r.atoms)]
        if n_residues is not None and len(residues) != n_residues:
            raise TokenizerError(
                f"the trajectory has {len(residues)} protein residues with a CA atom but the tokenizer was fitted on "
                f"{n_residues}; use a trajectory of the same protein (same residues, same order)"
            )
        if len(residues) < 5:
            raise TokenizerError(f"need at least 5 residues with a CA atom, found {len(residues)}")
        names = ["CA"] if mode == "ca" else list(_BACKBONE)
        idx = np.empty((len(residues), len(names)), dtype=np.int64)
        for i, res in enumerate(residues):
            atoms = {a.name: a.index for a in res.atoms}
            for j, name in enumerate(names):
                found = atoms.get(name)
                if found is None and name == "O":
                    found = next((atoms[a] for a in _O_ALIASES if a in atoms), None)
                if found is None:
                    raise TokenizerError(
                        f"residue {res} has no {name} atom; this tokenizer encodes {', '.join(names)} of every "
                        "residue (fit a Calpha-only tokenizer with atoms='ca' for coarse-grained input)"
                    )
                idx[i, j] = found
        xyz = traj.xyz[:, idx.ravel()].reshape(traj.n_frames, len(residues), len(names), 3)
        if not np.isfinite(xyz).all():
            raise TokenizerError("the trajectory has NaN or infinite coordinates")
        return xyz, [r.name for r in residues]

    def _check_sequence(self, names: list[str]) -> None:
        ref = self._need_fit()["residue_names"]
        for i, (a, b) in enumerate(zip(names, ref)):
            if a != b and not (a[:2] == b[:2] == "HI" or a[:2] == b[:2] == "CY"):
                raise TokenizerError(
                    f"residue {i} is {a} but the tokenizer was fitted on {b} there; it encodes one protein only: "
                    "use frames of that protein, or a tokenizer fitted on this one (mdllm tokenizer fit)"
                )

    # -------------------------------------------------------------- fitting
    def fit(self, traj: md.Trajectory | Sequence[md.Trajectory], progress: Progress | None = None) -> "StructureTokenizer":
        """Measure what the tokens need from training frames of one protein.

        Fitting records the residue sequence, the mean and spread of every
        Calpha-Calpha bond length, the range of the anchor distances and, in
        backbone mode, the mean peptide geometry. It stores no conformation.

        Parameters
        ----------
        traj : mdtraj.Trajectory or list of them
            Frames of one protein, any atoms (all-atom input is reduced).
        progress : callable or tqdm-like, optional
            Called as ``progress(done, total)`` per trajectory, or
            ``progress.update(1)`` if it has an ``update`` method.

        Returns
        -------
        StructureTokenizer
            ``self``, fitted.
        """
        trajs = [traj] if isinstance(traj, md.Trajectory) else list(traj)
        if not trajs:
            raise TokenizerError("fit needs at least one trajectory")
        mode = self.config.atoms
        if mode == "auto":
            try:
                for t in trajs:
                    self._select(t, "backbone", None)
                mode = "backbone"
            except TokenizerError:
                mode = "ca"
        n_res: int | None = None
        names: list[str] | None = None
        bonds, distances, templates, closest = [], [], [], []
        for k, t in enumerate(trajs):
            xyz, nm = self._select(t, mode, n_res)
            if names is None:
                n_res, names = len(nm), nm
                pairs = torch.as_tensor(anchor_pairs(n_res, self.config.anchor_stride, self.config.anchor_offsets))
            elif nm != names:
                raise TokenizerError(f"trajectory {k} has a different residue sequence than trajectory 0")
            x = torch.as_tensor(xyz, dtype=torch.float64)
            ca = x[:, :, 1] if mode == "backbone" else x[:, :, 0]
            b, _, _ = internal_coordinates(ca)
            bonds.append(b)
            distances.append(pair_distances(ca, pairs).max().item())
            closest.append(min_nonbonded_distance(ca))
            if mode == "backbone":
                templates.append(_backbone_template(x))
            _report(progress, k + 1, len(trajs), 1)
        assert n_res is not None and names is not None
        b = torch.cat(bonds)
        max_d = self.config.max_distance_nm or 1.25 * max(distances) + 1.0
        self._fitted = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "mode": mode,
            "n_residues": n_res,
            "residue_names": names,
            "max_distance_nm": float(max_d),
            "n_fit_frames": int(b.shape[0]),
            "clash_floor_nm": self._clash_floor(torch.cat(closest)),
        }
        self._tensors = {
            "anchor_pairs": pairs,
            "bond_mean": b.mean(0),
            "bond_sigma": b.std(0).mean().clamp_min(1e-3).reshape(1) if b.shape[0] > 1 else torch.tensor([5e-3], dtype=torch.float64),
        }
        if mode == "backbone":
            w = torch.tensor([float(t.n_frames) for t in trajs], dtype=torch.float64)
            self._tensors["backbone_template"] = (torch.stack(templates) * (w / w.sum())[:, None, None]).sum(0)
        logger.info(
            "fitted %s tokenizer: %d residues, %d frames, %d tokens/frame, vocab %d",
            mode, n_res, b.shape[0], self.tokens_per_frame, self.vocab_size,
        )
        return self

    # ------------------------------------------------------------- encoding
    def encode(self, traj: md.Trajectory, progress: Progress | None = None) -> np.ndarray:
        """Tokens of every frame.

        Parameters
        ----------
        traj : mdtraj.Trajectory
            Frames of the fitted protein, any atoms that include the encoded ones.
        progress : callable or tqdm-like, optional

        Returns
        -------
        numpy.ndarray of int64, shape (n_frames, tokens_per_frame)
            Token ids in ``[0, vocab_size)``.
        """
        fitted = self._need_fit()
        xyz, names = self._select(traj, self.mode, self.n_residues)
        self._check_sequence(names)
        q = self._quantisers()
        rng = self.kind_ranges()
        lay = self._layout()
        pairs = self._tensors["anchor_pairs"]
        out = np.empty((xyz.shape[0], self.tokens_per_frame), dtype=np.int64)
        n_clip = 0
        bs = self.config.batch_size
        for s in range(0, xyz.shape[0], bs):
            x = torch.as_tensor(xyz[s : s + bs], dtype=torch.float64)
            ca = x[:, :, 1] if self.mode == "backbone" else x[:, :, 0]
            _, ang, dih = internal_coordinates(ca)
            c_ang, clip_a = q["angle"].encode(ang)
            c_dih, _ = q["dihedral"].encode(dih)
            c_dst, clip_d = q["distance"].encode(pair_distances(ca, pairs))
            n_clip += int(clip_a.sum()) + int(clip_d.sum())
            blk = out[s : s + bs]
            if self.mode == "backbone":
                c_pl, _ = q["plane"].encode(plane_angles(ca, x[:, :, 3]))
                nb = self.config.plane_bins
                blk[:, lay["plane"]] = c_pl[:, :1].numpy() + rng["plane"][0]
                blk[:, lay["angle_plane"]] = (c_ang * nb + c_pl[:, 1:]).numpy() + rng["angle_plane"][0]
            else:
                blk[:, lay["angle"]] = c_ang.numpy() + rng["angle"][0]
            blk[:, lay["dihedral"]] = c_dih.numpy() + rng["dihedral"][0]
            blk[:, lay["distance"]] = c_dst.numpy() + rng["distance"][0]
            _report(progress, min(s + bs, xyz.shape[0]), xyz.shape[0], x.shape[0])
        if n_clip:
            logger.warning(
                "%d bond angles or anchor distances fell outside the token range (angles %s deg, distances < %.2f nm) "
                "and were clipped", n_clip, self.config.angle_range_deg, fitted["max_distance_nm"],
            )
        return out

    def check_tokens(self, tokens: np.ndarray | torch.Tensor | Sequence[Sequence[int]]) -> np.ndarray:
        """Validate token ids and return them as an int64 array of shape (n_frames, tokens_per_frame).

        A 1-D array of length ``tokens_per_frame`` is taken as one frame.
        Raises :class:`~mdllm_kit.errors.TokenizerError` for a wrong shape,
        non-integer values or an id outside its position's valid range.
        """
        arr = check_frame_tokens(tokens, self.valid_token_ranges(), kinds=self.position_kinds(), error=TokenizerError)
        return arr.copy() if isinstance(tokens, np.ndarray) and np.shares_memory(arr, tokens) else arr  # never a view

    # ------------------------------------------------------------- decoding
    def _clash_floor(self, closest: torch.Tensor) -> float:
        """Decoder clash floor (nm) from the fitting frames' smallest non-bonded Calpha distances."""
        from ..analysis.validity import CA_CLASH_NM

        if self.config.clash_floor_nm is not None:
            return float(self.config.clash_floor_nm)
        return min(max(CA_CLASH_NM + 0.01, float(torch.quantile(closest, 0.01))), CA_CLASH_NM + 0.06)

    def _decode_settings(self) -> DecodeSettings:
        c = self.config
        floor = float(self._need_fit()["clash_floor_nm"])
        bond = float(self._tensors["bond_mean"].min())
        a_lo = math.radians(c.angle_range_deg[0])
        return DecodeSettings(
            refine_iterations=c.refine_iterations, skeleton_iterations=c.skeleton_iterations,
            robust_scale_nm=c.robust_scale_nm, prior_scale=c.prior_scale, clash_floor_nm=floor,
            clash_iterations=c.clash_iterations, hinge_tolerance_nm=c.hinge_tolerance_nm, hinge_rounds=c.hinge_rounds,
            min_angle=max(a_lo, min_angle_for_floor(floor, bond)),
        )

    def decode(self, tokens: np.ndarray | torch.Tensor, progress: Progress | None = None,
               threads: int | None = DECODE_THREADS) -> md.Trajectory:
        """Coordinates of token frames; the same tokens always give the same coordinates.

        Parameters
        ----------
        tokens : array of int, shape (n_frames, tokens_per_frame)
        progress : callable or tqdm-like, optional
        threads : int, optional
            torch threads while decoding on a CPU (default
            :data:`mdllm_kit.threads.DECODE_THREADS`, 1: the per-frame matrices
            are tiny and a second thread made decoding 20 times slower on a
            busy 2-core machine); ``None`` keeps torch's setting.

        Returns
        -------
        mdtraj.Trajectory
            Calpha atoms (Calpha mode) or N, CA, C, O of every residue
            (backbone mode), nm, centred at the origin, in an arbitrary but
            fixed orientation; superpose before comparing.
        """
        arr = self.check_tokens(tokens)
        dev = self._device()
        with torch_threads(threads if dev.type == "cpu" else None):
            return self._decode(arr, dev, progress)

    def _decode(self, arr: np.ndarray, dev: torch.device, progress: Progress | None) -> md.Trajectory:
        q = self._quantisers()
        rng = self.kind_ranges()
        lay = self._layout()
        n = self.n_residues
        pairs = self._tensors["anchor_pairs"].to(dev)
        bond = self._tensors["bond_mean"].to(dev)
        sigma = torch.cat((
            self._tensors["bond_sigma"].expand(n - 1),
            torch.full((n - 2,), q["angle"].rms_error, dtype=torch.float64),
            torch.full((n - 3,), q["dihedral"].rms_error, dtype=torch.float64),
        )).to(dev)
        settings = self._decode_settings()
        n_atoms = 4 if self.mode == "backbone" else 1
        out = np.empty((arr.shape[0], n * n_atoms, 3), dtype=np.float32)
        bs = self.config.batch_size
        for s in range(0, arr.shape[0], bs):
            t = torch.as_tensor(arr[s : s + bs], device=dev)
            f = t.shape[0]
            if self.mode == "backbone":
                nb = self.config.plane_bins
                joint = t[:, lay["angle_plane"]] - rng["angle_plane"][0]
                ang = q["angle"].decode(torch.div(joint, nb, rounding_mode="floor"))
                planes = torch.cat((t[:, lay["plane"]] - rng["plane"][0], torch.remainder(joint, nb)), dim=1)
            else:
                ang = q["angle"].decode(t[:, lay["angle"]] - rng["angle"][0])
            dih = q["dihedral"].decode(t[:, lay["dihedral"]] - rng["dihedral"][0])
            dst = q["distance"].decode(t[:, lay["distance"]] - rng["distance"][0])
            q0 = torch.cat((bond.expand(f, -1), ang, dih), dim=1)
            ca = decode_chain(q0, sigma, pairs, dst, q["distance"].rms_error, settings)
            if self.mode == "backbone":
                bb = place_backbone(ca, q["plane"].decode(planes), self._tensors["backbone_template"].to(dev))
                xyz = bb.reshape(f, n * 4, 3)
            else:
                xyz = ca
            out[s : s + f] = xyz.cpu().numpy()
            _report(progress, s + f, arr.shape[0], f)
        return md.Trajectory(out, self._topology())

    def _topology(self) -> md.Topology:
        top = md.Topology()
        chain = top.add_chain()
        names = ["CA"] if self.mode == "ca" else list(_BACKBONE)
        elements = {"N": "nitrogen", "CA": "carbon", "C": "carbon", "O": "oxygen"}
        for i, rn in enumerate(self._need_fit()["residue_names"]):
            res = top.add_residue(rn, chain, resSeq=i + 1)
            for a in names:
                top.add_atom(a, md.element.get_by_symbol(elements[a][0].upper()) if a != "CA" else md.element.carbon, res)
        atoms = list(top.atoms)
        if self.mode == "backbone":
            for i in range(len(atoms) // 4):
                top.add_bond(atoms[4 * i], atoms[4 * i + 1])
                top.add_bond(atoms[4 * i + 1], atoms[4 * i + 2])
                top.add_bond(atoms[4 * i + 2], atoms[4 * i + 3])
                if i + 1 < len(atoms) // 4:
                    top.add_bond(atoms[4 * i + 2], atoms[4 * i + 4])
        else:
            for a, b in zip(atoms[:-1], atoms[1:]):
                top.add_bond(a, b)
        return top

    def reduce(self, traj: md.Trajectory) -> md.Trajectory:
        """The atoms of ``traj`` this tokenizer encodes, in decoder order (for comparing with :meth:`decode`)."""
        xyz, names = self._select(traj, self.mode, self.n_residues)
        self._check_sequence(names)
        return md.Trajectory(xyz.reshape(xyz.shape[0], -1, 3), self._topology(), time=traj.time)

    # ---------------------------------------------------------------- noise
    def jitter(self, tokens: np.ndarray, bins: float, seed: int = 0) -> np.ndarray:
        """Tokens with every bond-angle and dihedral token moved as a sampler would (noise benchmark).

        Each ``angle`` and ``dihedral`` position is moved by a rounded Gaussian
        of ``bins`` codes (periodic kinds wrap, others are clipped at the ends
        of their range); anchors and every other kind stay as they are. In
        backbone mode the bond angle is the angle part of the joint
        ``angle_plane`` code: that part moves by ``bins`` angle bins (clipped)
        and the peptide-plane part stays, like the ``plane`` token.

        Parameters
        ----------
        tokens : array of int, shape (n_frames, tokens_per_frame)
        bins : float
            Standard deviation of the move, in codes (>= 0).
        seed : int

        Returns
        -------
        numpy.ndarray of int64, same shape
        """
        tokens = self.check_tokens(tokens)
        if not bins >= 0:
            raise TokenizerError(f"bins must be >= 0, got {bins}")
        ranges, kinds = self.valid_token_ranges(), self.position_kinds()
        if self.mode != "backbone":
            return jitter_frame_tokens(tokens, ranges, kinds, self.periodic_kinds, bins,
                                       np.random.default_rng(seed), moved_kinds=JITTER_KINDS)
        # move the angle part of each joint angle/plane code as an "angle" token of backbone_angle_bins codes
        pos, lo, nb = self._layout()["angle_plane"], self.kind_ranges()["angle_plane"][0], self.config.plane_bins
        joint = tokens[:, pos] - lo
        view = tokens.copy()
        view[:, pos] = joint // nb
        ranges[pos] = (0, self.config.backbone_angle_bins)
        kinds = ["angle" if k == "angle_plane" else k for k in kinds]
        out = jitter_frame_tokens(view, ranges, kinds, self.periodic_kinds, bins, np.random.default_rng(seed),
                                  moved_kinds=JITTER_KINDS)
        out[:, pos] = lo + out[:, pos] * nb + joint % nb
        return out

    def perturb(self, tokens: np.ndarray, fraction: float, how: str = "neighbour", seed: int = 0) -> np.ndarray:
        """Tokens with a fraction of positions moved to another valid code (noise benchmark).

        Parameters
        ----------
        tokens : array of int, shape (n_frames, tokens_per_frame)
        fraction : float
            Probability that a position is changed, in [0, 1].
        how : {"neighbour", "random"}
            ``"neighbour"``: the adjacent bin (+1 or -1 with equal chance;
            periodic kinds wrap, others reflect at the ends; for the joint
            angle/plane code, the adjacent plane bin). ``"random"``: uniform
            over the position's valid ids.
        seed : int

        Returns
        -------
        numpy.ndarray of int64, same shape
        """
        arr = self.check_tokens(tokens).copy()
        if not 0.0 <= fraction <= 1.0:
            raise TokenizerError(f"fraction must be in [0, 1], got {fraction}")
        gen = np.random.default_rng(seed)
        mask = gen.random(arr.shape) < fraction
        ranges = self.valid_token_ranges()
        lo = np.broadcast_to(ranges[:, 0], arr.shape)
        hi = np.broadcast_to(ranges[:, 1], arr.shape)
        if how == "random":
            new = lo + np.floor(gen.random(arr.shape) * (hi - lo)).astype(np.int64)
        elif how == "neighbour":
            step = np.where(gen.random(arr.shape) < 0.5, -1, 1)
            kinds = np.array(self.position_kinds())
            period = np.broadcast_to(np.where(np.isin(kinds, ["dihedral", "plane"]), hi[0] - lo[0], 0), arr.shape)
            code = arr - lo
            if self.mode == "backbone":
                nb = self.config.plane_bins
                joint = np.broadcast_to(kinds == "angle_plane", arr.shape)
                jnew = (code // nb) * nb + np.remainder(code % nb + step, nb)
            moved = code + step
            size = hi - lo
            moved = np.where(period > 0, np.remainder(moved, np.maximum(size, 1)), np.where(moved < 0, 1, np.where(moved >= size, size - 2, moved)))
            if self.mode == "backbone":
                moved = np.where(joint, jnew, moved)
            new = lo + moved
        else:
            raise TokenizerError(f"how must be 'neighbour' or 'random', got {how!r}")
        arr[mask] = new[mask]
        return arr

    # ------------------------------------------------------------ save/load
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write the config (JSON) and the fitted tensors (safetensors) to ``directory``.

        Files are written atomically (temporary file, then rename).

        Returns
        -------
        pathlib.Path
            The directory.
        """
        fitted = self._need_fit()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {"config": self.config.to_dict(), "fitted": fitted, "fingerprint": self.fingerprint}
        tensors = {k: v.detach().cpu().contiguous() for k, v in self._tensors.items()}
        with atomic_path(d / WEIGHTS_FILE) as tmp:
            save_file(tensors, str(tmp), metadata={"format": FORMAT, "fingerprint": meta["fingerprint"]})
        atomic_write_json(d / CONFIG_FILE, meta)
        return d

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str | None = None) -> "StructureTokenizer":
        """Load a tokenizer written by :meth:`save_pretrained`.

        Parameters
        ----------
        directory : path
        device : str, optional
            Overrides the saved ``device`` setting (e.g. ``"cpu"``).

        Raises
        ------
        TokenizerError
            If files are missing, of another format, or do not match their fingerprint.
        """
        d = Path(directory)
        cfg_path, w_path = d / CONFIG_FILE, d / WEIGHTS_FILE
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise TokenizerError(f"{p} is missing; is {d} a directory written by StructureTokenizer.save_pretrained?")
        try:
            meta = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as exc:
            raise TokenizerError(f"{cfg_path} is not valid JSON: {exc}") from exc
        if not isinstance(meta, dict) or meta.get("fitted", {}).get("format") != FORMAT:
            raise TokenizerError(f"{cfg_path} is not a {FORMAT} config")
        if meta["fitted"].get("format_version") != FORMAT_VERSION:
            raise TokenizerError(f"{cfg_path} has format version {meta['fitted'].get('format_version')}, expected {FORMAT_VERSION}")
        cfg = meta["config"]
        if device is not None:
            cfg = {**cfg, "device": device}
        tok = cls(TokenizerConfig.from_dict(cfg))
        tok._fitted = meta["fitted"]
        try:
            tok._tensors = load_file(str(w_path))
        except Exception as exc:  # safetensors raises its own error types
            raise TokenizerError(f"cannot read {w_path} ({' '.join(str(exc).split())}): the file is damaged; copy the "
                                 "tokenizer folder again or fit it again (mdllm tokenizer fit)") from exc
        if device is None and tok.fingerprint != meta.get("fingerprint"):
            raise TokenizerError(f"{d} is inconsistent: its fingerprint does not match its contents")
        if device is not None:
            tmp = cls(TokenizerConfig.from_dict(meta["config"]))
            tmp._fitted, tmp._tensors = tok._fitted, tok._tensors
            if tmp.fingerprint != meta.get("fingerprint"):
                raise TokenizerError(f"{d} is inconsistent: its fingerprint does not match its contents")
        return tok

    def __repr__(self) -> str:
        if not self.is_fitted:
            return f"StructureTokenizer(codebook_size={self.config.codebook_size}, unfitted)"
        return (
            f"StructureTokenizer(mode={self.mode!r}, n_residues={self.n_residues}, "
            f"tokens_per_frame={self.tokens_per_frame}, vocab_size={self.vocab_size})"
        )


def _backbone_template(x: torch.Tensor) -> torch.Tensor:
    """Mean local coordinates of C, O, N(+1), N(0), C(last), O(last) in the peptide-plane axes.

    Parameters
    ----------
    x : torch.Tensor, shape (n_frames, n, 4, 3)
        N, CA, C, O per residue (nm).

    Returns
    -------
    torch.Tensor, shape (6, 3)
    """
    from .geometry import plane_axes

    ca = x[:, :, 1]
    ax = plane_axes(ca, plane_angles(ca, x[:, :, 3]))  # (f, n-1, 3, 3)

    def local(v: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
        return torch.einsum("...d,...cd->...c", v, axes)

    c = local(x[:, :-1, 2] - ca[:, :-1], ax).mean((0, 1))
    o = local(x[:, :-1, 3] - ca[:, :-1], ax).mean((0, 1))
    n1 = local(x[:, 1:, 0] - ca[:, :-1], ax).mean((0, 1))
    n0 = local(x[:, 0, 0] - ca[:, 0], ax[:, 0]).mean(0)
    cl = local(x[:, -1, 2] - ca[:, -1], ax[:, -1]).mean(0)
    ol = local(x[:, -1, 3] - ca[:, -1], ax[:, -1]).mean(0)
    return torch.stack((c, o, n1, n0, cl, ol))
