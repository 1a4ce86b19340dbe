"""The ensemble of generated walkers and its output folder: one type, one format, one writer.

:class:`GeneratedEnsemble` holds what a sampling or exploration run made:
tokens ``(n_walkers, n_frames, L)``, log-likelihoods and the frames decoded
from the tokens (lazily), frame-major over walkers (the rule is
:func:`mdllm_kit.contracts.frame_major_index`). :class:`RunWriter` streams a
run into its folder; :meth:`GeneratedEnsemble.load` reads it back. Sampling
(:mod:`mdllm_kit.lm.sampler`) and exploration (:mod:`mdllm_kit.exploration`)
write through the same writer, so ``mdllm analyze``, the viewers and
``--resume`` treat both alike.

Output folder (written as frames are generated, every ``flush_every`` frames)::

    params.json      sampling settings, bundle, seed frames (written first)
    tokens.npz       tokens (n_walkers, n_done, L), log_likelihood (n_walkers, n_done),
                     seed_tokens (n_walkers, n_seed, L) -- the record a continued run starts from
                     (replaced atomically at every flush, before the frames are appended to the xtc)
    trajectory.xtc   decoded frames, frame-major: frame i of walker k is frame i * n_walkers + k
    topology.pdb     topology of the decoded frames

``trajectory.xtc`` and ``topology.pdb`` derive from ``tokens.npz``: a run
killed between the two writes leaves them short or cut, and
:meth:`GeneratedEnsemble.load` rebuilds what they lack from the tokens
(``--resume`` rewrites them).
An exploration run adds ``exploration.json`` (:mod:`mdllm_kit.exploration.engine`).
"""
from __future__ import annotations

import json
import logging
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mdtraj as md
import numpy as np

from .atomic import atomic_path, atomic_write_json, remove_stale_temporaries
from .errors import SamplingError

__all__ = ["GeneratedEnsemble", "RunWriter", "decode_frame_major"]

logger = logging.getLogger(__name__)


