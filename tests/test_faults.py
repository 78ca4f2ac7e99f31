"""Fault injection: hostile mirrors and registries, real media, concurrent and crashed builds.

Every fault is tried for real: the rig's fault-injecting HTTP server (and hostile servers
written here) on 127.0.0.1, real tmpfs mounts for other filesystems, real processes killed
with real signals. Each fault must end the same way: one ``Error:`` line naming the problem
and what to do, a non-zero exit code, nothing under a final name, and a cache that a clean
rebuild can use to produce the very same bytes.
"""

from __future__ import annotations

# -- bounded downloads and deadlines ---------------------------------------------------------


# -- names and digests from remotes are validated before use ---------------------------------


# -- output on another filesystem (USB sticks) -----------------------------------------------


# -- split parts ------------------------------------------------------------------------------
# isort: split
# Section-local imports (the sections of this file are written in parallel; hoist when merging).
import contextlib  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from builder.cli import app  # noqa: E402
from builder.split import PartWriter, join_instructions, part_glob  # noqa: E402

SPLIT_KIB = 1024


def _split_cli(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def _split_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _split_tarball(folder: Path, size: int, name: str = "bundle.tar.gz") -> Path:
    """A stand-in tarball (random bytes) with its ``sha256sum``-format file beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(os.urandom(size))
    (folder / f"{name}.sha256").write_text(f"{_split_sha256(path)}  {name}\n")
    return path


def _split_listing(folder: Path) -> dict[str, str]:
    """Every entry of a folder (hidden ones too) with its sha256: what a reader could see."""
    return {p.name: "dir" if p.is_dir() else _split_sha256(p) for p in folder.iterdir()}


def _split_run_join(folder: Path, join: Path) -> subprocess.CompletedProcess:
    """Run the JOIN file's command with bash in the folder, as the operator on the target does."""
    command = join.read_text().splitlines()[-1]
    return subprocess.run(
        ["bash", "-c", command], cwd=folder, capture_output=True, text=True, check=True
    )


def _split_bash_glob(folder: Path, pattern: str) -> list[str]:
    """What bash expands a glob to, in bash's own order."""
    out = subprocess.run(
        ["bash", "-c", f'printf "%s\\n" {pattern}'], cwd=folder, capture_output=True, text=True
    )
    return out.stdout.splitlines()


def _split_error_line(result) -> str:
    assert result.exit_code != 0, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.fixture(scope="module")
def split_big_tarball(tmp_path_factory) -> Path:
    """1001 x 64 KiB + 1 byte: 1002 parts at --size 64K, so part numbers need four digits."""
    return _split_tarball(tmp_path_factory.mktemp("big"), 1001 * 64 * SPLIT_KIB + 1)


@pytest.mark.parametrize("count, width", [(1, 3), (1000, 3), (1001, 4)])
def test_part_writer_gives_every_part_the_same_width(tmp_path, count, width):
    data = os.urandom(count)
    with PartWriter(tmp_path / "x.tar.gz", 1) as writer:
        writer.write(data)
    names = [f"x.tar.gz.part-{i:0{width}d}" for i in range(count)]
    assert [p.name for p in writer.parts] == names
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no temporaries left
    glob = part_glob("x.tar.gz", width)
    assert glob in join_instructions("x.tar.gz", writer.parts)
    assert _split_bash_glob(tmp_path, glob) == names  # the shell's order is the parts' order
    joined = subprocess.run(["bash", "-c", f"cat {glob}"], cwd=tmp_path, capture_output=True)
    assert joined.stdout == data


def test_split_of_a_built_tarball_gives_the_parts_a_split_build_gives(
    tmp_path, mirror_args, mirror
):
    def build(output: Path, *extra: str) -> dict:
        result = _split_cli(
            "build", *mirror_args, "--no-images", "--json", "--output", output,
            "--cache-dir", tmp_path / "c", *extra,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    whole = build(tmp_path / "whole")
    split = build(tmp_path / "split", "--split-size", "64K")
    out = tmp_path / "resplit"
    result = _split_cli("split", whole["tarball"], "--size", "64K", "--output", out, "--json")
    assert result.exit_code == 0, result.output
    assert [Path(p).name for p in json.loads(result.stdout)["parts"]] == [
        Path(p).name for p in split["parts"]
    ]
    built = {
        n: d
        for n, d in _split_listing(tmp_path / "split").items()
        if n != Path(split["bundle"]).name
    }
    assert _split_listing(out) == built  # parts, their .sha256, JOIN file and .sha256: same bytes
    assert Path(whole["tarball"]).is_file()


def test_split_into_more_than_1000_parts_rejoins_with_the_join_command(split_big_tarball, tmp_path):
    out = tmp_path / "media"
    before = _split_sha256(split_big_tarball)
    result = _split_cli("split", split_big_tarball, "--size", "64K", "--output", out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    names = [f"bundle.tar.gz.part-{i:04d}" for i in range(1002)]
    assert [Path(p).name for p in summary["parts"]] == names
    assert summary["tarball_sha256"] == before
    assert set(_split_listing(out)) == {
        *names,
        *(f"{n}.sha256" for n in names),
        "bundle.JOIN.txt",
        "bundle.tar.gz.sha256",
    }
    assert "part-[0-9][0-9][0-9][0-9]" in (out / "bundle.JOIN.txt").read_text()
    joined = _split_run_join(out, out / "bundle.JOIN.txt")
    assert "bundle.tar.gz: OK" in joined.stdout
    assert _split_sha256(out / "bundle.tar.gz") == before
    assert _split_sha256(split_big_tarball) == before  # the original is kept as it was

    # re-split into the same folder with another width: no four-digit part may remain
    (out / "bundle.tar.gz").unlink()
    result = _split_cli("split", split_big_tarball, "--size", "16M", "--output", out, "--json")
    assert result.exit_code == 0, result.output
    names = [f"bundle.tar.gz.part-{i:03d}" for i in range(4)]
    assert [Path(p).name for p in json.loads(result.stdout)["parts"]] == names
    assert _split_bash_glob(out, "bundle.tar.gz.part-*") == sorted(
        [*names, *(f"{n}.sha256" for n in names)]
    )
    _split_run_join(out, out / "bundle.JOIN.txt")
    assert _split_sha256(out / "bundle.tar.gz") == before


def test_resplit_beside_the_tarball_removes_stale_parts_of_the_same_width(tmp_path):
    tarball = _split_tarball(tmp_path / "usb", 6 * 64 * SPLIT_KIB + 5)
    digest = _split_sha256(tarball)
    first = _split_cli("split", tarball, "--size", "64K")
    assert first.exit_code == 0, first.output
    assert len(list(tarball.parent.glob("bundle.tar.gz.part-[0-9][0-9][0-9]"))) == 7
    second = _split_cli("split", tarball, "--size", "128K")
    assert second.exit_code == 0, second.output
    names = [f"bundle.tar.gz.part-{i:03d}" for i in range(4)]
    assert [ln.split()[-1] for ln in second.stdout.splitlines() if ln.startswith("part:")] == [
        str(tarball.parent / n) for n in names
    ]
    # parts 004-006 of the first split would match the JOIN glob: they must be gone
    assert _split_bash_glob(tarball.parent, "bundle.tar.gz.part-*") == sorted(
        [*names, *(f"{n}.sha256" for n in names)]
    )
    assert _split_sha256(tarball) == digest
    _split_run_join(tarball.parent, tarball.parent / "bundle.JOIN.txt")
    assert _split_sha256(tarball) == digest


@pytest.mark.parametrize(
    "damage, needle",
    [
        ("missing", "bundle.tar.gz.sha256 is missing"),
        ("other file", "has no sha256 line for bundle.tar.gz"),
        ("mismatch", "does not match bundle.tar.gz.sha256"),
    ],
)
def test_split_refuses_a_tarball_its_sha256_does_not_vouch_for(tmp_path, damage, needle):
    tarball = _split_tarball(tmp_path / "src", 3 * 64 * SPLIT_KIB)
    sums = tarball.with_name("bundle.tar.gz.sha256")
    if damage == "missing":
        sums.unlink()
    elif damage == "other file":
        sums.write_text(f"{_split_sha256(tarball)}  other.tar.gz\n")
    else:
        sums.write_text(f"{'0' * 64}  bundle.tar.gz\n")
    before = _split_listing(tarball.parent)
    out = tmp_path / "media"
    line = _split_error_line(_split_cli("split", tarball, "--size", "64K", "--output", out))
    assert needle in line
    assert not out.exists()  # nothing written, not even the folder
    line = _split_error_line(_split_cli("split", tarball, "--size", "64K"))
    assert needle in line
    assert _split_listing(tarball.parent) == before


def test_interrupted_split_leaves_the_earlier_split_untouched(tmp_path):
    """A real ``airdock split`` process, held mid-split by a FIFO, is sent SIGTERM.

    The FIFO stands in for the tarball: the checksum pass reads it whole, then the
    split blocks on it halfway, so the signal lands while parts are being written.
    The tarball is over 2 MiB so that its first half spans a whole read (1 MiB) of the split.
    """
    tarball = _split_tarball(tmp_path / "src", 40 * 64 * SPLIT_KIB + 3)
    data = tarball.read_bytes()
    out = tmp_path / "media"
    done = _split_cli("split", tarball, "--size", "128K", "--output", out)
    assert done.exit_code == 0, done.output
    before = _split_listing(out)
    fifo_dir = tmp_path / "fifo"
    fifo_dir.mkdir()
    fifo = fifo_dir / "bundle.tar.gz"
    os.mkfifo(fifo)
    (fifo_dir / "bundle.tar.gz.sha256").write_text(f"{_split_sha256(tarball)}  bundle.tar.gz\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "builder.cli", "split", fifo, "--size", "64K", "--output", out],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with open(fifo, "wb") as writer:  # the checksum pass
            writer.write(data)
        temp = _split_wait_for(
            lambda: next((p for p in out.glob(".airdock-split-*") if p.name not in before), None),
            proc,
        )
        writer = open(fifo, "wb")  # noqa: SIM115 - left open so the split blocks mid-way
        writer.write(data[: len(data) // 2])
        writer.flush()
        _split_wait_for(lambda: len(list(temp.iterdir())) >= 2, proc)
        proc.send_signal(signal.SIGTERM)
        # A signal landing between two reads of a pipe is acted on when the next read
        # returns: end the FIFO so it does. Had the signal been lost, the split would now
        # fail on a short tarball (exit 1), not report the interrupt.
        with contextlib.suppress(BrokenPipeError):
            writer.close()
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert stderr.strip() == "Error: interrupted; nothing was written under a final name"
    assert _split_listing(out) == before  # old parts, JOIN file and checksums as they were


def _split_wait_for(condition, proc: subprocess.Popen):
    """Poll until ``condition()`` is truthy; the process must still be running meanwhile."""
    for _ in range(12000):
        value = condition()
        if value:
            return value
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    raise AssertionError("the split never reached the expected point")


def test_split_sizes_of_4gib_or_more_warn_that_fat32_cannot_hold_them(tmp_path):
    tarball = _split_tarball(tmp_path, 2 * 64 * SPLIT_KIB)
    result = _split_cli("split", tarball, "--size", "4G", "--json")
    assert result.exit_code == 0, result.output
    assert [Path(p).name for p in json.loads(result.stdout)["parts"]] == ["bundle.tar.gz.part-000"]
    warning = result.stderr.strip().splitlines()
    assert len(warning) == 1 and "FAT32" in warning[0] and "exFAT" in warning[0], warning
    assert _split_cli("split", tarball, "--size", "4095M").stderr == ""


def test_build_with_split_size_of_4gib_or_more_warns_and_goes_on(tmp_path, mirror_args, mirror):
    result = _split_cli(
        "build", *mirror_args, "--no-images", "--dry-run", "--json",
        "--cache-dir", tmp_path / "c", "--split-size", "5G",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["packages"]
    warning = [ln for ln in result.stderr.splitlines() if "FAT32" in ln]
    assert len(warning) == 1 and "--split-size 5G" in warning[0] and "exFAT" in warning[0]


# -- concurrent and crashed builds ------------------------------------------------------------


# -- error lines ------------------------------------------------------------------------------
