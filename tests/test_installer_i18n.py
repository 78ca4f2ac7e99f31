"""The installer speaks Simplified Chinese to operators whose locale is zh_* (or --lang zh),
English otherwise, and never breaks on the console's encoding.

* The catalogue: every ``T("...")`` in the installer has a ZH entry with the same
  %-placeholders in the same order; no operator-facing message bypasses ``T``.
* The choice: LC_ALL, then LC_MESSAGES, then LANG (gettext's order); ``--lang`` wins; Chinese
  the terminal cannot encode (LANG=C: ASCII) falls back to English with a note on stderr.
* End to end under pyenv's Python 2.7.18 and 3.6.15 and the current Python, with
  LANG=zh_CN.UTF-8 and LANG=C: errors and usage errors here (no sandbox); check, a missing
  dependency, install, status and uninstall on the sandbox host.  Assertions are on key phrases,
  on stdout/stderr being valid UTF-8 (no mojibake) and on no traceback or UnicodeError.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess

import pytest

from tests.rig.fixtures_sandbox import INSTALLER_PYTHONS, installer_python
from tests.rig.sandbox import INSTALLER
from tests.test_installer_static import ai

PLACEHOLDER = re.compile(r"%[-+ #0-9.]*[sdifrx%]")
# Lines that hold no words to translate: product names, commands, data.
PLAIN_SAYS = {
    "airdock %s: %s (docker-ce %s, %s)",
    "    airdock build --baseline-from %s ...",
    "  %s %s",
    "  ",
}


def installer_tree() -> ast.Module:
    return ast.parse(INSTALLER.read_text(encoding="utf-8"))


def calls(tree: ast.Module, name: str) -> list[ast.Call]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if called == name:
            found.append(node)
    return found


def english_messages() -> list[str]:
    """Every English text the installer can show: T("...") literals, the count() nouns in
    both numbers, the vendor key names, the check names and statuses."""
    tree = installer_tree()
    found = []
    for call in calls(tree, "T"):
        first = call.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            found.append(first.value)
    for call in calls(tree, "count"):
        noun = call.args[1].value
        found += [f"%d {noun}", f"%d {noun}s"]
    found += list(ai.VENDOR_KEYS.values())
    found += [f"check:{name}" for name in ai.CHECK_NAMES]
    found += [f"check-status:{status}" for status in ("pass", "warn", "fail", "skip")]
    return found


def test_every_message_has_a_chinese_entry_with_the_same_placeholders():
    messages = english_messages()
    assert len(messages) > 250
    missing = sorted({m for m in messages if m not in ai.ZH})
    assert not missing, f"no Chinese for: {missing}"
    for english in set(messages):
        chinese = ai.ZH[english]
        assert PLACEHOLDER.findall(chinese) == PLACEHOLDER.findall(english), english
        # the same leading newline and indentation: the output keeps its shape (a single
        # space before a parenthesis goes: Chinese parentheses are full width)
        shape = re.compile(r"^\n*(?:  +)?")
        assert shape.match(chinese).group() == shape.match(english).group(), english
        translated = re.search(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]", chinese)
        assert translated or english.startswith("check:"), english
    unused = sorted(set(ai.ZH) - set(messages))
    assert not unused, f"ZH entries nothing uses: {unused}"


def text_of(node: ast.AST) -> str | None:
    """The literal text a message argument starts from ("..." or "..." % x), if any."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        return text_of(node.left)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def test_no_operator_message_bypasses_the_catalogue():
    tree = installer_tree()
    bare = []
    for name, positions in (("say", [0]), ("step", [0]), ("Failure", [0, 1]),
                            ("Check", [2, 3]), ("layout", [0])):  # fmt: skip
        for call in calls(tree, name):
            for index in positions:
                if index >= len(call.args):
                    continue
                text = text_of(call.args[index])
                if text is None or text in PLAIN_SAYS:
                    continue
                words = re.sub(r"[a-z]+\(|%[-0-9]*[sd]", "", text)
                if re.search(r"[A-Za-z]{2}", words):
                    bare.append((call.lineno, text))
    for keyword in ("fail", "fix"):
        for call in calls(tree, "run"):
            for kw in call.keywords:
                if kw.arg == keyword and text_of(kw.value) is not None:
                    bare.append((call.lineno, text_of(kw.value)))
    assert not bare, f"untranslated messages: {bare}"


