"""Finding the external tools the rig drives.

`make test` installs them (apt-get) when they are missing. A test that needs a
tool which is still missing fails under CI=true (a missing tool is a broken CI
machine, not a reason to pass) and is skipped only on a developer's machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(tool: str) -> str:
    """Return the path of ``tool`` or fail (CI) / skip (developer machine)."""
    path = shutil.which(tool)
    if path:
        return path
    message = f"{tool} is not installed; `make test` installs it (apt-get)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError("unreachable")


def pyenv_python(version: str) -> str:
    """Path of pyenv's interpreter for ``version`` (e.g. "2.7.18"), failing like need()."""
    try:
        root = subprocess.run(
            ["pyenv", "root"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        root = str(Path.home() / ".pyenv")
    major_minor = ".".join(version.split(".")[:2])
    path = Path(root) / "versions" / version / "bin" / f"python{major_minor}"
    if path.exists():
        return str(path)
    return need(f"python{major_minor}")


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run with text output captured; raises with stderr shown on failure."""
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    check = kwargs.pop("check", True)
    proc = subprocess.run(cmd, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def stop_process(proc: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGTERM by PID, wait up to ``grace`` seconds, then SIGKILL."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def cli_runner():
    """A typer/click CliRunner whose result has stdout and stderr apart on every click: 8.2+
    always separates them; 8.1 (the Python 3.9 venv) needs ``mix_stderr=False``."""
    from typer.testing import CliRunner

    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()


def combined_output(result) -> str:
    """stdout and stderr of a cli_runner() result (8.2's ``output`` already has both)."""
    try:
        err = result.stderr
    except ValueError:  # mixed: output has it all
        return result.output
    return result.output if err in result.output else result.output + err
