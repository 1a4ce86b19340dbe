"""Real-browser test harness: JupyterLab on 127.0.0.1 driven by headless Chromium.

The fixtures start ``jupyter lab`` from the project's virtual environment on a free
localhost port with a random token, serving a temporary copy of ``notebooks/`` plus
the harness's own check notebooks, and drive Debian's Chromium (``/usr/bin/chromium``)
with the Playwright Python package (``executable_path``; Playwright's own browser
download is never used). WebGL is software-rendered by SwiftShader through ANGLE, so
nglview's canvas can be checked pixel by pixel on a machine without a GPU.

These tests are required: in CI (``CI=true``) a missing Chromium or Playwright is a
failure with the fix in the message; elsewhere the tests are skipped with the reason.

Screenshots of every run go to ``test-artifacts/browser/`` (git-ignored); with
``MDLLM_UPDATE_SCREENSHOTS=1`` the README's copies in ``docs/screenshots/`` are
refreshed from the same run.
"""
from __future__ import annotations

import io
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
HARNESS_NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"
ARTIFACT_DIR = REPO_ROOT / "test-artifacts" / "browser"
README_SCREENSHOT_DIR = REPO_ROOT / "docs" / "screenshots"

#: Debian's Chromium; override with MDLLM_CHROMIUM=/path/to/chromium.
DEFAULT_CHROMIUM = "/usr/bin/chromium"

