"""What the builder tells people: JSON errors, the build summary, progress bars on a terminal
(and never under --json), diff on tarballs and parts, release.toml, mirror spellings.

Builds run against the fixture mirror over HTTP; the progress-bar tests run the real console
script on a pseudo-terminal made by util-linux ``script``.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builder.cli import app, plural, split_fix
from builder.mirrors import resolve_chain
from tests.rig.tools import need

AIRDOCK = str(Path(sys.executable).with_name("airdock"))


def airdock(*args, env=None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)


def script_run(args: list[str], columns: int = 80, check: bool = True) -> str:
    """Run the console script on a pty (``script``), return everything the terminal saw."""
    need("script")
    rows = 24 if columns else 0  # 0 columns: a pty that states no size at all
    command = f"stty cols {columns} rows {rows} 2>/dev/null; " + shlex.join([AIRDOCK, *args])
    proc = subprocess.run(
        ["script", "-qfec", command, "/dev/null"],
        capture_output=True, timeout=600, env={**os.environ, "TERM": "xterm"},
    )  # fmt: skip
    out = proc.stdout.decode("utf-8", "replace").replace("\r\n", "\n")  # the pty's newlines
    assert proc.returncode == 0 or not check, out + proc.stderr.decode()
    return out


# -- fast -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["build", "--mirror", "nowhere", "--no-images"],
        ["build", "--jobs", "many"],
        ["build", "--no-such-option"],
        ["release"],
        ["versions", "--mirror", "nowhere"],
        ["diff", "/nonexistent/a", "/nonexistent/b"],
        ["verify", "/nonexistent/bundle"],
        ["split", "/nonexistent.tar.gz", "--size", "1M"],
    ],
)
def test_json_errors_are_an_object_on_stdout(args, tmp_path):
    proc = subprocess.run([AIRDOCK, *args, "--json"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)  # fmt: skip
    assert proc.returncode != 0
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False and doc["error"] and isinstance(doc["fix"], str)
    assert doc["exit_code"] == proc.returncode
    assert "Traceback" not in proc.stderr


def test_text_errors_stay_one_line_on_stderr(tmp_path):
    proc = subprocess.run([AIRDOCK, "diff", "/nonexistent/a", "/nonexistent/b"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.startswith("Error: ") and proc.stderr.count("\n") == 1


def test_bar_layout_is_never_empty():
    from builder.cli import bar_layout

    assert bar_layout(0, 0) == {"nrows": 24, "ncols": 80}
    assert bar_layout(100, 0) == {"nrows": 24, "ncols": 100}
    assert bar_layout(20, 30)["ncols"] == 20 and "bar_format" in bar_layout(20, 30)
    assert bar_layout(120, 40) == {"dynamic_ncols": True}


def test_split_fix_and_plural():
    assert split_fix("a broken thing; do this") == ("a broken thing", "do this")
    assert split_fix("x; y; do that") == ("x; y", "do that")
    assert split_fix("no advice") == ("no advice", "")
    assert (plural(1, "part"), plural(3, "part"), plural(0, "image")) == (
        "1 part",
        "3 parts",
        "0 images",
    )


@pytest.mark.parametrize("spelling", ["Aliyun", "ALIYUN", "aliyun", "AzureChinaCloud"])
def test_get_docker_mirror_spellings(spelling):
    mirror = resolve_chain(spelling).first
    assert mirror.name in ("aliyun", "azurechinacloud")
    if spelling == "AzureChinaCloud":
        assert mirror.docker_ce == "https://mirror.azure.cn/docker-ce"


def test_cli_start_up_imports_nothing_heavy():
    code = (
        "import sys, builder.cli; heavy = {'requests', 'solv', 'createrepo_c', 'pysequoia', "
        "'tqdm', 'cryptography', 'defusedxml', 'cyclonedx'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_defaults_agree_with_the_modules_that_use_them():
    from builder import defaults, download, plan

    assert defaults.DEFAULT_TIMEOUT == download.DEFAULT_TIMEOUT
    assert plan.DEFAULT_PACKAGES == defaults.DEFAULT_PACKAGES


def test_release_config_mistakes_are_one_line(tmp_path):
    from builder.releaseconfig import ConfigError, load_release_config

    cases = {
        'mirrors = ["docker"]\n': "unknown key 'mirrors'; did you mean 'mirror'?",
        'jobs = "4"\n': "jobs is a str, not a whole number",
        "no-images = 1\n": "no-images is a int, not true or false",
        "arch = [1]\n": "arch is a list, not a string or a list of strings",
        "mirror = \n": "is not valid TOML",
        "[release]\nmirror = 'x'\n": "unknown key 'release'",
    }
    for text, words in cases.items():
        path = tmp_path / "release.toml"
        path.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_release_config(path)
        assert words in str(err.value) and "\n" not in str(err.value), str(err.value)
    path.write_text('mirror = "docker"\noutput = "out"\nsplit-size = 1048576\n')
    cfg = load_release_config(path)
    assert cfg.values == {
        "mirror": ["docker"],
        "output": str(tmp_path.resolve() / "out"),
        "split_size": "1048576",
    }


def test_every_release_option_has_a_config_key():
    from builder.releaseconfig import KEYS

    command = next(c for c in app.registered_commands if c.name == "release")
    import inspect

    names = {
        n.replace("_", "-")
        for n in inspect.signature(command.callback).parameters  # type: ignore[arg-type]
    } - {"ctx", "config", "as-json"}
    assert names == set(KEYS)


def test_diff_refuses_a_tarball_without_a_manifest(tmp_path):
    bad = tmp_path / "x.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        data = b"{}"
        info = tarfile.TarInfo("x/other.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    result = airdock("diff", bad, bad)
    assert result.exit_code != 0
    assert "holds no NAME/manifest.json" in result.output
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tarball")
    result = airdock("diff", tmp_path / "junk.tar.gz", bad)
    assert "cannot be read as a bundle tarball" in result.output


# -- builds against the fixture mirror --------------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory, fixture_mirror, mirror_server):
    """One text-mode build, its summary, then the same bundle split into parts."""
    from tests.rig.fixtures_mirror import builder_mirror_args

    tmp = tmp_path_factory.mktemp("ux")
    args = [*builder_mirror_args(fixture_mirror, mirror_server.url), "--no-images",
            "--cache-dir", tmp / "cache"]  # fmt: skip
    result = airdock("build", *args, "--output", tmp / "out")
    assert result.exit_code == 0, result.output
    split = airdock("build", *args, "--output", tmp / "split", "--split-size", "64K")
    assert split.exit_code == 0, split.output
    return {"tmp": tmp, "args": args, "text": result.stdout, "split": split.stdout}


@pytest.mark.slow
def test_build_summary_says_what_happened_and_what_next(built):
    text = built["text"]
    out = built["tmp"] / "out"
    tarball = next(p for p in out.iterdir() if p.name.endswith((".tar.gz", ".tar")))
    count = len(json.loads(next(out.glob("*/manifest.json")).read_text())["packages"])
    assert f"contents: {count} RPMs ({count} downloaded, 0 from cache), 0 images" in text
    assert re.search(rf"tarball:  {re.escape(str(tarball))} \(\d+\.\d [KMG]B\)", text)
    assert f"  {tarball.name}  {tarball.name}.sha256" in text
    assert f"sha256sum -c {tarball.name}.sha256 && tar xf {tarball.name}" in text
    assert "sudo ./install.sh" in text
    split = built["split"]
    assert f"contents: {count} RPMs (0 downloaded, {count} from cache)" in split
    join = next((built["tmp"] / "split").glob("*.JOIN.txt"))
    assert join.name in split and f"sh {join.name}" in split
    assert " parts of " in split


@pytest.mark.slow
def test_diff_reads_tarballs_parts_and_join_files(built):
    out, split = built["tmp"] / "out", built["tmp"] / "split"
    folder = next(p for p in out.iterdir() if p.is_dir())
    tarball = next(p for p in out.iterdir() if p.name.endswith((".tar.gz", ".tar")))
    join = next(split.glob("*.JOIN.txt"))
    parts = sorted(p for p in split.iterdir() if re.search(r"\.part-\d+$", p.name))
    part = parts[1]
    for a, b in [(folder, tarball), (tarball, join), (join, part)]:
        result = airdock("diff", a, b, "--json")
        assert result.exit_code == 0, result.output
        d = json.loads(result.stdout)
        assert d["packages"] == {"added": [], "removed": [], "changed": []}
    missing = parts[0]  # a gap: refused, not read past
    missing.rename(missing.with_name(missing.name + ".away"))
    try:
        result = airdock("diff", join, folder)
        assert result.exit_code != 0 and "without gaps" in result.output
    finally:
        missing.with_name(missing.name + ".away").rename(missing)


@pytest.mark.slow
@pytest.mark.parametrize("columns", [120, 20, 0])  # 0: a pty that states no size
def test_progress_bars_on_a_terminal_and_never_under_json(built, columns, tmp_path):
    args = [str(a) for a in built["args"]]
    # a fresh cache: the RPMs are downloaded, so the download bar has something to show
    args[args.index("--cache-dir") + 1] = str(tmp_path / "cache")
    seen = script_run(["build", *args, "--output", str(tmp_path / "o1")], columns)
    bars = [line for line in seen.replace("\r", "\n").splitlines() if "%" in line]
    assert any(line.startswith("RPMs:") for line in bars), seen
    assert any(line.startswith("tarball:") for line in bars), seen
    if columns == 20:  # narrow: the numbers, no bar
        assert all("|" not in line and len(line) <= 20 for line in bars), bars
    else:  # never a 0-width bar: there is room between the bar's edges
        assert all(re.search(r"%\|.{10,}\|", line) for line in bars), bars
    # (the fixture's CentOS key is no vendor key, so verify without --key fails: its bar shows)
    tarball = next((tmp_path / "o1").glob("*.tar"))
    verify = script_run(["verify", str(tarball)], columns, check=False)
    assert "checksums:" in verify and "[pass] SHA256SUMS" in verify
    assert any(line.startswith("tarball:") and "%" in line for line in verify.splitlines())
    quiet = script_run(["build", *args, "--output", str(tmp_path / "o2"), "--json"], columns)
    assert "%" not in quiet and "\r" not in quiet
    assert json.loads(quiet)["ok"] is True


@pytest.mark.slow
def test_release_from_a_config_file_equals_the_release_from_flags(tmp_path, built):
    args = [str(a) for a in built["args"]]
    mirror, os_mirror = args[args.index("--mirror") + 1], args[args.index("--os-mirror") + 1]
    keys = [args[i + 1] for i, a in enumerate(args) if a == "--gpg-key"]
    flags = airdock("release", "--mirror", mirror, "--os-mirror", os_mirror,
                    *[x for k in keys for x in ("--gpg-key", k)], "--no-images",
                    "--docker-version", "25.0.5", "--split-size", "100K",
                    "--cache-dir", built["tmp"] / "cache", "--output", tmp_path / "flags",
                    "--json")  # fmt: skip
    assert flags.exit_code == 0, flags.output
    config = tmp_path / "cfg" / "release.toml"
    config.parent.mkdir()
    config.write_text(
        f'mirror = ["{mirror}"]\nos-mirror = "{os_mirror}"\n'
        f"gpg-key = {json.dumps(keys)}\nno-images = true\n"
        'docker-version = "25.0.5"\nsplit-size = "100K"\n'
        f'cache-dir = "{built["tmp"] / "cache"}"\noutput = "../fromfile"\n'
    )
    fromfile = airdock("release", "--config", config, "--json")
    assert fromfile.exit_code == 0, fromfile.output
    a, b = tmp_path / "flags", tmp_path / "fromfile"
    names = sorted(p.name for p in a.iterdir() if p.is_file() and p.name != "RELEASES.json")
    assert names == sorted(p.name for p in b.iterdir() if p.is_file() and p.name != "RELEASES.json")
    assert any(".part-" in n for n in names)
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ra, rb = (json.loads((d / "RELEASES.json").read_text()) for d in (a, b))
    assert "config" not in ra
    import hashlib

    assert rb.pop("config") == {
        "file": "release.toml",
        "sha256": hashlib.sha256(config.read_bytes()).hexdigest(),
    }
    assert ra == rb