@pytest.mark.parametrize(
    "environ, language",
    [
        ({}, "en"),
        ({"LANG": "zh_CN.UTF-8"}, "zh"),
        ({"LANG": "zh_TW.Big5"}, "zh"),
        ({"LANG": "en_US.UTF-8"}, "en"),
        ({"LANG": "zh_CN.UTF-8", "LC_ALL": "C"}, "en"),
        ({"LANG": "C", "LC_MESSAGES": "zh_CN.UTF-8"}, "zh"),
        ({"LANG": "zh_CN.UTF-8", "LC_MESSAGES": "en_US.UTF-8"}, "en"),
        ({"LC_ALL": "zh_CN.gb18030", "LC_MESSAGES": "C", "LANG": "C"}, "zh"),
        ({"LC_ALL": "", "LC_MESSAGES": "", "LANG": "zh_CN"}, "zh"),
    ],
)  # fmt: skip
def test_the_locale_as_gettext_orders_it(environ, language):
    assert ai.locale_language(environ) == language


def test_lang_wins_and_chinese_the_terminal_cannot_show_falls_back_to_english():
    assert ai.choose_language("en", {"LANG": "zh_CN.UTF-8"}, ["UTF-8"]) == ("en", None)
    assert ai.choose_language("zh", {"LANG": "C"}, ["UTF-8"]) == ("zh", None)
    assert ai.choose_language(None, {"LANG": "zh_CN.UTF-8"}, ["gb18030"]) == ("zh", None)
    language, note = ai.choose_language("zh", {}, ["ANSI_X3.4-1968"])
    assert language == "en" and "cannot show Chinese" in note and "LANG=zh_CN.UTF-8" in note


@pytest.mark.parametrize(
    "environ, python_found, encoding",
    [
        ({"LANG": "zh_CN.UTF-8"}, "ANSI_X3.4-1968", "UTF-8"),  # the locale is not installed
        ({"LANG": "zh_CN.gb18030"}, "ANSI_X3.4-1968", "gb18030"),
        ({"LC_ALL": "C", "LANG": "zh_CN.UTF-8"}, "ANSI_X3.4-1968", "ANSI_X3.4-1968"),
        ({"LC_CTYPE": "zh_CN.UTF-8", "LANG": "C"}, "ANSI_X3.4-1968", "UTF-8"),
        ({"LANG": "zh_CN"}, "gb2312", "gb2312"),  # glibc's zh_CN is GB2312
        ({"LANG": "C"}, "ANSI_X3.4-1968", "ANSI_X3.4-1968"),
        ({"LANG": "en_US.no-such-charset"}, "utf-8", "utf-8"),
    ],
)  # fmt: skip
def test_the_terminal_encoding(environ, python_found, encoding):
    class Stream:
        pass

    stream = Stream()
    stream.encoding = python_found
    assert ai.output_encoding(stream, environ) == encoding


def test_a_message_renders_in_either_language_and_nests():
    inner = ai.count(3, "package")
    message = ai.T("yum remove: %s", inner)
    assert ai.english(message) == "yum remove: 3 packages" == str(message)
    assert ai.render(message, "zh") == "yum remove：3 个软件包"
    assert ai.english(ai.count(1, "file")) == "1 file"
    failure = ai.Failure(ai.T("cannot read %s: %s", "/x", "gone"), ai.T("re-copy the bundle"))
    assert failure.message == "cannot read /x: gone" and failure.fix == "re-copy the bundle"
    assert ai.render(failure.text, "zh") == "无法读取 /x：gone"


# ------------------------------------------------------------------ end to end, no sandbox


def run_installer(python: str, lang: str, *args: str) -> subprocess.CompletedProcess:
    """The installer with LANG=lang (LC_ALL/LC_MESSAGES unset), raw bytes back."""
    env = {k: v for k, v in os.environ.items() if k not in ("LC_ALL", "LC_MESSAGES", "LANGUAGE")}
    env["LANG"] = lang
    env.pop("PYTHONIOENCODING", None)
    env.pop("LC_CTYPE", None)
    # Python 3.7+ would coerce LANG=C to C.UTF-8 (PEP 538, 540): CentOS 7's 2.7.5 and 3.6 do not,
    # and that ASCII console is the one to hold the installer to.
    env["PYTHONCOERCECLOCALE"] = "0"
    env["PYTHONUTF8"] = "0"  # nor switch to UTF-8 mode (PEP 540)
    return subprocess.run([python, str(INSTALLER), *args], capture_output=True, env=env,
                          timeout=120)  # fmt: skip


