"""Benchmark of the structure tokenizer on AdK (results go to BENCHMARKS.md).

Usage::

    python benchmarks/bench_tokenizer.py            # shipped AdK CG data if present, else dev data
    python benchmarks/bench_tokenizer.py --data dev --json out.json
    python benchmarks/bench_tokenizer.py --backbone-traj /tmp/adk_aa --noise-frames 50   # backbone mode

Data
    ``shipped``: fit on the first 80 % of ``load_adk_cg("closed_train")``;
    (a) the last 20 % of it, held out; (b) frames of ``equilibrium`` in the
    open basin (Calpha RMSD to the open crystal < 2.5 A and closer to open
    than to closed) plus the open crystal Calpha trace, none seen in fitting.
    ``dev`` (until the shipped files exist): a single-basin Calpha Go model
    run from each crystal with OpenMM (made here, cached in /tmp), 1,600
    closed frames to fit, 400 later closed frames held out, 500 open frames.

Methods
    ``default``: ``StructureTokenizer()`` (landmark skeleton from the anchor
    tokens, local chain filled onto it with hinge repair, robust
    Gauss-Newton refinement, clash removal).
    ``no_hinges``: the same without the hinge repair (``hinge_rounds=0``).
    ``no_refine``: the filled skeleton without refinement
    (``refine_iterations=0``, ``hinge_rounds=0``).
    ``chain_only`` (in the sampler-noise table): the quantised bond angles
    and dihedrals rebuilt by plain chain building (NeRF) from mean bond
    lengths, no anchors used: the transparent baseline.

Backbone mode (``--backbone-traj DIR``)
    The same sampler-like noise probe on N, CA, C, O frames of the short
    all-atom OpenMM runs of ``scripts/make_adk_allatom.py`` (fit in backbone
    mode on the first half of the closed run; probe the held-out second half
    and the open run), plus one decode with two torch threads and a decode
    of uniformly random tokens. Only this runs with the option.

Sampler-like noise
    True anchor tokens; every angle and dihedral token moved by a rounded
    Gaussian of 2, 4 and 8 bins (what a sampler does to a good model's
    tokens). Reported: Calpha RMSD to the true frame, the share of frames
    valid by :func:`mdllm_kit.validity_report` (no Calpha break or clash)
    next to the real frames' own share, and decoding time per frame.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import mdtraj as md
import numpy as np
import torch

import mdllm_kit as mk
from mdllm_kit.tokenizer import StructureTokenizer
from mdllm_kit.tokenizer.metrics import bond_ok_fraction, rmsd_per_frame

DEV_CACHE = Path("/tmp/mdllm_bench_tokenizer")


# ----------------------------------------------------------------- dev data
def _go_run(ca: md.Trajectory, n_frames: int, seed: int, stride: int = 100, eps: float = 4.0) -> md.Trajectory:
    """Single-basin Clementi-style Calpha Go model of ``ca`` at 300 K (dev data only)."""
    import openmm as mm
    from openmm import unit

    xyz = ca.xyz[0].astype(float)
    n = len(xyz)
    system = mm.System()
    for _ in range(n):
        system.addParticle(100.0)
    bonds, angles, dih = mm.HarmonicBondForce(), mm.HarmonicAngleForce(), mm.PeriodicTorsionForce()
    for i in range(n - 1):
        bonds.addBond(i, i + 1, float(np.linalg.norm(xyz[i + 1] - xyz[i])), 2 * 100 * eps * 100)
    theta = md.compute_angles(ca, [[i - 1, i, i + 1] for i in range(1, n - 1)])[0]
    for i in range(1, n - 1):
        angles.addAngle(i - 1, i, i + 1, float(theta[i - 1]), 2 * 20 * eps)
    phi = md.compute_dihedrals(ca, [[i, i + 1, i + 2, i + 3] for i in range(n - 3)])[0]
    for i in range(n - 3):
        dih.addTorsion(i, i + 1, i + 2, i + 3, 1, float(phi[i] + np.pi), eps)
        dih.addTorsion(i, i + 1, i + 2, i + 3, 3, float(3 * phi[i] + np.pi), 0.5 * eps)
    d = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    native = mm.CustomBondForce("eps*(5*(r0/r)^12-6*(r0/r)^10)")
    native.addGlobalParameter("eps", eps)
    native.addPerBondParameter("r0")
    rep = mm.CustomNonbondedForce("eps*(0.4/r)^12")
    rep.addGlobalParameter("eps", eps)
    for _ in range(n):
        rep.addParticle([])
    rep.setNonbondedMethod(mm.CustomNonbondedForce.CutoffNonPeriodic)
    rep.setCutoffDistance(1.0)
    for i in range(n):
        for j in range(i + 1, n):
            if j - i >= 4 and d[i, j] < 0.8:
                native.addBond(i, j, [float(d[i, j])])
            if j - i <= 3 or d[i, j] < 0.8:
                rep.addExclusion(i, j)
    for f in (bonds, angles, dih, native, rep):
        system.addForce(f)
    integ = mm.LangevinMiddleIntegrator(300.0, 1.0, 0.005)
    integ.setRandomNumberSeed(seed)
    ctx = mm.Context(system, integ, mm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    ctx.setPositions(xyz)
    mm.LocalEnergyMinimizer.minimize(ctx)
    ctx.setVelocitiesToTemperature(300.0, seed)
    integ.step(2000)
    out = np.empty((n_frames, n, 3), np.float32)
    for k in range(n_frames):
        integ.step(stride)
        out[k] = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    return md.Trajectory(out, ca.topology)


def _ca(t: md.Trajectory) -> md.Trajectory:
    return t.atom_slice(t.topology.select("name CA"))


def dev_data() -> dict[str, md.Trajectory]:
    refs = {k: _ca(v) for k, v in mk.datasets.adk_references().items()}
    DEV_CACHE.mkdir(parents=True, exist_ok=True)
    out = {}
    for state, n, seed in (("closed", 2000, 1), ("open", 500, 2)):
        path = DEV_CACHE / f"go_{state}.xtc"
        if not path.exists():
            _go_run(refs[state], n, seed).save_xtc(str(path))
        out[state] = md.load(str(path), top=refs["closed"].topology)
    return {"fit": out["closed"][:1600], "closed_heldout": out["closed"][1600:],
            "open": md.join([out["open"], refs["open"]]), "source": "dev: single-basin Calpha Go model runs (OpenMM)"}


def shipped_data() -> dict[str, md.Trajectory]:
    refs = {k: _ca(v) for k, v in mk.datasets.adk_references().items()}
    train = mk.datasets.load_adk_cg("closed_train")
    eq = mk.datasets.load_adk_cg("equilibrium")
    cut = int(0.8 * train.n_frames)
    r_open = rmsd_per_frame(eq.xyz, refs["open"].xyz)
    r_closed = rmsd_per_frame(eq.xyz, refs["closed"].xyz)
    sel = np.nonzero((r_open < 2.5) & (r_open < r_closed))[0]
    if len(sel) > 2000:
        sel = sel[np.linspace(0, len(sel) - 1, 2000).astype(int)]
    open_frames = md.Trajectory(eq.xyz[sel], train.topology)
    open_ref = md.Trajectory(refs["open"].xyz, train.topology)
    return {"fit": train[:cut], "closed_heldout": train[cut:], "open": md.join([open_frames, open_ref]),
            "source": f"shipped: closed_train[:{cut}] fit, closed_train[{cut}:] held out, "
                      f"{len(sel)} open-basin equilibrium frames + open crystal"}


# ---------------------------------------------------------------- measuring
def evaluate(tok: StructureTokenizer, traj: md.Trajectory) -> dict[str, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    tokens = tok.encode(traj)
    dec = tok.decode(tokens)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    r = rmsd_per_frame(dec.xyz, traj.xyz)
    return {"rmsd_mean": float(r.mean()), "rmsd_p95": float(np.percentile(r, 95)),
            "bonds_ok_pct": 100 * bond_ok_fraction(dec.xyz), "fps": traj.n_frames / seconds,
            "fps_cpu_time": traj.n_frames / cpu}


def noise(tok: StructureTokenizer, traj: md.Trajectory, seed: int = 0) -> dict[str, float]:
    tokens = tok.encode(traj)
    base = rmsd_per_frame(tok.decode(tokens).xyz, traj.xyz)
    out = {}
    for how in ("neighbour", "random"):
        for frac in (0.01, 0.05):
            r = rmsd_per_frame(tok.decode(tok.perturb(tokens, frac, how, seed=seed)).xyz, traj.xyz)
            out[f"{how}_{frac:g}"] = {"growth_mean": float(r.mean() - base.mean()),
                                      "growth_median": float(np.median(r - base)),
                                      "rmsd_p95": float(np.percentile(r, 95))}
    return out


def chain_only(tok: StructureTokenizer, tokens: np.ndarray) -> np.ndarray:
    """The baseline: NeRF chain of the quantised local tokens and mean bonds, anchors unused (nm)."""
    from mdllm_kit.tokenizer.geometry import build_chain

    q, rng, lay = tok._quantisers(), tok.kind_ranges(), tok._layout()
    t = torch.as_tensor(tokens)
    ang = q["angle"].decode(t[:, lay["angle"]] - rng["angle"][0])
    dih = q["dihedral"].decode(t[:, lay["dihedral"]] - rng["dihedral"][0])
    return build_chain(tok._tensors["bond_mean"].expand(len(t), -1), ang, dih).numpy().astype(np.float32)


#: Heavy-atom pairs closer than this (nm) count as a backbone clash in the backbone probe (a bench-only
#: criterion: ``mk.validity_report`` checks Calpha clashes and C-N breaks only). Real N-H...O hydrogen
#: bonds put N and O 2.8-3.0 A apart.
BACKBONE_CLASH_NM = 0.25


def backbone_min_distance(traj: md.Trajectory) -> np.ndarray:
    """Smallest distance (nm) per frame between N, CA, C, O atoms of residues at least two apart."""
    res = np.array([a.residue.index for a in traj.topology.atoms])
    i, j = np.triu_indices(traj.n_atoms, k=1)
    keep = np.abs(res[i] - res[j]) >= 2
    return md.compute_distances(traj, np.stack([i[keep], j[keep]], 1), periodic=False).min(1)


def sampler_noise(tok: StructureTokenizer, traj: md.Trajectory, seed: int, baseline: bool) -> dict[str, dict]:
    """RMSD, validity and decode time under sampler-like local-token noise with true anchors.

    In backbone mode ``rmsd_*`` is over N, CA, C, O (``traj`` reduced to them)
    and ``ca_rmsd_*`` over the Calpha atoms; ``cn_ok`` is the share of
    frames without a peptide-bond (C-N) break, ``real_cn_ok`` that of the
    real frames.
    """
    tokens = tok.encode(traj)
    backbone = tok.mode == "backbone"
    ref = tok.reduce(traj) if backbone else traj
    ca = ref.topology.select("name CA")
    real = mk.validity_report(ref)
    real_min = backbone_min_distance(ref) if backbone else None
    out = {}
    for bins in (0, 2, 4, 8):
        noisy = tok.jitter(tokens, bins, seed + bins) if bins else tokens
        t0 = time.perf_counter()
        dec = tok.decode(noisy)
        ms = 1000 * (time.perf_counter() - t0) / len(noisy)
        r = rmsd_per_frame(dec.xyz, ref.xyz)
        rep = mk.validity_report(dec)
        out[str(bins)] = {"rmsd_mean": float(r.mean()), "rmsd_max": float(r.max()), "ms_per_frame": ms,
                          "valid": float(rep["ca_valid_fraction"]), "real_valid": float(real["ca_valid_fraction"])}
        if backbone:
            rc = rmsd_per_frame(dec.xyz[:, ca], ref.xyz[:, ca])
            out[str(bins)].update(ca_rmsd_mean=float(rc.mean()), ca_rmsd_max=float(rc.max()),
                                  cn_ok=float(rep["frames_without_cn_break"]),
                                  real_cn_ok=float(real["frames_without_cn_break"]),
                                  cn_bond_A=rep["cn_bond_length_A"], real_cn_bond_A=real["cn_bond_length_A"],
                                  ca_bond_A=rep["ca_bond_length_A"], real_ca_bond_A=real["ca_bond_length_A"])
            dmin = backbone_min_distance(dec)
            out[str(bins)].update(bb_clash_free=float(np.mean(dmin >= BACKBONE_CLASH_NM)),
                                  real_bb_clash_free=float(np.mean(real_min >= BACKBONE_CLASH_NM)),
                                  bb_min_distance_A=float(10 * dmin.min()), real_bb_min_distance_A=float(10 * real_min.min()))
        if baseline:
            rb = rmsd_per_frame(chain_only(tok, noisy), traj.xyz)
            out[str(bins)]["chain_only_rmsd_mean"] = float(rb.mean())
    return out


def backbone_refs() -> dict[str, float]:
    refs = mk.datasets.adk_references()
    tok = StructureTokenizer(device="cpu").fit(refs["closed"])
    out = {"tokens_per_frame": tok.tokens_per_frame, "vocab_size": tok.vocab_size}
    for state in ("closed", "open"):
        dec, ref = tok.decode(tok.encode(refs[state])), tok.reduce(refs[state])
        ca = [a.index for a in dec.topology.atoms if a.name == "CA"]
        out[f"{state}_backbone_rmsd"] = float(rmsd_per_frame(dec.xyz, ref.xyz)[0])
        out[f"{state}_ca_rmsd"] = float(rmsd_per_frame(dec.xyz[:, ca], ref.xyz[:, ca])[0])
    return out


def load_backbone_runs(folder: str | Path, fit_fraction: float = 0.5) -> dict[str, md.Trajectory]:
    """The all-atom AdK runs of ``scripts/make_adk_allatom.py``: fit / held-out closed / unseen open frames."""
    folder = Path(folder)
    top = md.load_pdb(str(folder / "adk_aa_backbone.pdb")).topology
    closed = md.load_xtc(str(folder / "adk_aa_closed.xtc"), top=top)
    opened = md.load_xtc(str(folder / "adk_aa_open.xtc"), top=top)
    cut = int(round(fit_fraction * closed.n_frames))
    return {"fit": closed[:cut], "closed_heldout": closed[cut:], "open": opened,
            "source": f"all-atom runs in {folder}: closed[:{cut}] fit, closed[{cut}:] held out "
                      f"({closed.n_frames - cut} frames), open run unseen ({opened.n_frames} frames)"}


def backbone_runs(folder: str | Path, noise_frames: int, seed: int, random_frames: int = 5, **config) -> dict:
    """Backbone mode on all-atom MD frames: the sampler-noise probe, clean round trip, threads, random tokens.

    ``config``: tokenizer settings other than the defaults (e.g. ``plane_bins``).
    """
    data = load_backbone_runs(folder)
    t0 = time.perf_counter()
    tok = StructureTokenizer(atoms="backbone", device="cpu", **config).fit(data["fit"])
    out: dict = {"data": data["source"], "config": config, "fit_s": time.perf_counter() - t0,
                 "tokens_per_frame": tok.tokens_per_frame,
                 "vocab_size": tok.vocab_size, "sampler_noise": {}}
    for state in ("closed_heldout", "open"):
        t = data[state]
        sub = t[np.linspace(0, t.n_frames - 1, min(noise_frames, t.n_frames)).astype(int)]
        out["sampler_noise"][state] = sampler_noise(tok, sub, seed, baseline=False)
    # two torch threads (the issue: a 349-residue backbone protein hung in MKL's DLASWP with 2 threads)
    sub = data["open"][: min(10, data["open"].n_frames)]
    noisy = tok.jitter(tok.encode(sub), 4, seed + 4)
    t0 = time.perf_counter()
    dec2 = tok.decode(noisy, threads=2)
    ms2 = 1000 * (time.perf_counter() - t0) / len(noisy)
    same = float(np.abs(dec2.xyz - tok.decode(noisy).xyz).max())
    out["two_threads"] = {"frames": len(noisy), "ms_per_frame": ms2, "finite": bool(np.isfinite(dec2.xyz).all()),
                          "max_abs_diff_vs_one_thread_nm": same}
    # uniformly random valid tokens: bounded time, finite coordinates
    rng = np.random.default_rng(seed)
    lohi = tok.valid_token_ranges()
    rand = rng.integers(lohi[:, 0], lohi[:, 1], size=(random_frames, len(lohi)))
    t0 = time.perf_counter()
    dec = tok.decode(rand)
    out["random_tokens"] = {"frames": random_frames, "ms_per_frame": 1000 * (time.perf_counter() - t0) / random_frames,
                            "finite": bool(np.isfinite(dec.xyz).all())}
    return out


def print_backbone(res: dict) -> None:
    print(f"backbone mode: {res['data']}; tokenizer settings {res['config'] or 'default'}, "
          f"{res['tokens_per_frame']} tokens/frame, vocab {res['vocab_size']}")
    print("| state | noise (bins) | backbone RMSD mean / max (A) | Calpha RMSD mean / max (A) | valid frames (real) "
          f"| no C-N break (real) | no heavy-atom pair < {10 * BACKBONE_CLASH_NM:g} A (real) | closest pair (real), A "
          "| ms/frame |")
    print("|---|---|---|---|---|---|---|---|---|")
    for state, rows in res["sampler_noise"].items():
        for bins, v in rows.items():
            print(f"| {state} | {bins} | {v['rmsd_mean']:.2f} / {v['rmsd_max']:.2f} | {v['ca_rmsd_mean']:.2f} / "
                  f"{v['ca_rmsd_max']:.2f} | {100 * v['valid']:.1f}% ({100 * v['real_valid']:.1f}%) | "
                  f"{100 * v['cn_ok']:.1f}% ({100 * v['real_cn_ok']:.1f}%) | "
                  f"{100 * v['bb_clash_free']:.1f}% ({100 * v['real_bb_clash_free']:.1f}%) | "
                  f"{v['bb_min_distance_A']:.2f} ({v['real_bb_min_distance_A']:.2f}) | {v['ms_per_frame']:.0f} |")
    print(f"two torch threads: {json.dumps(res['two_threads'])}")
    print(f"random tokens: {json.dumps(res['random_tokens'])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", choices=("auto", "shipped", "dev"), default="auto")
    ap.add_argument("--noise-frames", type=int, default=200, help="open frames used for the noise test")
    ap.add_argument("--noise-seed", type=int, default=0, help="seed of the token perturbations (default 0)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the machine is shared)")
    ap.add_argument("--json", default=None, help="write all results to this JSON file")
    ap.add_argument("--backbone-traj", default=None, metavar="DIR",
                    help="instead of the Calpha benchmark: backbone mode on the all-atom runs that "
                         "scripts/make_adk_allatom.py wrote to DIR (fit on the first half of the closed run; "
                         "--noise-frames frames of the held-out closed half and of the open run)")
    ap.add_argument("--plane-bins", type=int, default=None,
                    help="with --backbone-traj: peptide-plane bins of the tokenizer (default: TokenizerConfig's)")
    ap.add_argument("--backbone-angle-bins", type=int, default=None,
                    help="with --backbone-traj: bond-angle bins of the tokenizer (default: TokenizerConfig's, 128, "
                         "twice as wide as the 256 Calpha-mode bins)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.backbone_traj:
        extra = {k: v for k, v in (("plane_bins", args.plane_bins), ("backbone_angle_bins", args.backbone_angle_bins))
                 if v is not None}
        res = backbone_runs(args.backbone_traj, args.noise_frames, args.noise_seed, **extra)
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), platform.processor())
        res["machine"] = f"{cpu}, {torch.get_num_threads()} torch threads"
        print_backbone(res)
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=2))
        return
    if args.data == "shipped" or (args.data == "auto" and (Path(mk.__file__).parent / "data/adk/adk_cg_closed_train.xtc").exists()):
        data = shipped_data()
    else:
        data = dev_data()
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    results = {"data": data["source"], "machine": f"{cpu}, {torch.get_num_threads()} torch threads",
               "n_fit": data["fit"].n_frames, "n_closed": data["closed_heldout"].n_frames,
               "n_open": data["open"].n_frames, "methods": {}}
    methods = {"default": {}, "no_hinges": {"hinge_rounds": 0}, "no_refine": {"refine_iterations": 0, "hinge_rounds": 0}}
    sub = data["open"][np.linspace(0, data["open"].n_frames - 1, min(args.noise_frames, data["open"].n_frames)).astype(int)]
    for name, kw in methods.items():
        t0 = time.perf_counter()
        tok = StructureTokenizer(device=args.device, **kw).fit(data["fit"])
        fit_s = time.perf_counter() - t0
        fit_tokens = tok.encode(data["fit"])
        res = {"fit_s": fit_s, "tokens_per_frame": tok.tokens_per_frame, "vocab_size": tok.vocab_size,
               "code_usage_pct": 100 * len(np.unique(fit_tokens)) / tok.vocab_size,
               "closed": evaluate(tok, data["closed_heldout"]), "open": evaluate(tok, data["open"]),
               "noise_open": noise(tok, sub, seed=args.noise_seed),
               "sampler_noise": {"closed": sampler_noise(tok, data["closed_heldout"][:: max(1, data["closed_heldout"].n_frames // args.noise_frames)][: args.noise_frames], args.noise_seed, name == "default"),
                                 "open": sampler_noise(tok, sub, args.noise_seed, name == "default")}}
        results["methods"][name] = res
        print(f"{name}: {json.dumps(res)}", flush=True)
    results["backbone_crystals"] = backbone_refs()
    print(json.dumps(results["backbone_crystals"]))
    print()
    print(f"data: {results['data']}; machine: {results['machine']}")
    print("| method | closed held-out mean / p95 (A) | open unseen mean / p95 (A) | bonds 3.5-4.1 A (closed / open) "
          "| code usage | fit (s) | encode+decode frames/s (wall / per CPU-second) | tokens/frame | vocab |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results["methods"].items():
        c, o = r["closed"], r["open"]
        print(f"| {name} | {c['rmsd_mean']:.3f} / {c['rmsd_p95']:.3f} | {o['rmsd_mean']:.3f} / {o['rmsd_p95']:.3f} "
              f"| {c['bonds_ok_pct']:.2f}% / {o['bonds_ok_pct']:.2f}% | {r['code_usage_pct']:.1f}% | {r['fit_s']:.2f} "
              f"| {0.5 * (c['fps'] + o['fps']):.0f} / {0.5 * (c['fps_cpu_time'] + o['fps_cpu_time']):.0f} "
              f"| {r['tokens_per_frame']} | {r['vocab_size']} |")
    print()
    print("| method | noise | RMSD growth mean (A) | growth median (A) | p95 RMSD (A) |")
    print("|---|---|---|---|---|")
    for name, r in results["methods"].items():
        for k, v in r["noise_open"].items():
            print(f"| {name} | {k.replace('_', ' ')} | {v['growth_mean']:.3f} | {v['growth_median']:.3f} | {v['rmsd_p95']:.2f} |")
    print()
    print("| method | state | noise (bins) | RMSD mean / max (A) | valid frames (real) | ms/frame | chain only (A) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results["methods"].items():
        for state, rows in r["sampler_noise"].items():
            for bins, v in rows.items():
                base = f"{v['chain_only_rmsd_mean']:.2f}" if "chain_only_rmsd_mean" in v else ""
                print(f"| {name} | {state} | {bins} | {v['rmsd_mean']:.2f} / {v['rmsd_max']:.2f} | "
                      f"{100 * v['valid']:.1f}% ({100 * v['real_valid']:.1f}%) | {v['ms_per_frame']:.0f} | {base} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
