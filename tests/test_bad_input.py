"""Bad input to every ``mdllm`` command and the matching Python functions.

Every case must end in ONE line naming the problem and the fix (``mdllm:
error: ...`` on stderr, exit status 1, no traceback; an
:class:`~mdllm_kit.errors.MdllmError` from Python) and must leave every file
as it was: nothing written, nothing overwritten. The inputs are small real
files: 40 noisy frames of 30 Calpha atoms of closed AdK, a structure
tokenizer fitted on them, and two tiny models trained on their tokens.
"""
from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mdtraj as md
import numpy as np
import pytest

import mdllm_kit as mk
from mdllm_kit.cli import main
from mdllm_kit.errors import MdllmError

MODEL = mk.ModelSettings(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=32)
TRAIN = mk.TrainSettings(window_frames=2, max_steps=2, batch_size=2, eval_steps=2, save_steps=2, eval_max_windows=2,
                         rmsd_max_frames=2)


def _calpha(first: int, n: int, n_frames: int, seed: int) -> md.Trajectory:
    ref = mk.datasets.adk_references()["closed"]
    ca = ref.atom_slice(ref.topology.select(f"name CA and resid {first} to {first + n - 1}"))
    noise = np.random.default_rng(seed).normal(scale=0.02, size=(n_frames, n, 3)).astype(np.float32)
    return md.Trajectory(ca.xyz[0][None] + noise, ca.topology, time=np.arange(n_frames, dtype=float))


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """Inputs shared by the cases (a case that damages one works on its own copy)."""
    root = tmp_path_factory.mktemp("bad_input")
    traj = _calpha(0, 30, 40, 0)
    traj.save_xtc(str(root / "traj.xtc"))
    traj[0].save_pdb(str(root / "top.pdb"))
    traj.save_dcd(str(root / "traj.dcd"))
    other = _calpha(100, 30, 12, 1)  # another protein with as many residues: residues 101-130 of AdK
    other.save_xtc(str(root / "other.xtc"))
    other[0].save_pdb(str(root / "other.pdb"))
    _calpha(0, 40, 1, 2).save_pdb(str(root / "top40.pdb"))  # 40 atoms: not the system of traj.xtc
    tok = mk.StructureTokenizer(codebook_size=16, refine_iterations=0).fit(traj)
    tok.save_pretrained(root / "tok")
    mk.StructureTokenizer(codebook_size=16, refine_iterations=0).fit(other).save_pretrained(root / "other_tok")
    assert main(_train(root, out="bundle")) == 0
    assert main(_train(root, "--seed", "1", out="bundle2")) == 0
    assert main(["sample", str(root / "bundle"), "--out", str(root / "gen"), "--n-frames", "3", "--walkers", "2",
                 "--no-progress", "--device", "cpu"]) == 0
    (root / "existing").mkdir()
    (root / "existing" / "notes.txt").write_text("a user's file\n")
    return root


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(folder.rglob("*"))}


# ----------------------------------------------------------------------------- damaged copies made per case
def _copy(root: Path, name: str, dest: str, damage: Callable[[Path], None]) -> Path:
    """A copy of ``root/name`` at ``root/dest``, damaged by ``damage`` when first made."""
    target = root / dest
    if not target.exists():
        shutil.copytree(root / name, target)
        damage(target)
    return target


def _truncated(root: Path, name: str, keep: float = 0.5) -> Path:
    src, dest = root / name, root / f"cut{round(keep * 100)}_{name}"
    data = src.read_bytes()
    dest.write_bytes(data[: int(len(data) * keep)])
    return dest


def _nan_dcd(root: Path) -> Path:
    traj = md.load(str(root / "traj.xtc"), top=str(root / "top.pdb"))
    traj.xyz[7, 3] = np.nan
    traj.save_dcd(str(root / "nan.dcd"))
    return root / "nan.dcd"