def clean_text(proc: subprocess.CompletedProcess) -> tuple[str, str]:
    """stdout and stderr as strict UTF-8 (mojibake or a stray byte fails), no traceback."""
    out, err = proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")
    for text in (out, err):
        assert "Traceback" not in text and "UnicodeEncodeError" not in text, text
        assert "UnicodeDecodeError" not in text and "internal error" not in text, text
    return out, err


@pytest.mark.parametrize("label", INSTALLER_PYTHONS)
def test_errors_in_chinese_and_english_on_every_python(label, tmp_path):
    python = installer_python(label)
    log = str(tmp_path / "log")
    missing = ("check", "--bundle", str(tmp_path), "--log", log)

    proc = run_installer(python, "zh_CN.UTF-8", *missing)
    out, err = clean_text(proc)
    assert proc.returncode == 1 and err.count("\n") == 1, err
    assert err.startswith("airdock：无法读取 ") and "manifest.json" in err
    assert "请在解压后的安装包目录中运行 install.sh" in err and "日志：" in err

    proc = run_installer(python, "C", *missing)
    out, err = clean_text(proc)
    assert proc.returncode == 1 and err.count("\n") == 1
    assert err.startswith("airdock: cannot read ") and "run install.sh from the unpacked" in err
    assert proc.stderr.isascii()

    # --lang zh on an ASCII console: English, and one line saying why, never a UnicodeError
    proc = run_installer(python, "C", *missing, "--lang", "zh")
    out, err = clean_text(proc)
    lines = err.splitlines()
    assert proc.returncode == 1 and len(lines) == 2 and proc.stderr.isascii()
    assert "cannot show Chinese" in lines[0] and lines[1].startswith("airdock: cannot read ")

    # --lang en under a Chinese locale
    proc = run_installer(python, "zh_CN.UTF-8", *missing, "--lang", "en")
    assert clean_text(proc)[1].startswith("airdock: cannot read ")

    # --json stays English under a Chinese locale, and still names every check (skipped)
    proc = run_installer(python, "zh_CN.UTF-8", *missing, "--json")
    out, err = clean_text(proc)
    result = json.loads(out)
    assert result["ok"] is False and result["error"].startswith("cannot read ")
    assert result["fix"].startswith("run install.sh from the unpacked bundle folder")
    assert [c["name"] for c in result["checks"]] == list(ai.CHECK_NAMES)
    assert {c["status"] for c in result["checks"]} == {"skipped"}
    assert all(c["message"].startswith("not run: cannot read ") for c in result["checks"])
    assert "无法读取" in err  # the operator's line on stderr is still theirs

    # usage errors (argparse's own words inside the operator's frame)
    proc = run_installer(python, "zh_CN.UTF-8", "frobnicate")
    out, err = clean_text(proc)
    assert proc.returncode == 2 and err.startswith("airdock：") and "（见 --help）" in err
    proc = run_installer(python, "C", "check", "--output", "x.json")
    out, err = clean_text(proc)
    assert proc.returncode == 2 and "--output only goes with inventory (see --help)" in err


@pytest.mark.parametrize("label", INSTALLER_PYTHONS)
def test_help_documents_bundle_version_lang_and_inventory(label):
    proc = run_installer(installer_python(label), "zh_CN.UTF-8", "--help")
    out, _ = clean_text(proc)
    assert proc.returncode == 0
    flat = " ".join(out.split())
    for words in ("--bundle DIR", "the unpacked bundle folder", "--version",
                  "print the installer's version", "--lang {en,zh}", "inventory",
                  "-o FILE, --output FILE", "no images are loaded",
                  "airdock build --baseline-"):  # fmt: skip
        assert words in flat, words
    version = run_installer(installer_python(label), "C", "--version")
    assert b"airdock installer" in version.stdout + version.stderr


def test_nothing_in_the_installer_says_1_parts_or_see_above():
    text = INSTALLER.read_text(encoding="utf-8")
    assert "see above" not in text
    code = text.split("# main and the commands", 1)[1]  # after the catalogue
    assert not re.search(r"%d (packages|files|checks|warnings|names|parts)\b", code)
    readme = (INSTALLER.parent / "README.txt").read_text(encoding="utf-8")
    assert "NAME.JOIN.txt" in readme and "JOIN.txt has" not in readme


