"""Discovery scores: a hit must be valid, on the real landscape and near the target."""
from __future__ import annotations

import mdtraj as md
import numpy as np

import mdllm_kit as mk
from mdllm_kit.analysis import discovery_scores


def test_only_valid_frames_on_the_landscape_near_the_target_are_hits():
    refs = mk.datasets.adk_references()
    truth = mk.datasets.load_adk_cg("equilibrium")
    r_closed, r_open = mk.datasets.adk_cg_rmsd(truth)
    near_open = truth[int(np.argmin(r_open))]  # a real frame close to the open crystal
    far = truth[int(np.argmin(r_closed))]  # a real closed frame, far from open
    xyz = near_open.xyz.copy()
    xyz[0, 50] = xyz[0, 120] + np.float32(0.1)  # one Calpha moved onto another: a clash and two broken bonds
    squashed = md.Trajectory(xyz, near_open.topology)
    rng = np.random.default_rng(0)
    off = md.Trajectory(near_open.xyz + rng.normal(0, 0.12, near_open.xyz.shape).astype(np.float32),
                        near_open.topology)  # off the landscape (and probably broken)
    frames = md.join([near_open, far, squashed, off])
    landscape = truth[::7]  # the near-open frame itself is excluded from most of it
    s = discovery_scores(frames, refs["open"], landscape)
    assert set(s) == {"rmsd_nm", "landscape_nm", "valid", "on_landscape", "hit"}
    assert all(v.shape == (4,) for v in s.values())
    assert s["rmsd_nm"][0] < 0.3 < s["rmsd_nm"][1]
    assert s["rmsd_nm"][2] < 0.35  # the squashed frame is still close to open ...
    assert not s["valid"][2]  # ... but it is no protein
    assert s["landscape_nm"][3] > 0.2 and not s["on_landscape"][3]
    assert s["hit"].tolist() == [True, False, False, False]
    # the threshold is the caller's
    assert not discovery_scores(frames[:1], refs["open"], landscape, hit_nm=0.01)["hit"][0]