def _no_frames_dcd(root: Path) -> Path:
    traj = md.load(str(root / "top.pdb"))
    traj[:0].save_dcd(str(root / "empty_frames.dcd"))
    return root / "empty_frames.dcd"


def _cut(path: Path, keep: float) -> None:
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


def _bundle_without_weights(root: Path) -> Path:
    return _copy(root, "bundle", "bundle_noweights",
                 lambda b: [p.unlink() for p in (b / "model").glob("*.safetensors")])


def _bundle_corrupt_weights(root: Path) -> Path:
    return _copy(root, "bundle", "bundle_badweights",
                 lambda b: [_cut(p, 1 / 3) for p in (b / "model").glob("*.safetensors")])


def _bundle_corrupt_codec(root: Path) -> Path:
    return _copy(root, "bundle", "bundle_badcodec", lambda b: (b / "codec.json").write_text('{"tokens_per_frame": 3'))


def _tok_corrupt(root: Path) -> Path:
    return _copy(root, "tok", "tok_bad", lambda t: _cut(t / "tokenizer.safetensors", 0.01))


def _gen_corrupt_tokens(root: Path) -> Path:
    return _copy(root, "gen", "gen_badtokens", lambda g: (g / "tokens.npz").write_bytes(b"PK\x03\x04 not a zip"))


def _gen_other_model(root: Path) -> Path:
    gen = root / "gen_bundle2"
    if not gen.exists():
        assert main(["sample", str(root / "bundle2"), "--out", str(gen), "--n-frames", "3", "--walkers", "2",
                     "--no-progress", "--device", "cpu"]) == 0
    return gen


@dataclass(frozen=True)
class Case:
    id: str
    argv: Callable[[Path], list[str]]
    expect: tuple[str, ...]  # phrases of the message (problem and fix), case-insensitive


def _train(root: Path, *extra: str, traj: str = "traj.xtc", tok: str = "tok", out: str = "new_bundle") -> list[str]:
    return ["train", str(root / traj), "--top", str(root / "top.pdb"), "--tokenizer", str(root / tok),
            "--out", str(root / out), "--max-steps", "2", "--window", "2", "--hidden-size", "32", "--layers", "1",
            "--heads", "2", "--kv-heads", "1", "--intermediate-size", "32", "--no-progress", "--device", "cpu", *extra]


def _sample(root: Path, *extra: str, bundle: str = "bundle", out: str = "new_gen") -> list[str]:
    return ["sample", str(root / bundle), "--out", str(root / out), "--n-frames", "3", "--walkers", "2",
            "--no-progress", "--device", "cpu", *extra]


def _analyze(root: Path, gen: str, *extra: str, train: str = "traj.xtc", train_top: str = "top.pdb",
             ref: str = "top.pdb") -> list[str]:
    return ["analyze", str(root / gen), "--train", str(root / train), "--train-top", str(root / train_top),
            "--ref", f"start={root / ref}", *extra]