class GeneratedEnsemble:
    """Generated trajectories of ``n_walkers`` walkers: tokens, log-likelihoods and (lazily) decoded frames.

    The one ensemble type of mdllm-kit: :meth:`mdllm_kit.Sampler.sample` and
    :func:`mdllm_kit.explore` return it, :func:`mdllm_kit.analyze`, the
    viewers and ``mdllm analyze`` take it. Frames are decoded from the tokens
    the first time :attr:`trajectory` is read (a run read back from its
    folder uses the saved ``trajectory.xtc`` when it is complete).

    Parameters
    ----------
    tokens : numpy.ndarray of int, shape (n_walkers, n_frames, L)
    log_likelihood : numpy.ndarray of float, shape (n_walkers, n_frames)
    trajectory : mdtraj.Trajectory, optional
        The decoded frames, frame-major, if already at hand.
    params : dict, optional
    path : path-like, optional
    tokenizer : FrameTokenizer, optional
        Decodes :attr:`tokens` when :attr:`trajectory` is first read (needed
        when ``trajectory`` is not given).

    Attributes
    ----------
    tokens : numpy.ndarray of int64, shape (n_walkers, n_frames, L)
        Structure tokens of every generated frame.
    log_likelihood : numpy.ndarray of float64, shape (n_walkers, n_frames)
        Log-likelihood (nats) of each frame under the model given its
        context, at temperature 1 over the whole vocabulary (before masking
        and truncation): low values flag frames the model finds unusual.
    trajectory : mdtraj.Trajectory
        Decoded frames, frame-major: frame ``i`` of walker ``k`` is
        ``trajectory[i * n_walkers + k]`` (see :meth:`walker`); decoded on
        first access.
    params : dict
        Sampling settings and provenance (``params.json``); an exploration
        run's ``params["exploration"]`` describes its strategy.
    path : pathlib.Path, optional
        Output folder.
    """

    def __init__(self, tokens: np.ndarray, log_likelihood: np.ndarray, trajectory: md.Trajectory | None = None,
                 params: dict[str, Any] | None = None, path: str | os.PathLike | None = None, *,
                 tokenizer: Any = None) -> None:
        self.tokens = np.asarray(tokens)
        self.log_likelihood = np.asarray(log_likelihood)
        if self.tokens.ndim != 3 or self.log_likelihood.shape != self.tokens.shape[:2]:
            raise SamplingError(f"an ensemble holds tokens (walkers, frames, L) and log-likelihoods (walkers, "
                                f"frames); got {self.tokens.shape} and {self.log_likelihood.shape}")
        if trajectory is None and tokenizer is None:
            raise SamplingError("an ensemble without decoded frames needs the tokenizer that decodes its tokens")
        self._trajectory = trajectory
        self.tokenizer = tokenizer
        self.params = dict(params or {})
        self.path = Path(path) if path is not None else None

    @property
    def trajectory(self) -> md.Trajectory:
        if self._trajectory is None:
            self._trajectory = decode_frame_major(self.tokenizer, self.tokens)
        return self._trajectory

    @property
    def decoded(self) -> bool:
        """Whether the frames are decoded already (reading :attr:`trajectory` decodes them)."""
        return self._trajectory is not None

    @property
    def n_walkers(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def n_frames(self) -> int:
        """Frames per walker."""
        return int(self.tokens.shape[1])

    def walker(self, k: int) -> md.Trajectory:
        """The decoded trajectory of walker ``k`` (``n_frames`` frames)."""
        if not 0 <= k < self.n_walkers:
            raise SamplingError(f"walker {k} does not exist; there are {self.n_walkers}")
        return self.trajectory[k:: self.n_walkers]

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path is not None else ""
        return (f"GeneratedEnsemble(n_walkers={self.n_walkers}, n_frames={self.n_frames}, "
                f"decoded={self.decoded}{where})")

    @classmethod
    def load(cls, directory: str | os.PathLike, tokenizer: Any = None) -> GeneratedEnsemble:
        """Read an output folder of ``mdllm sample`` or ``mdllm explore`` (finished or interrupted).

        ``tokens.npz`` is the record of the run. When ``trajectory.xtc`` or
        ``topology.pdb`` is missing, empty, cut short or unreadable (a run
        stopped between writing its tokens and appending the decoded frames),
        the frames are rebuilt in memory by decoding the tokens when
        :attr:`trajectory` is first read; the folder is not changed
        (``--resume`` rewrites the file).

        Parameters
        ----------
        directory : path-like
            The sampling output folder.
        tokenizer : StructureTokenizer, optional
            Tokenizer that decodes the tokens, if the trajectory must be
            rebuilt. Default: the one in the model bundle recorded in
            ``params.json``. Its fingerprint must be the run's.

        Raises
        ------
        SamplingError
            The folder is not a sampling folder, its tokens are missing or
            unreadable, or the trajectory must be rebuilt and no tokenizer of
            the run is at hand.
        """
        directory = Path(directory)
        params = _read_params(directory)
        tokens, loglik, _ = _read_tokens(directory)
        k, n = tokens.shape[:2]
        traj = _read_trajectory(directory, k * n)
        if traj is None:
            tokenizer = _run_tokenizer(directory, params, tokenizer, k * n)
        return cls(tokens, loglik, traj, params, directory, tokenizer=tokenizer)


def _read_params(directory: Path) -> dict[str, Any]:
    path = directory / "params.json"
    if not path.is_file():
        raise SamplingError(f"{directory} is not a sampling output folder (no params.json); pass the --out folder "
                            "of mdllm sample")
    try:
        params = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SamplingError(f"{path} is damaged ({type(error).__name__}); this run cannot be used or continued: "
                            "sample again into a new folder") from error
    if not isinstance(params, dict):
        raise SamplingError(f"{path} is not the params.json of mdllm sample; pass the --out folder of mdllm sample")
    return params


def _read_tokens(directory: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``tokens`` (k, n, L), ``log_likelihood`` (k, n) and ``seed_tokens`` of a sampling folder."""
    path = directory / "tokens.npz"
    if not path.is_file():
        raise SamplingError(f"sampling folder {directory} has no tokens.npz: no frame was saved yet; continue the "
                            f"run with mdllm sample BUNDLE --out {directory} --resume, or sample into a new folder")
    try:
        with np.load(path) as data:
            tokens, loglik = data["tokens"].astype(np.int64), np.asarray(data["log_likelihood"], dtype=np.float64)
            seed = data["seed_tokens"].astype(np.int64) if "seed_tokens" in data.files else None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise SamplingError(f"{path} cannot be read ({type(error).__name__}): the folder's record of the run is "
                            "damaged; sample again into a new folder") from error
    if tokens.ndim != 3 or loglik.shape != tokens.shape[:2]:
        raise SamplingError(f"{path} holds tokens of shape {tokens.shape} and log-likelihoods of shape "
                            f"{loglik.shape}, not (walkers, frames, L) and (walkers, frames); sample again into "
                            "a new folder")
    return tokens, loglik, seed


def _read_trajectory(directory: Path, n_expected: int) -> md.Trajectory | None:
    """The first ``n_expected`` frames of ``trajectory.xtc``, or ``None`` if it has fewer or cannot be read."""
    xtc, pdb = directory / "trajectory.xtc", directory / "topology.pdb"
    if not xtc.is_file() or not pdb.is_file():
        return None
    if n_expected == 0:
        return None  # an empty xtc is no valid xtc for mdtraj; decode the (zero) frames instead
    try:
        traj = md.load(str(xtc), top=str(pdb))
    except Exception as error:  # mdtraj raises OSError, ValueError, ... on cut or damaged files
        logger.warning("%s cannot be read (%s: %s); rebuilding the frames from tokens.npz", xtc,
                       type(error).__name__, error)
        return None
    if traj.n_frames < n_expected:
        logger.warning("%s holds %d of the %d frames in tokens.npz (the run was interrupted); rebuilding them "
                       "from the tokens", xtc, traj.n_frames, n_expected)
        return None
    return traj[:n_expected] if traj.n_frames > n_expected else traj


def _run_tokenizer(directory: Path, params: dict[str, Any], tokenizer: Any, n_frames: int) -> Any:
    """The tokenizer that decodes the run's tokens: ``tokenizer`` or the one in the run's bundle."""
    expected = params.get("tokenizer_fingerprint")
    if tokenizer is None:
        from .lm.bundle import load_bundle_tokenizer

        bundle = params.get("bundle")
        if not bundle or not (Path(bundle) / "bundle.json").is_file():
            raise SamplingError(
                f"trajectory.xtc in {directory} is missing or incomplete and the model bundle that can rebuild its "
                f"{n_frames} frame(s) from tokens.npz ({bundle}) is not found; run mdllm sample BUNDLE --out "
                f"{directory} --resume with this run's bundle, or pass tokenizer= to GeneratedEnsemble.load")
        tokenizer = load_bundle_tokenizer(bundle)
    if expected is not None and str(tokenizer.fingerprint) != str(expected):
        raise SamplingError(
            f"the tokenizer (fingerprint {tokenizer.fingerprint}) is not the one {directory} was sampled with "
            f"({expected}); pass the tokenizer of the run's model bundle")
    logger.info("rebuilding %d frame(s) of %s from tokens.npz", n_frames, directory)
    return tokenizer


def decode_frame_major(tokenizer: Any, tokens: np.ndarray,
                       decode: Callable[[np.ndarray], md.Trajectory] | None = None) -> md.Trajectory:
    """Decoded frames of tokens (k, n, L), frame-major (frame i of walker j at i * k + j), time = frame index.

    Parameters
    ----------
    tokenizer : FrameTokenizer
    tokens : numpy.ndarray of int, shape (n_walkers, n_frames, L)
    decode : callable, optional
        Decodes tokens (m, L) into m frames (default ``tokenizer.decode``;
        e.g. :meth:`mdllm_kit.Sampler.decode_frames`, split over processes).

    Returns
    -------
    mdtraj.Trajectory
        ``n_walkers * n_frames`` frames, nm; ``time`` is the frame index of each.
    """
    k, n, L = tokens.shape
    traj = (decode or tokenizer.decode)(tokens.transpose(1, 0, 2).reshape(-1, L))
    traj.time = np.repeat(np.arange(n, dtype=float), k)
    return traj


class RunWriter:
    """Streams a sampling run into a folder: the one implementation of the folder format (see module docs).

    :meth:`mdllm_kit.Sampler.sample` and :func:`mdllm_kit.explore` write through it,
    so ``mdllm analyze``, the viewers and :meth:`GeneratedEnsemble.load` read
    both alike. ``decode`` (tokens (m, L) -> m frames; default
    ``tokenizer.decode``) is how it turns tokens into the frames it writes,
    e.g. :meth:`mdllm_kit.Sampler.decode_frames`, which shares them out over
    the sampling processes.
    """

    def __init__(self, directory: Path, tokenizer: Any,
                 decode: Callable[[np.ndarray], md.Trajectory] | None = None) -> None:
        self.directory = directory
        self.tokenizer = tokenizer
        self._decode_tokens = decode  # tokens (m, L) -> m frames; None: tokenizer.decode
        #: After :meth:`resume`: the saved frames decoded (frame-major), from which it rebuilt ``trajectory.xtc``.
        self.frames: md.Trajectory | None = None

    def exists(self) -> bool:
        """Whether the folder holds a sampling run; a folder holding anything else is refused."""
        if self.directory.exists() and not self.directory.is_dir():
            raise SamplingError(f"the output {self.directory} exists and is a file, not a folder; choose a new folder")
        if (self.directory / "params.json").exists():
            return True
        if self.directory.is_dir():
            other = sorted(p.name for p in self.directory.iterdir()
                           if p.name not in _RUN_FILES and not p.name.startswith("."))
            if other:
                raise SamplingError(f"the output folder {self.directory} already exists and holds other files "
                                    f"({', '.join(other[:3])}{', ...' if len(other) > 3 else ''}), not a sampling "
                                    "run; choose a new folder")
        return False

    def start(self, params: dict[str, Any], seed: np.ndarray) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.seed = seed
        self._write_topology(seed)
        k, _, L = seed.shape
        self._write_tokens(np.empty((k, 0, L), np.int64), np.empty((k, 0)))
        with atomic_path(self.directory / "trajectory.xtc") as tmp:
            tmp.write_bytes(b"")
        atomic_write_json(self.directory / "params.json", params)

    def resume(self, params: dict[str, Any], seed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        old = _read_params(self.directory)
        if not isinstance(old.get("settings"), dict):
            raise SamplingError(f"{self.directory / 'params.json'} records no sampling settings; this run cannot be "
                                "continued: sample into a new folder")
        if old.get("tokenizer_fingerprint") != params["tokenizer_fingerprint"]:
            raise SamplingError(f"{self.directory} was sampled with another tokenizer (fingerprint "
                                f"{old.get('tokenizer_fingerprint')}, this bundle's is {params['tokenizer_fingerprint']}):"
                                " it belongs to another model; continue it with its own bundle "
                                f"({old.get('bundle')}) or sample into a new folder")
        if old.get("bundle_id") and params.get("bundle_id") and old["bundle_id"] != params["bundle_id"]:
            raise SamplingError(f"{self.directory} was sampled with another model (bundle {old.get('bundle')}); "
                                "continue it with that bundle, or sample into a new folder")
        a, b = dict(old["settings"]), dict(params["settings"])
        for key in ("n_frames", "flush_every"):
            a.pop(key, None), b.pop(key, None)
        a["context_frames (used)"], b["context_frames (used)"] = old.get("context_frames"), params["context_frames"]
        changed = [f"{key}: {a.get(key)!r} in the run, {b.get(key)!r} now" for key in sorted(set(a) | set(b))
                   if a.get(key) != b.get(key)]
        if changed:
            raise SamplingError(f"--resume with changed settings ({'; '.join(changed)}) for the run in "
                                f"{self.directory}; continue it with the same settings (only n_frames may grow and "
                                "flush_every change), or sample into a new folder")
        tokens, loglik, seed_saved = _read_tokens(self.directory)
        if seed_saved is None or seed_saved.shape[0] != tokens.shape[0]:
            raise SamplingError(f"{self.directory / 'tokens.npz'} has no seed frames for its walkers; it cannot be "
                                "continued: sample again into a new folder")
        if old.get("precision", params.get("precision")) != params.get("precision"):
            logger.warning("the run in %s was sampled in %s, this continuation runs in %s: its frames will not be "
                           "exactly those of an uninterrupted run (pass precision=%r to match)", self.directory,
                           old["precision"], params.get("precision"), old["precision"])
        if "processes" not in old and params.get("processes") is not None:
            logger.warning("the run in %s was sampled by an earlier mdllm-kit (one random stream for all walkers); "
                           "this continuation draws every walker from its own random numbers, so its frames will "
                           "not be exactly those of an uninterrupted run", self.directory)
        elif old.get("processes", params.get("processes")) != params.get("processes"):
            logger.warning("the run in %s was sampled in %s process(es), this continuation in %s: batched products "
                           "of other sizes round differently, so its frames may not be exactly those of an "
                           "uninterrupted run (pass processes=%r to match)", self.directory, old["processes"],
                           params.get("processes"), old["processes"])
        if tokens.shape[1] > _n_frames(params):
            raise SamplingError(f"{self.directory} already holds {tokens.shape[1]} frames per walker, more than "
                                f"n_frames={_n_frames(params)}; pass n_frames >= {tokens.shape[1]} (--n-frames) to "
                                "continue it, or sample into a new folder")
        self.seed = seed_saved
        self._remove_leftovers()  # every check passed: only now is the folder changed
        if not (self.directory / "topology.pdb").is_file():
            self._write_topology(seed_saved)
        # trajectory.xtc is derived from tokens.npz: rebuild it so it matches exactly (a crash may have cut it)
        self.frames = self._decode(tokens) if tokens.shape[1] else None
        with atomic_path(self.directory / "trajectory.xtc") as tmp:
            if self.frames is not None:
                self.frames.save_xtc(str(tmp))
            else:
                tmp.write_bytes(b"")
        params_new = dict(params)
        atomic_write_json(self.directory / "params.json", params_new)
        logger.info("continuing the run in %s from frame %d", self.directory, tokens.shape[1])
        return seed_saved, tokens, loglik

    def _decode(self, tokens: np.ndarray) -> md.Trajectory:
        return decode_frame_major(self.tokenizer, tokens, self._decode_tokens)

    def _write_topology(self, seed: np.ndarray) -> None:
        topology = self.tokenizer.decode(seed[0, -1:])
        with atomic_path(self.directory / "topology.pdb") as tmp:
            topology.save_pdb(str(tmp))

    def _remove_leftovers(self) -> None:
        """Delete the temporary files of a run that was killed while writing (they are never complete)."""
        removed = remove_stale_temporaries(self.directory)
        chunk = self.directory / ".chunk.xtc"
        if chunk.is_file():
            chunk.unlink()
            removed.append(chunk)
        if removed:
            logger.info("removed %d temporary file(s) left by an interrupted write in %s", len(removed), self.directory)

    def _write_tokens(self, tokens: np.ndarray, loglik: np.ndarray) -> None:
        with atomic_path(self.directory / "tokens.npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, tokens=tokens.astype(np.int32), log_likelihood=loglik.astype(np.float64),
                         seed_tokens=self.seed.astype(np.int32))

    def append(self, all_tokens: np.ndarray, all_loglik: np.ndarray, new_tokens: np.ndarray,
               decoded: md.Trajectory | None = None) -> None:
        """Record all tokens so far, then append the decoded new frames to the xtc.

        ``decoded``: the new frames already decoded, frame-major (a caller that
        decoded them anyway passes them instead of decoding twice).
        """
        self._write_tokens(all_tokens, all_loglik)
        traj = self._decode(new_tokens) if decoded is None else md.Trajectory(decoded.xyz, decoded.topology)
        if decoded is not None:
            traj.time = np.repeat(np.arange(new_tokens.shape[1], dtype=float), new_tokens.shape[0])
        traj.time = traj.time + (all_tokens.shape[1] - new_tokens.shape[1])
        chunk = self.directory / ".chunk.xtc"
        traj.save_xtc(str(chunk))
        with open(self.directory / "trajectory.xtc", "ab") as handle:
            handle.write(chunk.read_bytes())
            handle.flush()
            os.fsync(handle.fileno())
        chunk.unlink()


#: Files of a sampling output folder (a folder holding only these, without params.json, is a run that never started).
_RUN_FILES = frozenset({"params.json", "tokens.npz", "trajectory.xtc", "topology.pdb", "exploration.json"})


def _n_frames(params: dict[str, Any]) -> int:
    return int(params["settings"]["n_frames"])
