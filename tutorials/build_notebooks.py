"""Build the committed notebooks from their plain-text sources (not part of the package).

Sources live in ``tutorials/src/`` in the "percent" format that Jupytext and
VS Code also read: a line ``# %%`` starts a code cell, ``# %% [markdown]`` a
markdown cell whose lines are comments (``# `` is stripped). Because
markdown is commented out, a source also runs as a plain script, e.g.
``MDLLM_QUICK=1 python tutorials/src/01_tokenizer.py`` (figures and widgets
are then built but not shown).

``NN_*.py`` becomes ``tutorials/NN_*.ipynb``; ``benchmarks.py`` becomes
``notebooks/benchmarks.ipynb``. Notebooks are written without outputs or
execution counts, with the ``python3`` kernelspec. Usage::

    .venv/bin/python tutorials/build_notebooks.py          # rebuild all
    .venv/bin/python tutorials/build_notebooks.py --check  # exit 1 if a notebook is out of date
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SOURCES = HERE / "src"
#: Sources that do not become ``tutorials/<name>.ipynb``.
TARGETS = {"benchmarks.py": REPO / "notebooks" / "benchmarks.ipynb"}
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
LANGUAGE_INFO = {"name": "python", "pygments_lexer": "ipython3"}

_MARKER = re.compile(r"^# %%(?P<rest>.*)$")


def parse_percent(text: str) -> list[nbformat.NotebookNode]:
    """Cells of a percent-format source (text before the first marker is ignored)."""
    cells: list[nbformat.NotebookNode] = []
    kind: str | None = None
    lines: list[str] = []

    def flush() -> None:
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in body.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(body))
        elif body.strip():
            cells.append(nbformat.v4.new_code_cell(body))

    for line in text.splitlines():
        match = _MARKER.match(line)
        if match:
            flush()
            kind = "markdown" if "[markdown]" in match.group("rest") else "code"
            lines = []
        else:
            lines.append(line)
    flush()
    return cells


def build(source: Path) -> nbformat.NotebookNode:
    """The notebook of one source, clean (no outputs, no counts, no cell ids left to chance)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = parse_percent(source.read_text())
    for i, cell in enumerate(nb.cells):
        cell.id = f"{source.stem[:20].replace('_', '-')}-{i:02d}"  # stable ids: rebuilding gives the same file
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": dict(LANGUAGE_INFO)}
    nbformat.validate(nb)
    return nb


def target_of(source: Path) -> Path:
    return TARGETS.get(source.name, HERE / f"{source.stem}.ipynb")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report notebooks that differ from their source")
    args = parser.parse_args(argv)
    stale = []
    for source in sorted(SOURCES.glob("*.py")):
        text = nbformat.writes(build(source)) + "\n"
        target = target_of(source)
        if target.exists() and target.read_text() == text:
            continue
        stale.append(target)
        if not args.check:
            target.write_text(text)
            print(f"wrote {target.relative_to(REPO)}")
    if args.check and stale:
        print("out of date: " + ", ".join(str(p.relative_to(REPO)) for p in stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
