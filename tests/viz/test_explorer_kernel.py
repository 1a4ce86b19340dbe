"""The explorer in a real Jupyter kernel: cells run while it samples, and its widgets reach the front end.

A notebook is executed through nbclient on the venv's ``python3`` kernel. Its
first cell starts a run whose sampler waits at every frame until the second
cell lets frames through; the second cell can only run if the kernel is free
while the sampling thread is busy, i.e. the notebook stays responsive.
"""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

LM_TESTS = Path(__file__).resolve().parents[1] / "lm"
#: Upper bound for one cell (kernel start, torch import and a few tiny frames on a loaded 2-core machine).
CELL_TIMEOUT_S = 300

SETUP = """
import sys, threading
sys.path.insert(0, {lm_tests!r})
import mdllm_kit as mk
from mdllm_kit.lm.sampler import Sampler
from toy_tokenizer import ToyTokenizer, toy_trajectory

bundle = mk.load_bundle({bundle!r}, device="cpu", tokenizer_cls=ToyTokenizer)

class Gated(Sampler):
    def __init__(self, bundle):
        super().__init__(bundle)
        self.gate = threading.Semaphore(0)
    def generate_frame(self, *args):
        assert self.gate.acquire(timeout=120)
        return super().generate_frame(*args)

sampler = Gated(bundle)
explorer = mk.viz.SamplingExplorer(bundle, training=toy_trajectory(60, 6, 0), sampler=sampler)
explorer.n_frames.value, explorer.n_walkers.value = 4, 2
display(explorer)
explorer.generate_button.click()
"""

WHILE_SAMPLING = """
assert explorer.running and explorer.progress.value == 0, "the run ended before this cell ran"
sampler.gate.release(4)
ens = explorer.wait(120)
print("frames", ens.n_frames, "walkers", ens.n_walkers, "progress", explorer.progress.value)
"""


@pytest.mark.slow
@pytest.mark.timeout(2 * CELL_TIMEOUT_S)
def test_cells_run_while_the_explorer_samples(trained_bundle_dir, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SETUP.format(lm_tests=str(LM_TESTS), bundle=str(trained_bundle_dir))),
                nbformat.v4.new_code_cell(WHILE_SAMPLING)]
    NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT_S, allow_errors=False).execute()
    shown = nb.cells[0].outputs
    assert any("application/vnd.jupyter.widget-view+json" in out.get("data", {}) for out in shown)
    text = "".join(out.get("text", "") for out in nb.cells[1].outputs if out.output_type == "stream")
    assert "frames 4 walkers 2 progress 4" in text
    # the widget state the kernel sent holds the explorer's controls and the state map
    models = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    names = {m["model_name"] for m in models.values()}
    assert {"FloatSliderModel", "IntSliderModel", "IntProgressModel", "ButtonModel"} <= names