# ------------------------------------------------------------------ on the sandbox host


def in_sandbox(sb, python: str, lang: str, bundle, *args: str, user: str | None = None):
    """The bundle's installer inside the sandbox with LANG=lang (enter.sh's LANG replaced)."""
    env = ["env", "-u", "LC_ALL", "-u", "LC_MESSAGES", "-u", "LC_CTYPE", "-u", "LANGUAGE",
           f"LANG={lang}", "PYTHONCOERCECLOCALE=0", "PYTHONUTF8=0"]  # fmt: skip
    proc = sb.run([*env, python, bundle / "airdock_install.py", *args], user=user)
    for text in (proc.stdout, proc.stderr):  # sb.run decoded them as strict UTF-8
        assert "Traceback" not in text and "UnicodeEncodeError" not in text, text
        assert "internal error" not in text, text
    if lang == "C":
        assert (proc.stdout + proc.stderr).isascii()
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("label", INSTALLER_PYTHONS)
def test_check_speaks_the_operators_language(label, sandbox, installer_bundles):
    sb = sandbox(root="old-docker")
    before = sb.snapshot()
    python = installer_python(label)
    bundle = installer_bundles["26.1.4"]

    zh = in_sandbox(sb, python, "zh_CN.UTF-8", bundle, "check")
    assert zh.returncode == 0 and zh.stderr == "", zh.stderr
    for words in (
        "  [通过] root 权限",
        "[通过] 内核         内核 3.10.0-1160.el7.x86_64",  # CJK is two columns wide
        "[通过] 操作系统     CentOS Linux 7 (Core)",
        "[警告] 冲突软件包   将在同一个事务中删除：",
        "解决办法：无需处理：它们与 docker-ce 冲突",
        "[通过] yum 测试事务 yum 测试事务通过",
        "16 项检查：0 项失败，1 项警告",
        "所有检查均已通过：运行 `sudo ./install.sh`",
    ):
        assert words in zh.stdout, words

    en = in_sandbox(sb, python, "C", bundle, "check")
    assert en.returncode == 0 and en.stderr == ""
    assert "  [pass] root         running as root" in en.stdout
    assert "16 checks: 0 failed, 1 warning\n" in en.stdout
    assert "All checks passed" in en.stdout

    forced = in_sandbox(sb, python, "C", bundle, "check", "--lang", "zh")
    assert forced.returncode == 0 and "All checks passed" in forced.stdout
    assert forced.stderr.count("\n") == 1 and "cannot show Chinese" in forced.stderr

    js = in_sandbox(sb, python, "zh_CN.UTF-8", bundle, "check", "--json")
    result = json.loads(js.stdout)
    assert result["ok"] is True and js.stdout.isascii()
    conflicts = next(c for c in result["checks"] if c["name"] == "conflicts")
    assert conflicts["status"] == "warn"
    assert conflicts["message"].startswith("removed in the same transaction: docker-")
    assert sb.snapshot() == before


@pytest.mark.slow
def test_a_missing_dependency_in_chinese_names_the_inventory_commands(sandbox, installer_bundles):
    sb = sandbox()
    sb.root.rpm("-e", "--nodeps", "iptables")
    proc = in_sandbox(sb, installer_python("2.7"), "zh_CN.UTF-8", installer_bundles["26.1.4"],
                      "check")  # fmt: skip
    lines = proc.stderr.strip("\n").splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    for words in (
        "airdock：预检失败：yum 测试事务：本机缺少安装包需要的依赖包：iptables（docker-ce-",
        "请在本机运行 `./install.sh inventory -o host.json`",
        "把 host.json 带回联网的机器",
        "`airdock build --baseline-from host.json`",
    ):
        assert words in lines[0], words
    assert "[失败] yum 测试事务 本机缺少安装包需要的依赖包" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("label", INSTALLER_PYTHONS)