CLI_CASES = [
    # --- mdllm inspect: files
    Case("inspect-missing-file", lambda r: ["inspect", str(r / "nothing.xtc"), "--top", str(r / "top.pdb")],
         ("does not exist", "check the path")),
    Case("inspect-truncated-xtc", lambda r: ["inspect", str(_truncated(r, "traj.xtc")), "--top", str(r / "top.pdb")],
         ("could not read", "complete")),
    Case("inspect-truncated-dcd", lambda r: ["inspect", str(_truncated(r, "traj.dcd", 0.02)), "--top",
                                             str(r / "top.pdb")], ("dcd", "complete")),
    Case("inspect-empty-file", lambda r: ["inspect", str(_truncated(r, "traj.xtc", 0.0)), "--top", str(r / "top.pdb")],
         ("empty (0 bytes)", "complete file")),
    Case("inspect-topology-of-another-system", lambda r: ["inspect", str(r / "traj.xtc"), "--top", str(r / "top40.pdb")],
         ("not the same system", "topology the trajectory was written with")),
    Case("inspect-no-topology", lambda r: ["inspect", str(r / "traj.xtc")], ("coordinates only", "top=")),
    Case("inspect-nan-coordinates", lambda r: ["inspect", str(_nan_dcd(r)), "--top", str(r / "top.pdb")],
         ("frame 7 has nan", "cut the file")),
    Case("inspect-zero-frames", lambda r: ["inspect", str(_no_frames_dcd(r)), "--top", str(r / "top.pdb")],
         ("could not read", "complete")),  # the DCD mdtraj writes for zero frames is not readable
    Case("inspect-negative-stride", lambda r: ["inspect", str(r / "traj.xtc"), "--top", str(r / "top.pdb"),
                                               "--stride", "-2"], ("stride must be a positive integer",)),
    Case("inspect-bad-selection", lambda r: ["inspect", str(r / "traj.xtc"), "--top", str(r / "top.pdb"),
                                             "--selection", "name CA and ("], ("not a valid mdtraj selection", "syntax")),
    # --- mdllm tokenizer fit / eval
    Case("tokenizer-fit-codebook-zero", lambda r: ["tokenizer", "fit", str(r / "traj.xtc"), "--top", str(r / "top.pdb"),
                                                   "--out", str(r / "new_tok"), "--codebook-size", "0"],
         ("codebook_size must be an integer between 2 and 65536",)),
    Case("tokenizer-fit-codebook-absurd", lambda r: ["tokenizer", "fit", str(r / "traj.xtc"), "--top",
                                                     str(r / "top.pdb"), "--out", str(r / "new_tok"),
                                                     "--codebook-size", "1000000000"],
         ("codebook_size must be an integer between 2 and 65536",)),
    Case("tokenizer-fit-out-exists", lambda r: ["tokenizer", "fit", str(r / "traj.xtc"), "--top", str(r / "top.pdb"),
                                                "--out", str(r / "tok")], ("already exists", "new folder")),
    Case("tokenizer-eval-missing-tokenizer", lambda r: ["tokenizer", "eval", str(r / "no_tok"), str(r / "traj.xtc"),
                                                        "--top", str(r / "top.pdb")],
         ("is missing", "save_pretrained")),
    Case("tokenizer-eval-corrupt-weights", lambda r: ["tokenizer", "eval", str(_tok_corrupt(r)), str(r / "traj.xtc"),
                                                      "--top", str(r / "top.pdb")], ("cannot read", "fit it again")),
    Case("tokenizer-eval-other-protein", lambda r: ["tokenizer", "eval", str(r / "other_tok"), str(r / "traj.xtc"),
                                                    "--top", str(r / "top.pdb")],
         ("fitted on", "one protein")),
    # --- mdllm train
    Case("train-tokenizer-of-another-protein", lambda r: _train(r, tok="other_tok"), ("fitted on", "tokenizer fitted on this one")),
    Case("train-missing-trajectory", lambda r: _train(r, traj="missing.xtc"), ("does not exist",)),
    Case("train-zero-steps", lambda r: _train(r, "--max-steps", "0"), ("max_steps must be >= 1",)),
    Case("train-negative-learning-rate", lambda r: _train(r, "--lr", "-0.001"), ("learning_rate must be > 0",)),
    Case("train-zero-window", lambda r: _train(r, "--window", "0"), ("window_frames must be >= 1",)),
    Case("train-val-fraction-above-one", lambda r: _train(r, "--val-fraction", "1.5"), ("val_fraction must be in",)),
    Case("train-heads-not-dividing", lambda r: _train(r, "--heads", "3", "--kv-heads", "1"),
         ("must be a multiple of num_heads",)),
    Case("train-window-longer-than-data", lambda r: _train(r, "--window", "500"), ("window", "frames")),
    Case("train-out-holds-other-files", lambda r: _train(r, out="existing"), ("already exists", "new output folder")),
    Case("train-out-holds-a-run", lambda r: _train(r, out="bundle"), ("already holds training checkpoints", "resume")),
    Case("train-resume-with-changed-settings", lambda r: _train(r, "--resume", "--lr", "0.1", out="bundle"),
         ("changed settings (learning_rate: 0.003 in the run, 0.1 now)", "same settings")),
    Case("train-resume-with-other-data", lambda r: _train(r, "--resume", "--frame-stride", "2", out="bundle"),
         ("trajectories differ", "same trajectories")),
    # --- mdllm sample
    Case("sample-not-a-bundle", lambda r: _sample(r, bundle="tok"), ("not a complete model bundle", "mdllm train")),
    Case("sample-bundle-without-weights", lambda r: _sample(r, bundle=_bundle_without_weights(r).name),
         ("model weights", "cannot be read", "copy it again")),
    Case("sample-bundle-corrupt-weights", lambda r: _sample(r, bundle=_bundle_corrupt_weights(r).name),
         ("model weights", "cannot be read", "copy it again")),
    Case("sample-bundle-corrupt-codec", lambda r: _sample(r, bundle=_bundle_corrupt_codec(r).name),
         ("codec.json is damaged", "copy the model bundle again")),
    Case("sample-zero-frames", lambda r: _sample(r, "--n-frames", "0"), ("n_frames must be >= 1",)),
    Case("sample-negative-walkers", lambda r: _sample(r, "--walkers", "-1"), ("n_walkers must be >= 1",)),
    Case("sample-negative-temperature", lambda r: _sample(r, "--temperature", "-1"), ("temperature must be >= 0",)),
    Case("sample-top-p-above-one", lambda r: _sample(r, "--top-p", "2"), ("top_p must be in (0, 1]",)),
    Case("sample-out-holds-a-run", lambda r: _sample(r, out="gen"), ("already holds a sampling run", "resume")),
    Case("sample-out-holds-other-files", lambda r: _sample(r, out="existing"), ("holds other files", "new folder")),
    Case("sample-resume-with-changed-settings", lambda r: _sample(r, "--resume", "--seed", "7", out="gen"),
         ("changed settings (seed: 0 in the run, 7 now)", "same settings")),
    Case("sample-resume-fewer-frames", lambda r: _sample(r, "--resume", "--n-frames", "2", out="gen"),
         ("already holds 3 frames", "n_frames=2")),
    Case("sample-resume-folder-of-another-model", lambda r: _sample(r, "--resume", out=_gen_other_model(r).name),
         ("sampled with another model", "that bundle")),
    Case("sample-seed-structures-of-another-protein", lambda r: _sample(r, "--seed-structures", str(r / "other.pdb")),
         ("fitted on", "one protein")),
    # --- mdllm analyze
    Case("analyze-not-a-sampling-folder", lambda r: _analyze(r, "tok"), ("not a sampling output folder",)),
    Case("analyze-corrupt-tokens", lambda r: _analyze(r, _gen_corrupt_tokens(r).name), ("tokens.npz", "cannot be read")),
    Case("analyze-zero-walkers", lambda r: _analyze(r, "traj.xtc", "--top", str(r / "top.pdb"), "--walkers", "0"),
         ("walkers must be >= 1",)),
    Case("analyze-training-of-another-protein", lambda r: _analyze(r, "gen", train="other.xtc", train_top="other.pdb"),
         ("training trajectory is not the same protein", "trained on")),
    Case("analyze-reference-of-another-protein", lambda r: _analyze(r, "gen", ref="top40.pdb"),
         ("reference 'start' has 40 calpha residues", "same protein")),
    Case("analyze-bad-ref-argument", lambda r: _analyze(r, "gen")[:-1] + ["start"], ("NAME=PDB",)),
    # --- mdllm datasets
    Case("datasets-export-out-is-a-file", lambda r: ["datasets", "export", "--out", str(r / "top.pdb")],
         ("is a file", "folder")),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli_bad_input_is_one_line_and_writes_nothing(case, root, capsys):
    argv = case.argv(root)  # builds the damaged inputs this case needs, before the snapshot
    capsys.readouterr()
    before = _snapshot(root)
    status = main(argv)
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert status == 1, captured
    assert len(err) == 1 and err[0].startswith("mdllm: error: "), err
    assert "Traceback" not in captured.err + captured.out
    message = err[0].lower()
    for phrase in case.expect:
        assert phrase.lower() in message, (phrase, err[0])
    assert _snapshot(root) == before


PY_CASES = [
    ("load_trajectory-missing", lambda r: mk.load_trajectory(r / "nothing.xtc", top=r / "top.pdb"), "does not exist"),
    ("load_trajectory-other-system", lambda r: mk.load_trajectory(r / "traj.xtc", top=r / "top40.pdb"),
     "not the same system"),
    ("tokenizer-from_pretrained-missing", lambda r: mk.StructureTokenizer.from_pretrained(r / "no_tok"), "is missing"),
    ("tokenizer-encode-other-protein",
     lambda r: mk.StructureTokenizer.from_pretrained(r / "other_tok").encode(md.load(str(r / "top.pdb"))), "fitted on"),
    ("load_bundle-not-a-bundle", lambda r: mk.load_bundle(r / "tok", device="cpu"), "not a complete model bundle"),
    ("load_bundle-corrupt-weights", lambda r: mk.load_bundle(_bundle_corrupt_weights(r), device="cpu"),
     "cannot be read"),
    ("GeneratedEnsemble.load-not-a-run", lambda r: mk.GeneratedEnsemble.load(r / "tok"), "not a sampling output folder"),
    ("GeneratedEnsemble.load-corrupt-tokens", lambda r: mk.GeneratedEnsemble.load(_gen_corrupt_tokens(r)),
     "cannot be read"),
    ("SamplingSettings-zero-frames", lambda r: mk.SamplingSettings(n_frames=0), "n_frames must be >= 1"),
    ("TrainSettings-negative-lr", lambda r: mk.TrainSettings(learning_rate=-1.0), "learning_rate must be > 0"),
    ("train-out-holds-other-files",
     lambda r: mk.train(md.load(str(r / "traj.xtc"), top=str(r / "top.pdb")),
                        mk.StructureTokenizer.from_pretrained(r / "tok"), r / "existing", MODEL, TRAIN,
                        progress=False, device="cpu"), "already exists"),
    ("Sampler-resume-changed-settings",
     lambda r: mk.Sampler(mk.load_bundle(r / "bundle", device="cpu")).sample(n_frames=3, n_walkers=2, seed=9,
                                                                             out=r / "gen", resume=True),
     "changed settings"),
    ("validity_report-no-calpha", lambda r: mk.validity_report(md.load(str(r / "top.pdb")).atom_slice([0])),
     "at least two calpha"),
    ("tokenizer-fit-zero-frames",
     lambda r: mk.StructureTokenizer(codebook_size=16).fit(md.load(str(r / "top.pdb"))[:0]), "no frames"),
    ("analyze-zero-frames",
     lambda r: mk.analyze(md.load(str(r / "top.pdb"))[:0], md.load(str(r / "top.pdb")),
                          {"x": md.load(str(r / "top.pdb"))}), "no frames"),
]


@pytest.mark.parametrize("call, phrase", [c[1:] for c in PY_CASES], ids=[c[0] for c in PY_CASES])
def test_python_bad_input_raises_one_line_mdllm_error(call, phrase, root):
    with pytest.raises(MdllmError):
        call(root)  # once to make the damaged inputs it needs
    before = _snapshot(root)
    with pytest.raises(MdllmError) as info:
        call(root)
    message = str(info.value)
    assert "\n" not in message and phrase.lower() in message.lower(), message
    assert _snapshot(root) == before


def test_there_are_at_least_25_cases():
    assert len(CLI_CASES) + len(PY_CASES) >= 25 and len(CLI_CASES) >= 25