#: Flags for a quiet, self-contained headless Chromium (no network of its own, no sandbox as root,
#: /dev/shm often tiny in containers). Playwright refuses --user-data-dir here: the persistent
#: context's directory is passed as its first argument instead.
CHROMIUM_BASE_ARGS = (
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
#: Software WebGL (SwiftShader through ANGLE): nglview draws on machines without a GPU.
WEBGL_ARGS = ("--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader")
#: Negative control: with the 3D APIs off, NGL cannot create a WebGL context.
NO_WEBGL_ARGS = ("--disable-3d-apis",)

#: Browser window size in CSS pixels: wide enough for the explorer's controls beside the view.
VIEWPORT = {"width": 1400, "height": 1000}

#: Bounded waits, in seconds.
SERVER_START_TIMEOUT_S = 120.0   # jupyter lab start-up on a loaded 2-core machine
SERVER_STOP_TIMEOUT_S = 20.0
PAGE_READY_TIMEOUT_S = 90.0      # JupyterLab's shell and the notebook's kernel ready
CELL_RUN_TIMEOUT_S = 420.0       # all cells of a notebook (the explorer trains a quick model)
STALL_S = 8.0                    # no cell running yet some never ran: Run All stopped at an error
POLL_S = 0.5
RUN_ALL_START_S = 10.0           # a cell shows [*] this soon after Run All Cells, or the click was lost
RUN_ALL_ATTEMPTS = 3
LATE_DIALOG_S = 1.0              # time for a late "Select Kernel" dialog to show after the kernel is idle

#: A canvas showing a rendered molecule has thousands of colours (shading, antialiasing);
#: a blank or single-colour canvas has a handful. Measured: > 2000 for AdK with SwiftShader.
MIN_RENDERED_COLOURS = 100


def in_ci() -> bool:
    """True when running under CI (``CI`` set to true/1/yes), where these tests are required."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Fail in CI (required test), skip elsewhere, with the reason and the fix."""
    if in_ci():
        pytest.fail(f"required browser test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def distinct_colours(png: bytes) -> int:
    """Number of distinct RGB colours in a PNG image (e.g. a screenshot of a canvas)."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    colours = img.getcolors(maxcolors=img.width * img.height)
    return len(colours)


# --------------------------------------------------------------------------- Jupyter server
class JupyterServer:
    """A ``jupyter lab`` process on 127.0.0.1 with a token, and a small REST client for it.

    Parameters
    ----------
    root_dir : Path
        Folder served (notebooks are opened relative to it).
    runtime_dir : Path
        Private folder for Jupyter's runtime, settings and workspaces (no user state leaks in).
    env : dict
        Extra environment for the server; kernels inherit it (e.g. ``MDLLM_QUICK=1``).
    """

    def __init__(self, root_dir: Path, runtime_dir: Path, env: dict[str, str] | None = None):
        self.root_dir = root_dir
        self.runtime_dir = runtime_dir
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = runtime_dir / "jupyter-lab.log"
        self._extra_env = dict(env or {})
        self._proc: subprocess.Popen | None = None
        self._log = None

    def _settings_dir(self) -> Path:
        """User settings for this server only: no news fetching, every cell kept in the DOM."""
        # The default location under JUPYTER_CONFIG_DIR, read by JupyterLab and Notebook 7 alike.
        settings = self.runtime_dir / "config" / "lab" / "user-settings"
        files = {
            # All cells stay in the DOM, so completion can be read from every prompt.
            "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
            # No "receive Jupyter news?" toast and no request to jupyter.org.
            "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
                "fetchNews": "false", "checkForUpdates": False},
        }
        for rel, content in files.items():
            path = settings / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(content))
        return settings

    def start(self) -> "JupyterServer":
        """Start the server and wait until its REST API answers (bounded)."""
        jupyter = Path(sys.executable).with_name("jupyter")
        if not jupyter.exists():
            raise RuntimeError(f"{jupyter} not found: install the dev extra (make install-dev)")
        args = [
            str(jupyter), "lab", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            "--ServerApp.open_browser=False",
            f"--LabApp.user_settings_dir={self._settings_dir()}",
            f"--LabApp.workspaces_dir={self.runtime_dir / 'workspaces'}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.append("--allow-root")   # jupyter refuses root without it (containers, CI)
        env = dict(os.environ)
        env.update(self._extra_env)
        env["JUPYTER_RUNTIME_DIR"] = str(self.runtime_dir / "runtime")
        env["JUPYTER_CONFIG_DIR"] = str(self.runtime_dir / "config")
        env.pop("JUPYTER_TOKEN", None)
        self._log = open(self.log_path, "wb")
        self._proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=env, cwd=self.root_dir,
                                      start_new_session=True)
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self._proc.returncode}:\n{self.log_tail()}")
            try:
                self.rest("GET", "/api/status")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(POLL_S)
        self.stop()
        raise RuntimeError(f"jupyter lab did not answer within {SERVER_START_TIMEOUT_S:.0f} s:\n"
                           f"{self.log_tail()}")

    def log_tail(self, n_chars: int = 4000) -> str:
        """The end of the server's log (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")[-n_chars:]
        except OSError:
            return "(no log)"

    def rest(self, method: str, path: str, body: Any = None) -> Any:
        """Call the server's REST API; returns the decoded JSON answer (or None)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def delete_sessions(self) -> None:
        """Shut down every session and kernel: JupyterLab would reuse a notebook's kernel
        across page loads, so each test starts from a fresh kernel."""
        for sess in self.rest("GET", "/api/sessions") or []:
            self.rest("DELETE", f"/api/sessions/{sess['id']}")
        for kernel in self.rest("GET", "/api/kernels") or []:
            self.rest("DELETE", f"/api/kernels/{kernel['id']}")

    def url(self, path: str) -> str:
        """Address of a server page, with the token (sets the login cookie on first use)."""
        sep = "&" if "?" in path else "?"
        return f"{self.base_url}{path}{sep}token={self.token}"

    def stop(self) -> None:
        """Stop the server (and its kernels): SIGTERM to its process group, then SIGKILL."""
        if self._proc is not None and self._proc.poll() is None:
            try:
                self.delete_sessions()
            except Exception:  # noqa: BLE001 - best effort before the signal
                pass
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=SERVER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(timeout=SERVER_STOP_TIMEOUT_S)
        if self._log is not None:
            self._log.close()
            self._log = None


# --------------------------------------------------------------------------- notebook page
class NotebookPage:
    """A notebook opened in JupyterLab (``ui="lab"``) or Notebook 7 (``ui="notebook"``).

    Wraps a Playwright page with the steps the tests share: open, Run All Cells from the
    menu, wait for every cell, screenshot elements and count their colours.
    """

    #: Threshold for "the canvas shows a rendered scene".
    min_colours = MIN_RENDERED_COLOURS
    #: The notebook opened last (JupyterLab keeps other tabs in the DOM, hidden).
    NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"
    _workspaces = 0

    def __init__(self, page: Any, server: JupyterServer, artifact_dir: Path):
        self.page = page
        self.server = server
        self.artifact_dir = artifact_dir
        self.console: list[str] = []
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda err: self.console.append(f"pageerror: {err}"))

    def open(self, path: str, ui: str = "lab") -> "NotebookPage":
        """Open ``path`` (relative to the server's root) and wait for an idle kernel."""
        if ui == "lab":
            # A new, empty workspace: JupyterLab would otherwise restore the tabs of the last
            # page (e.g. another test's notebook, whose kernel is gone).
            NotebookPage._workspaces += 1
            workspace = f"test-{os.getpid()}-{NotebookPage._workspaces}"
            self.page.goto(self.server.url(f"/lab/workspaces/{workspace}/tree/{path}"))
        elif ui == "notebook":
            # Notebook 7's file browser first (the way a user arrives), then the notebook.
            self.page.goto(self.server.url("/tree"))
            self.page.wait_for_selector(".jp-DirListing-content", timeout=PAGE_READY_TIMEOUT_S * 1e3)
            self.page.goto(self.server.url(f"/notebooks/{path}"))
        else:
            raise ValueError(f"ui must be 'lab' or 'notebook', got {ui!r}")
        timeout_ms = PAGE_READY_TIMEOUT_S * 1e3
        self.page.wait_for_selector(f"{self.NOTEBOOK} .jp-Cell", timeout=timeout_ms)
        # The kernel indicator reads "Idle" once the kernel has started.
        self.page.wait_for_function(
            """() => { const s = document.querySelector('.jp-Notebook-ExecutionIndicator');
                       return s && s.getAttribute('data-status') === 'idle'; }""",
            timeout=timeout_ms)
        # On a loaded machine JupyterLab can ask "Select Kernel" late, after the kernel named in
        # the notebook's metadata has already started; a user presses Select (the default,
        # python3). Any other dialog is an error.
        time.sleep(LATE_DIALOG_S)
        self.accept_kernel_dialog()
        dialog = self.page.locator(".jp-Dialog")
        if dialog.count():
            raise AssertionError(f"a dialog blocks the notebook: {dialog.first.inner_text()!r}")
        return self

    def accept_kernel_dialog(self) -> bool:
        """Press Select in a "Select Kernel" dialog if one is open; True if there was one."""
        dialog = self.page.locator(".jp-Dialog", has_text="Select Kernel")
        if not dialog.count():
            return False
        logger.warning("JupyterLab asked to select a kernel; accepting its default (%s)",
                       dialog.first.locator("select").input_value() if dialog.first.locator("select").count()
                       else "?")
        dialog.first.locator(".jp-Dialog-button.jp-mod-accept").click()
        dialog.first.wait_for(state="detached", timeout=PAGE_READY_TIMEOUT_S * 1e3)
        return True

    def run_all(self) -> None:
        """Run > Run All Cells, through the menu as a user would.

        Just after start-up JupyterLab can swallow the first menu click (the shell is still
        being laid out), so the click is repeated, a bounded number of times, until a cell
        is seen queued or run.
        """
        for _attempt in range(RUN_ALL_ATTEMPTS):
            self.accept_kernel_dialog()
            self.page.keyboard.press("Escape")   # close any menu left open
            self.page.locator("#jp-MainMenu .lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
            self.page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()
            deadline = time.monotonic() + RUN_ALL_START_S
            while time.monotonic() < deadline:
                if any(re.fullmatch(r"\[(\*|\d+)\]:", p) for p in self._prompts()):
                    return
                time.sleep(POLL_S)
            logger.warning("Run All Cells had no effect; clicking the menu again")
        raise AssertionError(f"Run > Run All Cells started no cell in {RUN_ALL_ATTEMPTS} attempts")

    def _prompts(self) -> list[str]:
        return self.page.eval_on_selector_all(
            f"{self.NOTEBOOK} .jp-CodeCell .jp-InputArea-prompt", "els => els.map(e => e.textContent.trim())")

    def error_texts(self) -> list[str]:
        """Tracebacks and widget errors shown in the notebook's outputs."""
        return self.page.evaluate(r"""(root) => {
            const out = [];
            const nb = document.querySelector(root);
            if (!nb) return ['no notebook on the page'];
            for (const e of nb.querySelectorAll('.jp-OutputArea-output')) {
                const t = e.innerText || '';
                if (/Traceback|Error displaying widget|javascript error|Failed to load model/i.test(t))
                    out.push(t.slice(0, 2000));
            }
            for (const e of nb.querySelectorAll('.jupyter-widgets-error-widget'))
                out.push('widget error: ' + (e.innerText || '').slice(0, 2000));
            return out; }""", self.NOTEBOOK)

    def wait_for_all_cells(self, timeout_s: float = CELL_RUN_TIMEOUT_S) -> float:
        """Wait until every code cell has run; fail fast on an error. Returns seconds waited."""
        t0 = time.monotonic()
        stalled_since = None
        while True:
            if self.accept_kernel_dialog():
                stalled_since = None
            prompts = self._prompts()
            running = any("*" in p for p in prompts)
            done = prompts and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts)
            if done:
                return time.monotonic() - t0
            errors = self.error_texts()
            if errors and not running:
                raise AssertionError("notebook cell failed:\n" + "\n---\n".join(errors))
            if not running:
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > STALL_S:
                    raise AssertionError(f"Run All stopped before the end; prompts {prompts}; "
                                         f"errors {errors}")
            else:
                stalled_since = None
            if time.monotonic() - t0 > timeout_s:
                raise AssertionError(f"cells still running after {timeout_s:.0f} s; prompts {prompts}")
            time.sleep(POLL_S)

    def screenshot(self, name: str, locator: Any = None, readme: bool = False) -> bytes:
        """PNG of the viewport (or of one element), saved as ``<artifact_dir>/<name>.png``.

        ``readme=True`` marks the README's pictures: with ``MDLLM_UPDATE_SCREENSHOTS=1`` they
        are also written to ``docs/screenshots/``.
        """
        png = locator.screenshot() if locator is not None else self.page.screenshot(full_page=False)
        self.artifact_dir.mkdir(parents=True, exist_ok=True)
        (self.artifact_dir / f"{name}.png").write_bytes(png)
        if readme and os.environ.get("MDLLM_UPDATE_SCREENSHOTS") == "1":
            README_SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
            (README_SCREENSHOT_DIR / f"{name}.png").write_bytes(png)
        return png

    def canvas_colours(self, selector: str, name: str, timeout_s: float = 60.0,
                       minimum: int = MIN_RENDERED_COLOURS) -> int:
        """Distinct colours in the canvas under ``selector`` (in the open notebook), waiting
        (bounded) for it to draw.

        Returns the last count; it is below ``minimum`` only when the wait ran out.
        """
        canvas = self.page.locator(f"{self.NOTEBOOK} {selector} canvas").first
        canvas.wait_for(state="visible", timeout=timeout_s * 1e3)
        canvas.scroll_into_view_if_needed()
        deadline = time.monotonic() + timeout_s
        while True:
            n = distinct_colours(self.screenshot(name, canvas))
            if n >= minimum or time.monotonic() > deadline:
                return n
            time.sleep(1.0)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Path of the system Chromium, and Playwright importable; fail in CI, skip elsewhere."""
    path = os.environ.get("MDLLM_CHROMIUM", DEFAULT_CHROMIUM)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        unavailable(f"Chromium not found at {path}: install Debian's package "
                    "(`apt-get update && apt-get install -y chromium`; .ci/run does this) "
                    "or set MDLLM_CHROMIUM")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("the Playwright Python package is missing: `make install-dev` installs the dev "
                    "extra (never run `playwright install`; the system Chromium is used)")
    return path


@pytest.fixture(scope="session")
def artifact_dir() -> Path:
    """Where this run's screenshots go (git-ignored)."""
    ARTIFACT_DIR.mkdir(parents=True, exist_ok=True)
    return ARTIFACT_DIR


@pytest.fixture(scope="session")
def jupyter_server(chromium_executable: str, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[JupyterServer]:
    """JupyterLab serving a temporary copy of ``notebooks/`` and the harness notebooks,
    with ``MDLLM_QUICK=1`` so the notebooks pick their small CI settings."""
    base = tmp_path_factory.mktemp("jupyter")
    root = base / "root"
    shutil.copytree(REPO_ROOT / "notebooks", root / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copytree(HARNESS_NOTEBOOKS, root / "checks")
    server = JupyterServer(root, base, env={"MDLLM_QUICK": "1", "OMP_NUM_THREADS": "1",
                                            "PYTHONUNBUFFERED": "1"})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def launch_context(playwright: Any, executable: str, user_dir: Path, webgl: bool = True) -> Any:
    """A headless persistent Chromium context (its own profile folder), software WebGL on/off."""
    args = list(CHROMIUM_BASE_ARGS) + list(WEBGL_ARGS if webgl else NO_WEBGL_ARGS)
    return playwright.chromium.launch_persistent_context(
        str(user_dir), executable_path=executable, headless=True, args=args, viewport=VIEWPORT)


@pytest.fixture(scope="session")
def playwright_instance(chromium_executable: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser_context(playwright_instance: Any, chromium_executable: str,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The WebGL-enabled Chromium shared by the tests."""
    ctx = launch_context(playwright_instance, chromium_executable,
                         tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Keep each phase's report on the test item, so fixtures can tell a failed test."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture
def notebook_page(request: pytest.FixtureRequest, browser_context: Any, jupyter_server: JupyterServer,
                  artifact_dir: Path) -> Iterator[NotebookPage]:
    """A fresh page on a server without sessions; sessions are deleted again afterwards.

    A failed test leaves ``FAILED-<test>.png`` and ``FAILED-<test>.log`` (browser console and
    the server log's end) in the artifact folder.
    """
    jupyter_server.delete_sessions()
    page = browser_context.new_page()
    page.set_default_timeout(PAGE_READY_TIMEOUT_S * 1e3)
    nb = NotebookPage(page, jupyter_server, artifact_dir)
    try:
        yield nb
    finally:
        _keep_failure_evidence(request, nb)
        page.close()
        jupyter_server.delete_sessions()


def _keep_failure_evidence(request: pytest.FixtureRequest, nb: NotebookPage) -> None:
    """After a failed test: ``FAILED-<test>.png`` and ``.log`` (browser console, server log's end)."""
    rep = getattr(request.node, "rep_call", None)
    if rep is None or not rep.failed:
        return
    name = "FAILED-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    try:
        nb.screenshot(name)
    except Exception as exc:  # noqa: BLE001 - the page may be gone
        logger.warning("no failure screenshot: %s", exc)
    (nb.artifact_dir / f"{name}.log").write_text(
        "\n".join(nb.console) + "\n\n--- server log ---\n" + nb.server.log_tail())


@pytest.fixture
def no_webgl_notebook_page(request: pytest.FixtureRequest, playwright_instance: Any, chromium_executable: str,
                           jupyter_server: JupyterServer, artifact_dir: Path, tmp_path: Path
                           ) -> Iterator[NotebookPage]:
    """Like ``notebook_page``, in a Chromium launched with ``--disable-3d-apis`` (negative control)."""
    jupyter_server.delete_sessions()
    ctx = launch_context(playwright_instance, chromium_executable, tmp_path / "profile-no-webgl", webgl=False)
    try:
        page = ctx.new_page()
        page.set_default_timeout(PAGE_READY_TIMEOUT_S * 1e3)
        nb = NotebookPage(page, jupyter_server, artifact_dir)
        yield nb
        _keep_failure_evidence(request, nb)
    finally:
        ctx.close()
        jupyter_server.delete_sessions()