def test_install_status_uninstall_in_chinese(label, sandbox, installer_bundles):
    """One real install per Python (--no-start: the yum transaction, not the daemons), its
    status and its uninstall in Chinese; the same install under LANG=C --lang zh as a dry
    run (English, nothing changed)."""
    sb = sandbox()
    python = installer_python(label)
    bundle = installer_bundles["26.1.4"]
    before = sb.snapshot()

    dry = in_sandbox(sb, python, "C", bundle, "install", "--dry-run", "--lang", "zh")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "would run: yum -y " in dry.stdout and "would run: rpm --import" in dry.stdout
    assert "Dry run: nothing was changed." in dry.stdout
    assert "cannot show Chinese" in dry.stderr
    assert sb.snapshot() == before

    install = in_sandbox(sb, python, "zh_CN.UTF-8", bundle, "install", "--yes", "--no-start")
    assert install.returncode == 0 and install.stderr == "", install.stdout + install.stderr
    for words in (
        "一次 yum 事务（禁用所有软件仓库，校验签名）：",
        "  安装     docker-ce-3:26.1.4",
        "==> 导入签名密钥 ",
        "==> yum 事务：安装 ",
        "服务已设为开机启动但未启动（--no-start）",
        "\n完成：docker-ce 26.1.4（来自 ",
        "  查看状态：sudo ./install.sh status",
    ):
        assert words in install.stdout, words
    assert json.loads(sb.receipt.read_text())["complete"] is True

    status = in_sandbox(sb, python, "zh_CN.UTF-8", bundle, "status")
    assert status.returncode == 0 and status.stderr == ""
    for words in (
        "软件包：",
        "= 安装包中的版本",
        "服务：",
        "镜像：（docker 无响应）",
        "安装记录：",
    ):
        assert words in status.stdout, words

    again = in_sandbox(sb, python, "zh_CN.UTF-8", bundle, "install", "--yes", "--dry-run")
    assert "==> 软件包：已安装，无需 yum 事务" in again.stdout
    assert "\n演练（--dry-run）：没有做任何改动。" in again.stdout

    gone = in_sandbox(sb, python, "zh_CN.UTF-8", bundle, "uninstall", "--yes")
    assert gone.returncode == 0 and gone.stderr == "", gone.stdout + gone.stderr
    for words in (
        "停止 docker 和 containerd，然后在一次 yum 事务中删除：",
        "==> yum remove：",
        "个软件包",
        "\n完成：已删除 ",
        "已保留 /var/lib/docker",
    ):
        assert words in gone.stdout, words
    assert not sb.receipt.exists()

    nothing = in_sandbox(sb, python, "C", bundle, "uninstall", "--yes")
    assert nothing.returncode == 0
    assert "Nothing to uninstall: no docker packages installed; `uninstall --purge`" in \
        nothing.stdout  # fmt: skip


# ------------------------------------------------------------------ the documents


def installer_options() -> set[str]:
    proc = run_installer(installer_python("current"), "C", "--help")
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", proc.stdout.decode())) - {"--help"}


def test_the_readmes_document_every_installer_option_in_both_languages():
    options = installer_options()
    assert {"--bundle", "--version", "--lang", "--output", "--no-start", "--json"} <= options
    readme_txt = (INSTALLER.parent / "README.txt").read_text(encoding="utf-8")
    english, chinese = readme_txt.split("\n中文说明：", 1)
    project = (INSTALLER.parents[1] / "README.md").read_text(encoding="utf-8")
    readme_zh = (INSTALLER.parents[1] / "README.zh-CN.md").read_text(encoding="utf-8")
    for option in options - {"--output"}:  # README.txt shows it as -o FILE
        for name, text in (("README.txt", english), ("README.txt (中文)", chinese),
                           ("README.md", project), ("README.zh-CN.md", readme_zh)):  # fmt: skip
            if option in ("--purge", "--trust-key", "--trust-fingerprint") and "README.txt" in name:
                continue  # README.txt names them where uninstall and trust are explained
            assert option in text, f"{option} not in {name}"
    for text in (english, chinese, readme_zh):
        assert "./install.sh inventory -o host.json" in text
        assert "airdock build --baseline-from host.json" in text
        assert "-o FILE" in text
    # the same two set-up commands, the CLI and the target steps as README.md
    for words in ("make bundle", "make test", "airdock build", "airdock versions",
                  "airdock mirrors", "airdock release", "airdock diff", "airdock verify",
                  "airdock split", "sudo ./install.sh check", "sudo ./install.sh status",
                  "sudo ./install.sh uninstall", "sha256sum -c", ".JOIN.txt"):  # fmt: skip
        assert words in project and words in readme_zh, words
    assert "README.zh-CN.md" in project and "(README.md)" in readme_zh
