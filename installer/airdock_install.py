#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""airdock installer: Docker CE from this bundle onto an air-gapped CentOS 7 host.

    sudo ./install.sh check              preflight only; changes nothing
    sudo ./install.sh [install]          check, one yum transaction, start docker, load images
    sudo ./install.sh status             packages, services, images, last receipt
    sudo ./install.sh uninstall [--purge]
    ./install.sh inventory [-o FILE]     this host's packages as JSON (for airdock build
                                         --baseline-from); changes nothing

One file, standard library only, for CentOS 7's /usr/bin/python (2.7.5) and Python 3.6+.
Everything specific to a bundle comes from manifest.json beside this file: the builder
copies this file unchanged.

The file reads top-down: main() and the four commands (each a short list of named steps,
the operator's checklist), then the steps, then the checks, then the plumbing (host facts,
rpm/yum output parsing, OpenPGP key ids, running commands, output).  Every failure is a
Failure with one line saying what went wrong and what to do; main() prints it, the log
(--log, default /var/log/airdock-install.log) gets the details, and nothing prints a
traceback.

The bundle is untrusted input to a root process: load_bundle validates manifest.json
(validate_manifest), check compares it with the RPM headers (check_headers) and limits what
it may remove (check_remove_policy), and install and uninstall run under the installer lock
(InstallerLock, /var/lib/airdock/lock).
"""
from __future__ import print_function

import sys

if sys.version_info < (2, 7) or (3, 0) <= sys.version_info[:2] < (3, 6):
    sys.stderr.write(
        "airdock: this installer needs Python 2.7 or 3.6+ (found %s); the bundle is for "
        "CentOS 7, whose /usr/bin/python is 2.7.5\n" % sys.version.split()[0]
    )
    sys.exit(1)

import argparse  # noqa: E402
import base64  # noqa: E402
import binascii  # noqa: E402
import errno  # noqa: E402
import fcntl  # noqa: E402
import functools  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

try:
    from shlex import quote as shell_quote  # novermin (Python 2 falls back to pipes)
except ImportError:  # Python 2
    from pipes import quote as shell_quote

try:
    ask = raw_input  # noqa: F821 (Python 2)
except NameError:
    ask = input

try:  # what json.loads gives for strings and integers
    TEXT_TYPES = (str, unicode)  # noqa: F821 (Python 2)
    INT_TYPES = (int, long)  # noqa: F821 (Python 2)
except NameError:
    TEXT_TYPES = (str,)
    INT_TYPES = (int,)

VERSION = "0.1.0"  # stamped by the builder from pyproject.toml (the one version source)
BUNDLE_FORMAT = "airdock-bundle"
KNOWN_FORMAT_VERSIONS = (1,)
RECEIPT_FORMAT_VERSION = 1
INVENTORY_FORMAT = "airdock-inventory/1"  # install.sh inventory; airdock build --baseline-from

DEFAULT_LOG = "/var/log/airdock-install.log"
STATE_DIR = "/var/lib/airdock"
RECEIPT = STATE_DIR + "/receipt.json"
# Publisher keys this host trusts (apt's model): provisioned by kickstart or `--trust-key`.
TRUST_DIR = "/etc/airdock/trusted-keys"
SIGNATURE_FILE = "SHA256SUMS.asc"  # the publisher's detached signature over SHA256SUMS
LOCK_FILE = STATE_DIR + "/lock"
MANIFEST_MAX_BYTES = 16 * 1024 * 1024  # a real manifest is tens of KiB
OS_RELEASE = "/etc/os-release"
OS_RELEASE_FALLBACKS = ("/etc/centos-release", "/etc/redhat-release", "/etc/system-release")
KERNEL_RELEASE = "/proc/sys/kernel/osrelease"  # what uname -r says; a file, so it can be read
DOCKER_DATA = "/var/lib/docker"
DATA_DIRS = ("/var/lib/docker", "/var/lib/containerd", "/etc/docker")
DOCKER_SOCKET = "/var/run/docker.sock"
SERVICES = ("containerd", "docker")
STOP_UNITS = ("docker.socket", "docker", "containerd")

# CentOS's own docker and friends: removed in the same transaction (Docker's install docs).
OLD_DOCKER_PACKAGES = (
    "docker", "docker-client", "docker-client-latest", "docker-common", "docker-latest",
    "docker-latest-logrotate", "docker-logrotate", "docker-engine",
)
# What docker-ce's el7 specs name in Conflicts/Obsoletes (the bundle's RPMs are asked too).
KNOWN_CONFLICTS = (
    "docker-io", "docker-engine-cs", "docker-ee", "docker-ee-cli", "docker-ce-selinux",
    "docker-engine-selinux",
)
# What "docker" means when there is no receipt (Docker's uninstall docs).
DOCKER_PACKAGES = (
    "docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin",
    "docker-compose-plugin", "docker-ce-rootless-extras",
)
# Pinned vendor signing keys (docs/el7-facts.md); any other key in keys/ needs a bundle signed by a
# publisher this host trusts (the publisher vouches for the --gpg-key it built with).
VENDOR_KEYS = {
    "060A61C51B558A7F742B77AAC52FEB6B621E9F35": "Docker's RPM signing key",
    "6341AB2753D78A78A7C27BB124C6A8A7F4A80EB5": "CentOS 7 signing key",
    "EF8F3CA66EFDF32B36CDADF76C7CB6EF305D49D6": "CentOS 7 aarch64 signing key",
}
RHEL_COMPATIBLE = ("rhel", "ol", "scientific", "redhat")
KNOWN_ARCHES = ("x86_64", "aarch64")  # a bundle's target.arch; its packages: that or noarch
HELLO_MESSAGE = "Hello from Docker!"
DOCKER_START_TIMEOUT = 90
GIB = 1024 ** 3
MIB = 1024 ** 2


# =====================================================================================
# the operator's words: Simplified Chinese for every English message (T("...") below)
# =====================================================================================
# Keyed by the English text with its %-placeholders, which the Chinese keeps in the same
# order.  Shown when the locale is zh_* (LC_ALL, LC_MESSAGES, LANG) or with --lang zh, and the
# terminal can show it (choose_language); the log and --json stay English.  Words as Chinese
# operators write them (镜像, 软件包, 内核, 卸载, 依赖包, yum 事务).  "check:NAME" and
# "check-status:STATUS" label the preflight lines; tests/test_installer_i18n.py holds every
# T("...") of this file to an entry here with the same placeholders.
ZH = {
    # ---- the preflight lines
    "check-status:pass": "通过",
    "check-status:warn": "警告",
    "check-status:fail": "失败",
    "check-status:skip": "跳过",
    "check:root": "root 权限",
    "check:os": "操作系统",
    "check:kernel": "内核",
    "check:arch": "CPU 架构",
    "check:tools": "yum/rpm",
    "check:space": "磁盘空间",
    "check:filesystem": "文件系统",
    "check:selinux": "SELinux",
    "check:checksums": "校验和",
    "check:trust": "发布者签名",
    "check:signatures": "软件包签名",
    "check:headers": "RPM 头信息",
    "check:remove-list": "卸载清单",
    "check:conflicts": "冲突软件包",
    "check:docker-ce": "docker-ce",
    "check:transaction": "yum 测试事务",
    "fix: %s": "解决办法：%s",
    # ---- counted nouns (count())
    "%d RPM header": "%d 个 RPM 头",
    "%d RPM headers": "%d 个 RPM 头",
    "%d answer": "%d 条结果",
    "%d answers": "%d 条结果",
    "%d check": "%d 项检查",
    "%d checks": "%d 项检查",
    "%d file": "%d 个文件",
    "%d files": "%d 个文件",
    "%d name": "%d 个名称",
    "%d names": "%d 个名称",
    "%d package": "%d 个软件包",
    "%d packages": "%d 个软件包",
    "%d warning": "%d 项警告",
    "%d warnings": "%d 项警告",
    # ---- main, usage and the commands
    "airdock: %s (see --help)": "airdock：%s（见 --help）",
    "airdock: %s; %s (log: %s)": "airdock：%s；%s（日志：%s）",
    "airdock: %s (log: %s)": "airdock：%s（日志：%s）",
    "airdock: %s; %s (no log: %s)": "airdock：%s；%s（没有日志：%s）",
    "airdock: %s (no log: %s)": "airdock：%s（没有日志：%s）",
    "not written": "未写入",
    "cannot write %s: %s": "无法写入 %s：%s",
    "interrupted": "已中断",
    "run the same command again: the yum transaction either completed or changed nothing":
        "请重新运行同一命令：yum 事务要么已完成，要么没有做任何改动",
    "internal error (%s: %s)": "内部错误（%s：%s）",
    "please report it with the log": "请附上日志报告此问题",
    "\nAll checks passed: `sudo ./install.sh` installs this bundle.":
        "\n所有检查均已通过：运行 `sudo ./install.sh` 即可安装此安装包。",
    "Services enabled but not started (--no-start): images were not loaded.":
        "服务已设为开机启动但未启动（--no-start）：未导入镜像。",
    "Nothing to uninstall: no docker packages installed.":
        "无需卸载：没有安装 docker 软件包。",
    "Nothing to uninstall: no docker packages installed; `uninstall --purge` deletes %s.":
        "无需卸载：没有安装 docker 软件包；`uninstall --purge` 会删除 %s。",
    # ---- inventory
    "rpm not found: this is not an rpm host": "找不到 rpm：这不是使用 rpm 的主机",
    "run the inventory on the CentOS 7 host the bundle is for":
        "请在要安装的 CentOS 7 主机上运行 inventory",
    "`rpm -qa` failed or printed something unexpected (exit %d): %s":
        "`rpm -qa` 失败或输出了无法识别的内容（退出码 %d）：%s",
    "no message": "没有输出",
    "check that `rpm -qa` works on this host (rpm --rebuilddb repairs a damaged database), "
    "then run the inventory again":
        "请确认本机 `rpm -qa` 能正常运行（rpm --rebuilddb 可修复损坏的数据库），然后重新运行 "
        "inventory",
    "give -o a file in a writable folder": "请给 -o 指定一个可写目录中的文件",
    "Wrote %s: %s installed on %s.": "已写入 %s：已安装 %s（主机 %s）。",
    "Carry it to the connected machine and build for this host:":
        "把它带到联网的机器上，为这台主机构建安装包：",
    # ---- preflight and the plan
    "\n%s: %d failed, %s": "\n%s：%d 项失败，%s",
    "preflight failed: %s: %s": "预检失败：%s：%s",
    "preflight failed: %s: %s (+%d more: %s)": "预检失败：%s：%s（另有 %d 项：%s）",
    "fix it and run `./install.sh check` again": "修复后重新运行 `./install.sh check`",
    "  install  %s": "  安装     %s",
    "  upgrade  %s (from %s)": "  升级     %s（原为 %s）",
    "  remove   %s": "  删除     %s",
    "  remove   %s (needs a package being removed)": "  删除     %s（它依赖被删除的软件包）",
    "Packages: nothing to change (already installed); services and images are checked.":
        "软件包：无需改动（已安装）；将检查服务和镜像。",
    "One yum transaction (every repo disabled, signatures checked):":
        "一次 yum 事务（禁用所有软件仓库，校验签名）：",
    "Proceed? [y/N] ": "是否继续？[y/N] ",
    "not confirmed: stdin is not a terminal": "未确认：标准输入不是终端",
    "add --yes to proceed without a prompt": "加上 --yes 可不经询问直接执行",
    "cancelled at the prompt; nothing was changed": "已在确认时取消；没有做任何改动",
    "run it again and answer y, or add --yes": "重新运行并回答 y，或加上 --yes",
    # ---- install steps
    "trusting publisher key %s from now on (%s)": "从现在起信任发布者密钥 %s（%s）",
    "cannot store the trusted key in %s: %s": "无法把受信任的密钥保存到 %s：%s",
    "check that /etc is writable, or put the key there by hand":
        "请确认 /etc 可写，或手动把密钥放到那里",
    "importing signing key %s (%s)": "导入签名密钥 %s（%s）",
    "rpm --import %s failed": "rpm --import %s 失败",
    "check that the bundle is complete (sha256sum -c SHA256SUMS)":
        "请确认安装包完整（sha256sum -c SHA256SUMS）",
    "packages: already installed, no transaction": "软件包：已安装，无需 yum 事务",
    "yum transaction: %d to install, %d to upgrade, %d to remove":
        "yum 事务：安装 %d 个，升级 %d 个，删除 %d 个",
    "the yum transaction failed and changed nothing: %s": "yum 事务失败，没有做任何改动：%s",
    "the bundle's signatures did not verify: rebuild or re-copy the bundle":
        "安装包的签名校验未通过：请重新构建或重新拷贝安装包",
    "see the log for yum's output, fix it and run install again":
        "请查看日志中 yum 的输出，修复后重新运行 install",
    "the yum transaction did not complete: %s": "yum 事务没有完成：%s",
    "see `yum history` and the log; run install again":
        "请查看 `yum history` 和日志；然后重新运行 install",
    "systemctl enable %s failed": "systemctl enable %s 失败",
    "see the log": "请查看日志",
    "starting containerd and docker (systemctl enable --now)":
        "启动 containerd 和 docker（systemctl enable --now）",
    "systemctl enable --now containerd docker failed":
        "systemctl enable --now containerd docker 失败",
    "  (would wait for %s)": "  （将等待 %s）",
    "docker is up (engine %s)": "docker 已启动（引擎版本 %s）",
    "docker did not come up (%s) within %ds": "docker 未能启动（%s），已等待 %d 秒",
    "no answer": "无响应",
    "\nlast lines of the docker service log:": "\ndocker 服务日志的最后几行：",
    "read `journalctl -u docker -n 50` (often /etc/docker/daemon.json or the storage driver), "
    "fix it and run install again; packages stay installed":
        "请查看 `journalctl -u docker -n 50`（常见原因是 /etc/docker/daemon.json 或存储驱动），"
        "修复后重新运行 install；软件包保持已安装",
    "images: skipped (--skip-images)": "镜像：已跳过（--skip-images）",
    "image %s: already loaded (%s)": "镜像 %s：已导入（%s）",
    "loading image %s (%s)": "导入镜像 %s（%s）",
    "docker load of %s failed": "docker load %s 失败",
    "check the bundle (sha256sum -c SHA256SUMS) and docker's log":
        "请检查安装包（sha256sum -c SHA256SUMS）和 docker 的日志",
    "image %s loaded as %s, the manifest says %s":
        "镜像 %s 导入后为 %s，而清单（manifest）写的是 %s",
    "re-copy the bundle and run install again": "请重新拷贝安装包后再运行 install",
    "smoke test: docker run --rm %s": "测试运行容器：docker run --rm %s",
    "the smoke test `docker run --rm %s` failed: %s": "测试运行 `docker run --rm %s` 失败：%s",
    "it printed nothing": "没有任何输出",
    "docker is installed and running; see the log and `journalctl -u docker`":
        "docker 已安装并在运行；请查看日志和 `journalctl -u docker`",
    "smoke test: docker info (no hello-world image loaded)":
        "测试：docker info（没有导入 hello-world 镜像）",
    "`docker info` failed": "`docker info` 失败",
    "see `journalctl -u docker`": "请查看 `journalctl -u docker`",
    "  (would write %s)": "  （将写入 %s）",
    "\nDry run: nothing was changed.": "\n演练（--dry-run）：没有做任何改动。",
    "\nDone: docker-ce %s from %s.": "\n完成：docker-ce %s（来自 %s）。",
    "  yum transaction %s (`yum history info %s`; receipt %s)":
        "  yum 事务 %s（`yum history info %s`；安装记录 %s）",
    "  one yum transaction; its ID is unknown: %s (receipt %s)":
        "  一次 yum 事务，ID 未知：%s（安装记录 %s）",
    "  packages were already installed (receipt %s)": "  软件包此前已安装（安装记录 %s）",
    "  status:    sudo ./install.sh status": "  查看状态：sudo ./install.sh status",
    "  uninstall: sudo python %s/airdock_install.py uninstall   (keeps %s)":
        "  卸载：    sudo python %s/airdock_install.py uninstall   （保留 %s）",
    # ---- status
    "Packages:": "软件包：",
    "= bundle": "= 安装包中的版本",
    "bundle has %s": "安装包中为 %s",
    "not installed": "未安装",
    "Services:": "服务：",
    "unknown": "未知",
    "no unit file": "无 unit 文件",
    "Images:": "镜像：",
    "Images: (docker is not answering)": "镜像：（docker 无响应）",
    "  %s (in the bundle, not loaded)": "  %s（在安装包中，未导入）",
    "Receipt: none (%s)": "安装记录：无（%s）",
    "Receipt: %s (last run %s); packages from yum transaction %s at %s":
        "安装记录：%s（最近一次运行 %s）；软件包来自 yum 事务 %s，时间 %s",
    "Receipt: %s (last run %s); packages from yum transaction %s at %s; that install stopped "
    "after its transaction: run install again":
        "安装记录：%s（最近一次运行 %s）；软件包来自 yum 事务 %s，时间 %s；那次安装在事务之后"
        "中断了：请重新运行 install",
    # ---- uninstall
    "No airdock receipt: removing the docker packages Docker's docs name.":
        "没有 airdock 安装记录：按 Docker 官方文档列出的 docker 软件包卸载。",
    "  keeping %s (%s)": "  保留 %s（%s）",
    "needed by %s": "%s 依赖它",
    "Stop docker and containerd, then remove in one yum transaction:":
        "停止 docker 和 containerd，然后在一次 yum 事务中删除：",
    "No docker packages to remove.": "没有需要删除的 docker 软件包。",
    "Then DELETE (--purge):": "然后删除（--purge）：",
    "Kept: %s (uninstall --purge deletes them).": "保留：%s（uninstall --purge 会删除它们）。",
    "stopping docker and containerd": "停止 docker 和 containerd",
    "%s is still running after `systemctl stop %s`": "%s 在执行 `systemctl stop %s` 后仍在运行",
    "stop it by hand (systemctl stop %s) and run uninstall again":
        "请手动停止（systemctl stop %s）后重新运行 uninstall",
    "yum remove: %s": "yum remove：%s",
    "yum remove did not remove %s: %s": "yum remove 没有删除 %s：%s",
    "see the log; remove them with `yum remove` and run uninstall again":
        "请查看日志；用 `yum remove` 删除它们后重新运行 uninstall",
    "  keeping key %s (installed packages are signed by it)":
        "  保留密钥 %s（已安装的软件包由它签名）",
    "removing key %s (airdock imported it; nothing installed needs it)":
        "删除密钥 %s（由 airdock 导入；已安装的软件包都不需要它）",
    "  (would delete %s)": "  （将删除 %s）",
    "%s still has a filesystem mounted inside (%s): nothing deleted":
        "%s 内仍挂载着文件系统（%s）：没有删除任何内容",
    "unmount it (or reboot) and run uninstall --purge again":
        "请卸载该挂载点（或重启）后重新运行 uninstall --purge",
    "deleting %s (%s)": "删除 %s（%s）",
    "could not delete %s: %s": "无法删除 %s：%s",
    "stop whatever still uses it (containers, mounts) and delete it by hand":
        "请停止仍在使用它的容器或挂载，然后手动删除",
    "\nDone: %s removed (yum transaction %s), data deleted.":
        "\n完成：已删除 %s（yum 事务 %s），数据已删除。",
    "\nDone: %s removed (yum transaction %s).": "\n完成：已删除 %s（yum 事务 %s）。",
    "\nDone: %s removed, data deleted.": "\n完成：已删除 %s，数据已删除。",
    "\nDone: %s removed.": "\n完成：已删除 %s。",
    "  kept %s; `uninstall --purge` deletes them": "  已保留 %s；`uninstall --purge` 会删除它们",
    "cannot uninstall: %s needs %s, and airdock did not install it":
        "无法卸载：%s 依赖 %s，而它不是 airdock 安装的",
    "remove %s first (yum remove), then run uninstall again":
        "请先删除 %s（yum remove），然后重新运行 uninstall",
    "rpm refuses to remove the docker packages: %s": "rpm 拒绝删除 docker 软件包：%s",
    "see the log; nothing was removed": "请查看日志；没有删除任何软件包",
    # ---- the checks
    "needs yum and rpm": "需要 yum 和 rpm",
    "the bundle failed its checksums": "安装包未通过校验和检查",
    "the manifest does not describe the bundle's RPMs": "清单（manifest）与安装包中的 RPM 不符",
    "the yum test transaction needs root": "yum 测试事务需要 root 权限",
    "running as root": "以 root 身份运行",
    "running as uid %d, not root": "当前以 uid %d 运行，不是 root",
    "run it as root: sudo ./install.sh %s": "请以 root 身份运行：sudo ./install.sh %s",
    "unknown OS": "未知操作系统",
    "%s is RHEL-compatible, not CentOS: the bundle was built for %s":
        "%s 与 RHEL 兼容，但不是 CentOS：安装包是为 %s 构建的",
    "the test transaction below tells whether this host lacks anything":
        "下面的 yum 测试事务会指出本机是否缺少依赖包",
    "%s is not supported: this bundle holds CentOS 7 (el7) packages":
        "不支持 %s：此安装包中是 CentOS 7（el7）的软件包",
    "install on a CentOS 7 host (RHEL 7 works with a warning)":
        "请在 CentOS 7 主机上安装（RHEL 7 也可以，但会有警告）",
    "cannot read the kernel release from %s": "无法从 %s 读取内核版本",
    "check `uname -r` is 3.10 or newer": "请确认 `uname -r` 为 3.10 或更高",
    "kernel %s is older than 3.10, which Docker needs": "内核 %s 低于 Docker 所需的 3.10",
    "boot a CentOS 7 kernel (3.10.0-*.el7)": "请启动 CentOS 7 的内核（3.10.0-*.el7）",
    "kernel %s predates 3.10.0-514 (CentOS 7.3): no overlay2, docker falls back to "
    "devicemapper":
        "内核 %s 早于 3.10.0-514（CentOS 7.3）：不支持 overlay2，docker 将退回使用 devicemapper",
    "update the kernel to 3.10.0-514 or later and reboot": "请把内核升级到 3.10.0-514 或更高并重启",
    "kernel %s": "内核 %s",
    "%s, as the bundle": "%s，与安装包一致",
    "this host is %s, the bundle is for %s": "本机是 %s，安装包是为 %s 构建的",
    "build a bundle with `airdock build --arch %s`": "请用 `airdock build --arch %s` 构建安装包",
    "%s not found: this is not a yum/rpm host": "找不到 %s：这不是使用 yum/rpm 的主机",
    "run it on CentOS 7": "请在 CentOS 7 上运行",
    "yum and rpm found, systemctl not found": "找到 yum 和 rpm，但找不到 systemctl",
    "the service cannot be started; use --no-start": "无法启动服务；请使用 --no-start",
    "yum, rpm and systemctl found": "已找到 yum、rpm 和 systemctl",
    "%s free for %s, %s for packages in /usr, %s in %s":
        "%s 可用于 %s，/usr 中 %s 可用于软件包，%s 可用于 %s",
    "only %s free for %s, the images need about %s": "只有 %s 可用于 %s，镜像大约需要 %s",
    "free space under %s (or mount a bigger disk there)":
        "请清理 %s 下的空间（或在那里挂载更大的磁盘）",
    "not enough space: %s": "空间不足：%s",
    "free space in /usr (about %s needed) and %s": "请清理 /usr（大约需要 %s）和 %s 的空间",
    "%s: little room for images you add later": "%s：以后添加镜像的空间不多",
    "consider a bigger disk for %s": "建议为 %s 使用更大的磁盘",
    "cannot tell the filesystem of %s": "无法判断 %s 所在的文件系统",
    "%s is on %s (%s)": "%s 位于 %s（%s）",
    "%s; xfs_info not found, ftype unknown": "%s；找不到 xfs_info，ftype 未知",
    "check `xfs_info %s` shows ftype=1 (overlay2 needs it)":
        "请确认 `xfs_info %s` 显示 ftype=1（overlay2 需要）",
    "%s with ftype=1: overlay2 works": "%s，ftype=1：可以使用 overlay2",
    "%s with ftype=0: overlay2 cannot work (dockerd 26 refuses it)":
        "%s，ftype=0：无法使用 overlay2（dockerd 26 会拒绝）",
    "put %s on ext4 or on xfs made with `mkfs.xfs -n ftype=1`":
        "请把 %s 放在 ext4 上，或放在用 `mkfs.xfs -n ftype=1` 创建的 xfs 上",
    "%s; xfs_info did not report ftype": "%s；xfs_info 没有报告 ftype",
    "check `xfs_info %s`": "请检查 `xfs_info %s`",
    "%s: overlay2 works": "%s：可以使用 overlay2",
    "%s: overlay2 may not work on it": "%s：overlay2 可能无法在上面工作",
    "put %s on ext4 or xfs (ftype=1)": "请把 %s 放在 ext4 或 xfs（ftype=1）上",
    "SELinux enforcing (container-selinux comes with the bundle)":
        "SELinux 为 enforcing（安装包中带有 container-selinux）",
    "SELinux %s": "SELinux 为 %s",
    "%s in /etc/selinux/config, not active now": "/etc/selinux/config 中为 %s，当前未生效",
    " (+%d more)": "（另有 %d 项）",
    "the bundle is damaged or was altered: copy it again and run `sha256sum -c SHA256SUMS` in "
    "its folder":
        "安装包已损坏或被改动：请重新拷贝，并在其目录中运行 `sha256sum -c SHA256SUMS`",
    "%s verified; not in SHA256SUMS (ignored): %s": "已校验 %s；不在 SHA256SUMS 中（已忽略）：%s",
    "SHA256SUMS: %s verified": "SHA256SUMS：已校验 %s",
    "SHA256SUMS line %d is malformed": "SHA256SUMS 第 %d 行格式错误",
    "%s is missing": "缺少 %s",
    "%s: sha256 %s, SHA256SUMS says %s": "%s：sha256 为 %s，SHA256SUMS 中为 %s",
    "%s is not listed in SHA256SUMS": "%s 不在 SHA256SUMS 中",
    "%s: manifest.json and SHA256SUMS disagree": "%s：manifest.json 与 SHA256SUMS 不一致",
    "%s is not an OpenPGP public key": "%s 不是 OpenPGP 公钥",
    "re-copy the bundle": "请重新拷贝安装包",
    "%s has fingerprint %s, the manifest says %s": "%s 的指纹是 %s，清单（manifest）中为 %s",
    "Docker's RPM signing key": "Docker 的 RPM 签名密钥",
    "CentOS 7 signing key": "CentOS 7 签名密钥",
    "CentOS 7 aarch64 signing key": "CentOS 7 aarch64 签名密钥",
    "%s, vouched for by publisher %s": "%s，由发布者 %s 担保",
    "%s (%s) is not a vendor key, and no publisher this host trusts signed the bundle":
        "%s（%s）不是厂商密钥，并且本机信任的发布者都没有为此安装包签名",
    "use a bundle of vendor-signed packages, or trust its publisher: --trust-key PUBLISHER.asc "
    "(kept in %s)":
        "请使用由厂商签名的软件包构建的安装包，或信任其发布者：--trust-key PUBLISHER.asc"
        "（保存在 %s）",
    "%s is not signed by a key in the bundle": "%s 没有用安装包中的密钥签名",
    "rebuild the bundle; the installer refuses unsigned packages":
        "请重新构建安装包；安装程序拒绝未签名的软件包",
    "signature check failed: %s": "签名校验失败：%s",
    "the bundle was altered or is damaged: copy it again from the source":
        "安装包被改动或已损坏：请从源头重新拷贝",
    "%s signed by the bundle's keys: %s": "%s由安装包中的密钥签名：%s",
    "no answer from rpm -K": "rpm -K 没有结果",
    "rpm -K failed: %s": "rpm -K 失败：%s",
    "cannot read the key %s": "无法读取密钥 %s",
    "no SHA256SUMS to check a signature over": "没有 SHA256SUMS，无法校验签名",
    "compare the sha256 of SHA256SUMS, %s, with the one the publisher published":
        "请把 SHA256SUMS 的 sha256（%s）与发布者公布的值进行比对",
    "the bundle is not signed (no %s), and this host installs only bundles signed by a "
    "publisher it trusts (%s)":
        "安装包没有签名（没有 %s），而本机只安装由其信任的发布者签名的安装包（%s）",
    "get the signed bundle from its publisher (`airdock build --sign-key`)":
        "请向发布者获取已签名的安装包（`airdock build --sign-key`）",
    "the bundle is not signed: %s": "安装包没有签名：%s",
    "signed by %s, but this host trusts no publisher yet: compare that fingerprint with the "
    "publisher's":
        "由 %s 签名，但本机尚未信任任何发布者：请把该指纹与发布者提供的指纹进行比对",
    "then run with --trust-fingerprint %s (or --trust-key FILE)":
        "然后加上 --trust-fingerprint %s（或 --trust-key FILE）运行",
    "%s does not verify: %s": "%s 校验未通过：%s",
    "the bundle was altered or comes from another publisher: get it again from yours and check "
    "it with `airdock verify` or `gpg --verify`":
        "安装包被改动或来自其他发布者：请从你的发布者重新获取，并用 `airdock verify` 或 "
        "`gpg --verify` 校验",
    "signed by %s (%s)": "由 %s 签名（%s）",
    "trusted: %s": "受信任：%s",
    "\nThe bundle is signed by an untrusted key: SHA256SUMS sha256 %s; compare it with the "
    "publisher's.":
        "\n安装包由未受信任的密钥签名：SHA256SUMS 的 sha256 为 %s；请与发布者公布的值比对。",
    "\nThe bundle is not signed: SHA256SUMS sha256 %s; compare it with the publisher's.":
        "\n安装包没有签名：SHA256SUMS 的 sha256 为 %s；请与发布者公布的值比对。",
    "rpm -qp could not read every RPM header of the bundle (exit %d, %s for %s; rpm's words are "
    "in the log)":
        "rpm -qp 无法读取安装包中所有 RPM 的头信息（退出码 %d，%s 对应 %s；rpm 的输出见日志）",
    "the bundle is damaged or was altered: copy the bundle again from the source":
        "安装包已损坏或被改动：请从源头重新拷贝安装包",
    "%s holds %s (its RPM header), the manifest says %s":
        "%s 实际是 %s（RPM 头信息），而清单（manifest）写的是 %s",
    "the manifest does not describe the bundle's RPMs (altered or damaged): copy the bundle "
    "again from the source, or rebuild it":
        "清单（manifest）与安装包中的 RPM 不符（被改动或已损坏）：请从源头重新拷贝或重新构建安装包",
    "%s match the manifest (name, epoch, version, release, arch)":
        "%s与清单一致（name、epoch、version、release、arch）",
    "the manifest asks to remove %s: %s": "清单（manifest）要求删除 %s：%s",
    "not an old docker package, and no RPM of the bundle conflicts with or obsoletes it":
        "它不是旧版 docker 软件包，安装包中也没有 RPM 与它冲突或取代它",
    "not old docker packages, and no RPM of the bundle conflicts with or obsoletes them":
        "它们不是旧版 docker 软件包，安装包中也没有 RPM 与它们冲突或取代它们",
    "the manifest was altered: copy the bundle again from the source, or rebuild it (airdock "
    "removes only the old docker packages and what docker-ce conflicts with)":
        "清单（manifest）被改动：请从源头重新拷贝或重新构建安装包（airdock 只删除旧版 docker "
        "软件包和与 docker-ce 冲突的软件包）",
    "the manifest removes only old docker packages and what the bundle's RPMs conflict with (%s)":
        "清单只删除旧版 docker 软件包和与安装包中 RPM 冲突的软件包（%s）",
    "no conflicting packages installed": "没有安装冲突的软件包",
    "removed in the same transaction: %s": "将在同一个事务中删除：%s",
    "nothing to do: they conflict with docker-ce (/usr/bin/docker and more)":
        "无需处理：它们与 docker-ce 冲突（/usr/bin/docker 等）",
    "%s %s is installed, newer than the bundle's %s": "已安装 %s %s，比安装包中的 %s 新",
    "uninstall first (`./install.sh uninstall` keeps your data) or use a newer bundle":
        "请先卸载（`./install.sh uninstall` 会保留你的数据），或使用更新的安装包",
    "not installed: will install %s": "未安装：将安装 %s",
    "%s already installed: re-running ensures the service and images":
        "%s 已安装：重新运行会确保服务和镜像就绪",
    "upgrade %s -> %s (images and containers are kept)": "升级 %s -> %s（保留镜像和容器）",
    "nothing to change: all packages already installed": "无需改动：所有软件包均已安装",
    "%s (needed by %s)": "%s（%s 需要）",
    "this host lacks what the bundle needs: %s": "本机缺少安装包需要的依赖包：%s",
    "the bundle was built for %s (closure %s): on this host run `./install.sh inventory -o "
    "host.json`, carry host.json back to the connected machine and rebuild with `airdock build "
    "--baseline-from host.json` (same options), or install those packages from this host's own "
    "media":
        "安装包是为 %s（closure %s）构建的：请在本机运行 `./install.sh inventory -o host.json`，"
        "把 host.json 带回联网的机器，用 `airdock build --baseline-from host.json`（其他选项不变）"
        "重新构建；或者从本机自己的安装介质安装这些软件包",
    "yum reports a conflict: %s": "yum 报告冲突：%s",
    "remove the conflicting package first (yum remove ...) and run check again":
        "请先删除冲突的软件包（yum remove ...），然后重新运行 check",
    "the yum test transaction failed: %s": "yum 测试事务失败：%s",
    "read the log, fix it and run check again": "请查看日志，修复后重新运行 check",
    "%d to install, %d to upgrade, %d to remove": "安装 %d 个，升级 %d 个，删除 %d 个",
    "yum test transaction OK (%s); it also removes %s, which need the removed packages":
        "yum 测试事务通过（%s）；它还会删除依赖被删软件包的 %s",
    "if you still need them, do not install this bundle": "如果你还需要它们，请不要安装此安装包",
    "yum test transaction OK, every repo disabled (%s)":
        "yum 测试事务通过，已禁用所有软件仓库（%s）",
    # ---- the bundle and the trust root
    "%s is not a readable OpenPGP RSA public key": "%s 不是可读取的 OpenPGP RSA 公钥",
    "give the publisher's ASCII-armoured public key (gpg --armor --export)":
        "请提供发布者的 ASCII 格式公钥（gpg --armor --export）",
    "--trust-fingerprint %s is not a 40-hex fingerprint":
        "--trust-fingerprint %s 不是 40 位十六进制指纹",
    "copy the full fingerprint the publisher gave (gpg --fingerprint)":
        "请完整复制发布者提供的指纹（gpg --fingerprint）",
    "cannot read %s: %s": "无法读取 %s：%s",
    "run install.sh from the unpacked bundle folder (or pass --bundle DIR)":
        "请在解压后的安装包目录中运行 install.sh（或指定 --bundle DIR）",
    "the bundle is damaged or was altered: copy it again from the source, or rebuild it":
        "安装包已损坏或被改动：请从源头重新拷贝，或重新构建",
    "%s is larger than %s, which no airdock bundle's manifest is":
        "%s 大于 %s，airdock 安装包的清单不会这么大",
    "%s is not valid JSON (%s)": "%s 不是有效的 JSON（%s）",
    "%s is not an airdock bundle manifest": "%s 不是 airdock 安装包的清单",
    "%s is malformed: %s": "%s 格式错误：%s",
    "this bundle was made by a newer airdock (manifest format_version %d; this installer knows "
    "%s)":
        "此安装包由更新版本的 airdock 生成（清单 format_version 为 %d；本安装程序支持 %s）",
    "run the install.sh inside that bundle: each bundle carries its own installer":
        "请运行该安装包中自带的 install.sh：每个安装包都带有自己的安装程序",
    "the bundle's manifest has format_version %d, which no airdock writes (this installer "
    "knows %s)":
        "安装包清单的 format_version 为 %d，没有任何 airdock 版本会生成它（本安装程序支持 %s）",
    "the bundle is damaged or was altered: copy it again from the source":
        "安装包已损坏或被改动：请从源头重新拷贝",
    # ---- the lock and running commands
    "another airdock installer (pid %d) is running": "另一个 airdock 安装程序（pid %d）正在运行",
    "another airdock installer is running": "另一个 airdock 安装程序正在运行",
    "wait for it to finish": "请等待它结束",
    "warning: cannot lock %s (%s): nothing stops a second installer run meanwhile":
        "警告：无法锁定 %s（%s）：此期间无法阻止另一个安装程序同时运行",
    "  would run: %s": "  将运行：%s",
    "`%s` failed (exit %d): %s": "`%s` 失败（退出码 %d）：%s",
}


# =====================================================================================
# main and the commands
# =====================================================================================


def main(argv=None):
    args = parse_args(argv)
    s = Session(args)
    try:
        s.trust = load_trust(s, args)
        code = COMMANDS[args.command](s, args)
    except Failure as exc:
        s.failed(exc)
        code = exc.code
    except KeyboardInterrupt:
        s.failed(Failure(T("interrupted"), T("run the same command again: the yum transaction "
                                             "either completed or changed nothing")))
        code = 130
    except Exception as exc:  # an installer bug: one line for the operator, details in the log
        s.log("internal error:\n" + traceback.format_exc())
        s.failed(Failure(T("internal error (%s: %s)", type(exc).__name__, exc_text(exc)),
                         T("please report it with the log")))
        code = 70
    if args.command in ("check", "install"):
        # stopped before or amid the checks (an unreadable bundle, the lock, a key rpm cannot
        # read): --json still names every check, those not run skipped with the reason
        done = s.result.setdefault("checks", [])
        ran = set(c["name"] for c in done)
        why = "not run: %s" % s.result.get("error", "the run stopped before this check")
        done.extend(Check(name, "skip", why).as_dict() for name in CHECK_NAMES
                    if name not in ran)
    s.finish(code)
    return code


def cmd_check(s, args):
    """Preflight only: every check, pass/warn/fail with the reason and the fix."""
    bundle = load_bundle(s, args.bundle)
    hold_lock(s, exclusive=False)
    host = Host(s)
    preflight(s, bundle, host)
    s.say(T("\nAll checks passed: `sudo ./install.sh` installs this bundle."))
    return 0


def cmd_install(s, args):
    """check -> keys -> one yum transaction -> services -> images -> smoke test -> receipt."""
    bundle = load_bundle(s, args.bundle)
    hold_lock(s, exclusive=not args.dry_run)
    host = Host(s)
    plan = preflight(s, bundle, host)
    if plan.nothing_to_do:
        s.say(describe_plan(plan))
    else:
        note = trust_note(s.trust)
        confirm(s, args, join_lines([describe_plan(plan), note]) if note else describe_plan(plan))
    previous = read_receipt(s)
    history_before = yum_history_last_id(s)
    store_trusted_keys(s)
    new_keys = import_keys(s, bundle, host, plan)

    def record(transaction, images=(), complete=False):
        return write_receipt(s, bundle, host, plan, transaction, list(images), previous,
                             complete, new_keys)

    transaction = apply_transaction(s, host, plan, new_keys, history_before, record)
    if transaction:
        record(transaction)  # the packages are in: on record before a later step can fail
    images = []
    if args.no_start:
        enable_services(s)
        s.say(T("Services enabled but not started (--no-start): images were not loaded."))
    else:
        start_services(s)
        wait_for_docker(s)
        images = load_images(s, bundle, args.skip_images)
        smoke_test(s, bundle, args.skip_images)
    record(transaction, images, complete=True)
    summarize_install(s, bundle, plan, transaction, images)
    return 0


def cmd_status(s, args):
    """Installed docker packages vs the bundle, services, images, last receipt."""
    bundle = load_bundle(s, args.bundle, required=False)
    host = Host(s)
    receipt = read_receipt(s)
    show_packages(s, bundle, host, receipt)
    show_services(s)
    show_images(s, bundle)
    show_receipt(s, receipt)
    return 0


def cmd_uninstall(s, args):
    """Stop docker, remove what airdock installed; keep data unless --purge."""
    hold_lock(s, exclusive=not args.dry_run)
    host = Host(s)
    receipt = read_receipt(s)
    packages = removable_packages(s, host, receipt)
    purge = purge_plan(s) if args.purge else []
    if not packages and not purge:
        if args.purge:
            s.say(T("Nothing to uninstall: no docker packages installed."))
        else:
            s.say(T("Nothing to uninstall: no docker packages installed; `uninstall --purge` "
                    "deletes %s.", ", ".join(DATA_DIRS)))
        retire_receipt(s, receipt)
        return 0
    confirm(s, args, describe_uninstall(packages, purge))
    stop_services(s)
    removal = remove_packages(s, host, packages)
    remove_unused_keys(s, host, receipt)
    retire_receipt(s, receipt, removal)
    if args.purge:
        purge_data(s, purge)
    summarize_uninstall(s, packages, args.purge, removal)
    return 0


def cmd_inventory(s, args):
    """This host as the builder's --baseline-from reads it (INVENTORY_FORMAT): every
    installed package, os-release, kernel, arch, python, docker.  Reads only; -o FILE is
    written atomically, without -o the document is the only thing on stdout."""
    host = Host(s)
    if not host.has("rpm"):
        raise Failure(T("rpm not found: this is not an rpm host"),
                      T("run the inventory on the CentOS 7 host the bundle is for"))
    inventory = host_inventory(s, host)
    text = json.dumps(inventory, indent=2, sort_keys=True, separators=(",", ": ")) + "\n"
    s.result["packages"] = len(inventory["packages"])
    if not args.output:
        s.json = False  # the inventory is the JSON document on stdout
        s.quiet_result = True
        write_bytes(sys.stdout, text.encode("utf-8"))
        return 0
    path = os.path.abspath(args.output)
    try:
        write_file_atomic(path, text.encode("utf-8"))
    except (IOError, OSError) as exc:
        raise Failure(T("cannot write %s: %s", path, exc.strerror or exc_text(exc)),
                      T("give -o a file in a writable folder"))
    s.result["output"] = path
    s.say(T("Wrote %s: %s installed on %s.", path,
            count(len(inventory["packages"]), "package"), inventory["hostname"]))
    s.say(T("Carry it to the connected machine and build for this host:"))
    s.say("    airdock build --baseline-from %s ..." % os.path.basename(path))
    return 0


COMMANDS = {
    "check": cmd_check,
    "install": cmd_install,
    "inventory": cmd_inventory,
    "status": cmd_status,
    "uninstall": cmd_uninstall,
}


class UsageParser(argparse.ArgumentParser):
    def error(self, message):
        lang, _note = choose_language(forced_language(sys.argv[1:]), os.environ, [
            output_encoding(sys.stderr, os.environ)])
        text = render(T("airdock: %s (see --help)", message), lang) + u"\n"
        write_bytes(sys.stderr, text.encode(output_encoding(sys.stderr, os.environ), "replace"))
        sys.exit(2)


def forced_language(argv):
    """--lang's value before argparse has read it (for argparse's own errors)."""
    for index, arg in enumerate(argv):
        if arg.startswith("--lang="):
            return arg.split("=", 1)[1] if arg.split("=", 1)[1] in LANGUAGES else None
        if arg == "--lang" and index + 1 < len(argv) and argv[index + 1] in LANGUAGES:
            return argv[index + 1]
    return None


LANGUAGES = ("en", "zh")


def parse_args(argv):
    parser = UsageParser(
        prog="install.sh",
        description="Install Docker CE from this airdock bundle on an air-gapped CentOS 7 host.",
        epilog="check, inventory and --dry-run change nothing on the host (they only write "
        "their log). Messages are in Simplified Chinese when the locale is zh_* (LC_ALL, "
        "LC_MESSAGES, LANG) and the terminal can show it, in English otherwise; --json output "
        "is always English. Exit status: 0 ok, 1 failed, 2 bad usage.",
    )
    parser.add_argument("command", nargs="?", default="install", choices=sorted(COMMANDS),
                        help="what to do (default: install); inventory prints this host's "
                        "packages as JSON for `airdock build --baseline-from`")
    parser.add_argument("--dry-run", action="store_true",
                        help="run the checks, print every command that would change the host")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask before changing")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object with the result on stdout (English)")
    parser.add_argument("--log", default=DEFAULT_LOG, metavar="FILE",
                        help="log file (default %s)" % DEFAULT_LOG)
    parser.add_argument("--no-start", action="store_true",
                        help="install and enable containerd and docker, but do not start them "
                        "(so no images are loaded and no smoke test runs)")
    parser.add_argument("--skip-images", action="store_true",
                        help="do not load the bundle's images")
    parser.add_argument("--purge", action="store_true",
                        help="uninstall: also delete %s" % ", ".join(DATA_DIRS))
    parser.add_argument("--trust-key", action="append", default=[], metavar="FILE",
                        help="trust this publisher key (install stores it in %s)" % TRUST_DIR)
    parser.add_argument("--trust-fingerprint", action="append", default=[], metavar="FPR",
                        help="trust the bundle's keys/publisher.asc if it has this fingerprint")
    parser.add_argument("--bundle", metavar="DIR",
                        default=os.path.dirname(os.path.abspath(__file__)),
                        help="the unpacked bundle folder to use (default: the folder holding "
                        "this installer; status works without one)")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="inventory: write the JSON to FILE (atomically) instead of stdout")
    parser.add_argument("--lang", choices=LANGUAGES,
                        help="language of the messages: en or zh (default: from the locale)")
    parser.add_argument("--version", action="version", version="airdock installer " + VERSION,
                        help="print the installer's version (the airdock that built the "
                        "bundle) and exit")
    args = parser.parse_args(argv)
    if args.purge and args.command != "uninstall":
        parser.error("--purge only goes with uninstall")
    if args.output and args.command != "inventory":
        parser.error("--output only goes with inventory")
    return args


# =====================================================================================
# steps
# =====================================================================================


def hold_lock(s, exclusive):
    """Hold the installer lock for the rest of the run (see InstallerLock: who takes what)."""
    s.lock = InstallerLock(LOCK_FILE)
    s.lock.acquire(s, exclusive)


def preflight(s, bundle, host):
    """Run every check; stop before any change when one fails.  Returns the plan."""
    s.say("airdock %s: %s (docker-ce %s, %s)" % (
        s.args.command, bundle.name, bundle.docker_version, bundle.arch))
    checks, plan = run_checks(s, bundle, host)
    failed = [c for c in checks if c.status == "fail"]
    warned = [c for c in checks if c.status == "warn"]
    s.say(T("\n%s: %d failed, %s", count(len(checks), "check"), len(failed),
            count(len(warned), "warning")))
    if failed:
        first = failed[0]
        fix = first.fix_text or T("fix it and run `./install.sh check` again")
        if len(failed) > 1:  # the others by name: --json has no lines above to point at
            others = [CheckLabel(c.name) for c in failed[1:]]
            raise Failure(T("preflight failed: %s: %s (+%d more: %s)", CheckLabel(first.name),
                            first.text, len(others),
                            layout(", ".join(["%s"] * len(others)), *others)), fix)
        raise Failure(T("preflight failed: %s: %s", CheckLabel(first.name), first.text), fix)
    return plan


def describe_plan(plan):
    lines = []
    for pkg in plan.install:
        lines.append(T("  install  %s", pkg.nevra))
    for pkg, old in plan.upgrade:
        lines.append(T("  upgrade  %s (from %s)", pkg.nevra, old))
    for nevra in plan.remove:
        lines.append(T("  remove   %s", nevra))
    for nevra in plan.extra_removals:
        lines.append(T("  remove   %s (needs a package being removed)", nevra))
    if not lines:
        return T("Packages: nothing to change (already installed); services and images are "
                 "checked.")
    return join_lines([T("One yum transaction (every repo disabled, signatures checked):")]
                      + lines)


def confirm(s, args, text):
    s.say(text)
    if args.dry_run or args.yes:
        return
    if not sys.stdin.isatty():
        raise Failure(T("not confirmed: stdin is not a terminal"),
                      T("add --yes to proceed without a prompt"))
    stream = sys.stderr if args.json else sys.stdout
    prompt = render(T("Proceed? [y/N] "), s.lang)
    write_bytes(stream, prompt.encode(s.encodings.get(id(stream)) or "ascii", "replace"))
    try:
        answer = ask().strip().lower()
    except (EOFError, UnicodeError):
        answer = ""
    if answer not in ("y", "yes"):
        raise Failure(T("cancelled at the prompt; nothing was changed"),
                      T("run it again and answer y, or add --yes"))


def store_trusted_keys(s):
    """``--trust-key FILE``: kept in TRUST_DIR so later bundles are checked against it."""
    for path, keys in s.trust.given:
        dest = os.path.join(TRUST_DIR, "%s.asc" % keys[0]["primary"])
        if os.path.isfile(dest):
            continue
        s.step(T("trusting publisher key %s from now on (%s)", keys[0]["primary"], dest))
        if s.dry_run:
            continue
        try:
            if not os.path.isdir(TRUST_DIR):
                os.makedirs(TRUST_DIR, 0o755)
            shutil.copyfile(path, dest + ".tmp")
            os.chmod(dest + ".tmp", 0o644)
            os.rename(dest + ".tmp", dest)
        except (IOError, OSError) as exc:
            raise Failure(T("cannot store the trusted key in %s: %s", TRUST_DIR, exc_text(exc)),
                          T("check that /etc is writable, or put the key there by hand"))


def import_keys(s, bundle, host, plan):
    """rpm --import the keys that signed what the transaction installs, when the host lacks
    them; returns the gpg-pubkey names added (the receipt records them for uninstall)."""
    present = host.imported_key_ids()
    needed = set((p.signing_key or "").lower()[-16:] for p in plan.install)
    needed.update((p.signing_key or "").lower()[-16:] for p, _ in plan.upgrade)
    added = []
    for key in bundle.keys:
        if not needed.intersection(key.key_ids):
            continue
        if key.short_id in present:
            s.log("key %s already imported" % key.short_id)
            continue
        s.step(T("importing signing key %s (%s)", key.fingerprint or key.short_id, key.file))
        s.run(["rpm", "--import", key.path], change=True,
              fail=T("rpm --import %s failed", key.file),
              fix=T("check that the bundle is complete (sha256sum -c SHA256SUMS)"))
        added.append("gpg-pubkey-" + key.short_id)
    return added


def apply_transaction(s, host, plan, new_keys, history_before, record=None):
    """The one yum transaction; verified afterwards with rpm (yum shell's exit code is not).
    Returns what the receipt says about it ({"id": its yum history ID} or {"id": None,
    "why_no_id": ...}), None when there was none (nothing to do, --dry-run).  When the rpmdb
    changed but not as planned, record(that, with "incomplete") runs before the Failure."""
    if plan.nothing_to_do:
        s.step(T("packages: already installed, no transaction"))
        return None
    before = host.all_packages()
    script = write_shell_script(s, plan)
    s.step(T("yum transaction: %d to install, %d to upgrade, %d to remove",
             len(plan.install), len(plan.upgrade), len(plan.remove)))
    cmd = ["yum", "-y", "--disablerepo=*", "--setopt=gpgcheck=1",
           "--setopt=localpkg_gpgcheck=1", "--setopt=skip_broken=0", "shell", script]
    rc, out = s.run(cmd, change=True, check=False)
    if s.dry_run:
        return None
    host.forget()
    problems = transaction_problems(plan, host)
    if problems:
        unchanged = host.all_packages() == before
        remove_keys(s, new_keys)
        gpg = "GPG" in out or "signature" in out.lower() or "NOKEY" in out
        reason = last_error_line(out) or problems[0]
        if unchanged:
            raise Failure(T("the yum transaction failed and changed nothing: %s", reason),
                          T("the bundle's signatures did not verify: rebuild or re-copy the "
                            "bundle") if gpg else
                          T("see the log for yum's output, fix it and run install again"))
        transaction = committed_transaction(s, history_before)
        transaction["incomplete"] = problems
        if record:
            record(transaction)
        raise Failure(T("the yum transaction did not complete: %s", "; ".join(problems[:3])),
                      T("see `yum history` and the log; run install again"))
    return committed_transaction(s, history_before)


def committed_transaction(s, history_before):
    """{"id": N} for the yum history entry a transaction just made, or {"id": None,
    "why_no_id": why} when yum history does not show a new one."""
    newest, why = yum_history_newest(s)
    if newest is not None and history_before is not None and newest <= history_before:
        newest, why = None, "`yum history list` shows no new entry (the newest is still %d)" % (
            history_before)
    if newest is None:
        s.log("transaction ID unknown: %s" % why)
        return {"id": None, "why_no_id": why}
    return {"id": newest}


def enable_services(s):
    for unit in SERVICES:
        s.run(["systemctl", "enable", unit], change=True,
              fail=T("systemctl enable %s failed", unit), fix=T("see the log"))


def start_services(s):
    s.step(T("starting containerd and docker (systemctl enable --now)"))
    rc, out = s.run(["systemctl", "enable", "--now", "containerd", "docker"], change=True,
                    check=False)
    if rc != 0:
        service_failed(s, T("systemctl enable --now containerd docker failed"))


def wait_for_docker(s):
    if s.dry_run:
        s.say(T("  (would wait for %s)", DOCKER_SOCKET))
        return
    deadline = time.time() + DOCKER_START_TIMEOUT
    while True:
        rc, out = s.run(["docker", "version", "--format", "{{.Server.Version}}"], check=False,
                        quiet=True)
        if rc == 0 and out.strip():
            s.step(T("docker is up (engine %s)", out.strip().splitlines()[-1]))
            return
        state = s.run(["systemctl", "is-active", "docker"], check=False, quiet=True)[1].strip()
        if state in ("failed", "inactive") or time.time() > deadline:
            service_failed(s, T("docker did not come up (%s) within %ds",
                                state or T("no answer"), DOCKER_START_TIMEOUT))
        time.sleep(1)


def service_failed(s, what):
    """Print the tail of the service's journal and what to try, then fail."""
    tail = []
    for cmd in (["systemctl", "status", "docker", "--no-pager", "-l"],
                ["journalctl", "-u", "docker", "--no-pager", "-n", "30"]):
        rc, out = s.run(cmd, check=False, quiet=True)
        lines = [ln for ln in out.splitlines() if ln.strip() and "No entries" not in ln]
        tail.extend(lines[-15:])
    if tail:
        s.say(join_lines([T("\nlast lines of the docker service log:")] +
                         ["  " + ln for ln in tail]))
        s.result["service_log"] = tail
    raise Failure(what, T("read `journalctl -u docker -n 50` (often /etc/docker/daemon.json or "
                          "the storage driver), fix it and run install again; packages stay "
                          "installed"))



def load_images(s, bundle, skip):
    """docker load each bundled image unless that image ID is already there."""
    loaded = []
    if skip:
        if bundle.images:
            s.step(T("images: skipped (--skip-images)"))
        return loaded
    for image in bundle.images:
        have = docker_image_id(s, image["repo_tag"])
        want = image.get("config_digest")
        if have and have == want:
            s.step(T("image %s: already loaded (%s)", image["repo_tag"], short_digest(have)))
        else:
            s.step(T("loading image %s (%s)", image["repo_tag"],
                     human_size(image.get("size", 0))))
            s.run(["docker", "load", "-i", bundle.path(image["file"])], change=True,
                  fail=T("docker load of %s failed", image["file"]),
                  fix=T("check the bundle (sha256sum -c SHA256SUMS) and docker's log"))
            if not s.dry_run:
                have = docker_image_id(s, image["repo_tag"])
                if want and have != want:
                    raise Failure(T("image %s loaded as %s, the manifest says %s",
                                    image["repo_tag"], have, want),
                                  T("re-copy the bundle and run install again"))
        loaded.append({"repo_tag": image["repo_tag"], "id": have or want})
    return loaded


def smoke_test(s, bundle, skipped_images):
    """docker run --rm hello-world when the bundle carries it; otherwise docker info."""
    hello = [i["repo_tag"] for i in bundle.images if image_name(i["repo_tag"]) == "hello-world"]
    if hello and skipped_images and not docker_image_id(s, hello[0]):
        hello = []
    if hello:
        tag = hello[0]
        s.step(T("smoke test: docker run --rm %s", tag))
        rc, out = s.run(["docker", "run", "--rm", tag], change=True, check=False)
        if s.dry_run:
            return
        greeting = [ln.strip() for ln in out.splitlines() if ln.strip()]
        if rc != 0 or not greeting:
            raise Failure(T("the smoke test `docker run --rm %s` failed: %s",
                            tag, last_error_line(out) or T("it printed nothing")),
                          T("docker is installed and running; see the log and "
                            "`journalctl -u docker`"))
        s.say("  " + (HELLO_MESSAGE if HELLO_MESSAGE in out else greeting[0]))
        s.result["smoke_test"] = greeting[0] if HELLO_MESSAGE not in out else HELLO_MESSAGE
        return
    s.step(T("smoke test: docker info (no hello-world image loaded)"))
    s.run(["docker", "info"], change=True, fail=T("`docker info` failed"),
          fix=T("see `journalctl -u docker`"))


def write_receipt(s, bundle, host, plan, committed, images, previous, complete=True,
                  new_keys=()):
    """/var/lib/airdock/receipt.json: what this bundle's install changed, with the yum
    transaction's ID (committed, from apply_transaction; None when there was no transaction)
    and the rpm keys airdock imported.  Written right after the transaction (complete=False)
    and again at the end."""
    imported = sorted(set(list(new_keys) + list((previous or {}).get("imported_keys", []))))
    managed = set(plan.managed_names())
    if previous:
        managed.update(previous.get("managed_packages", []))
    host.forget()
    still = host.installed(sorted(managed)) if not s.dry_run else {}
    transaction = {
        "id": None,
        "time": utc_now(),
        "bundle": bundle.name,
        "added": [p.nevra for p in plan.install],
        "upgraded": [{"name": p.name, "from": old, "to": p.evr} for p, old in plan.upgrade],
        "removed": list(plan.remove) + list(plan.extra_removals),
    }
    transaction.update(committed or {"why_no_id": "no transaction: the packages were "
                                                  "already installed"})
    history = []
    if previous:
        history = previous.get("previous", [])[:9]
        if not committed and plan.nothing_to_do and previous.get("transaction"):
            transaction = previous["transaction"]  # this run changed no package
        else:
            history = [summarize_receipt(previous)] + history
    receipt = {
        "format": "airdock-receipt",
        "format_version": RECEIPT_FORMAT_VERSION,
        "time": utc_now(),
        "installer_version": VERSION,
        "bundle": {
            "name": bundle.name,
            "docker_version": bundle.docker_version,
            "manifest_sha256": bundle.manifest_sha256,
            "path": bundle.root,
        },
        "packages_changed": not plan.nothing_to_do,
        "complete": complete,
        "transaction": transaction,
        "managed_packages": sorted(n for n in managed if s.dry_run or n in still),
        "imported_keys": imported,
        "trust": s.trust.label,
        "images": images,
        "previous": history,
    }
    if s.dry_run:
        s.say(T("  (would write %s)", RECEIPT))
        return receipt
    write_json_atomic(RECEIPT, receipt)
    copy_installer(s)
    s.log("receipt written to %s (transaction %s%s)" % (
        RECEIPT, transaction.get("id"), "" if complete else "; the install goes on"))
    s.result["receipt"] = receipt
    return receipt


def copy_installer(s):
    """Keep a copy beside the receipt so uninstall needs no bundle (k3s writes an uninstaller)."""
    try:
        shutil.copyfile(os.path.abspath(__file__), os.path.join(STATE_DIR, "airdock_install.py"))
    except (IOError, OSError) as exc:
        s.log("could not copy the installer to %s: %s" % (STATE_DIR, exc))


def summarize_install(s, bundle, plan, transaction, images):
    transaction_id = (transaction or {}).get("id")
    s.result.update({"transaction_id": transaction_id, "images": images})
    if s.dry_run:
        s.say(T("\nDry run: nothing was changed."))
        return
    s.say(T("\nDone: docker-ce %s from %s.", bundle.docker_version, bundle.name))
    if transaction_id:
        s.say(T("  yum transaction %s (`yum history info %s`; receipt %s)",
                transaction_id, transaction_id, RECEIPT))
    elif transaction:
        s.say(T("  one yum transaction; its ID is unknown: %s (receipt %s)",
                transaction.get("why_no_id"), RECEIPT))
    else:
        s.say(T("  packages were already installed (receipt %s)", RECEIPT))
    s.say(T("  status:    sudo ./install.sh status"))
    s.say(T("  uninstall: sudo python %s/airdock_install.py uninstall   (keeps %s)",
            STATE_DIR, DOCKER_DATA))



def show_packages(s, bundle, host, receipt):
    names = set(DOCKER_PACKAGES)
    if bundle:
        names.update(p.name for p in bundle.packages if p.requested)
    if receipt:
        names.update(receipt.get("managed_packages", []))
    installed = host.installed(sorted(names)) if host.has("rpm") else {}
    wanted = dict((p.name, p) for p in bundle.packages) if bundle else {}
    rows = []
    s.say(T("Packages:"))
    for name in sorted(names):
        have = installed.get(name)
        have_evr = evr_string(max_evr(have)) if have else None
        pkg = wanted.get(name)
        note = ""
        if pkg and have:
            cmp = evr_compare(pkg.evr_tuple, max_evr(have))
            note = T("= bundle") if cmp == 0 else T("bundle has %s", pkg.evr)
        elif pkg:
            note = T("bundle has %s", pkg.evr)
        if have or pkg:
            s.say(layout("  %s %s %s", Column(name, 28),
                         Column(have_evr or T("not installed"), 28), note))
        rows.append({"name": name, "installed": have_evr, "bundle": pkg.evr if pkg else None})
    s.result["packages"] = rows


def show_services(s):
    s.say(T("Services:"))
    states = {}
    for unit in SERVICES:
        active = s.run(["systemctl", "is-active", unit], check=False, quiet=True,
                       stderr=False)[1].strip()
        enabled = s.run(["systemctl", "is-enabled", unit], check=False, quiet=True,
                        stderr=False)[1].strip()
        active = active.splitlines()[-1] if active else "unknown"
        enabled = enabled.splitlines()[-1] if enabled else "no unit file"
        states[unit] = {"active": active, "enabled": enabled}  # systemctl's words, in JSON
        s.say(layout("  %s %s %s", Column(unit, 12),
                     Column(T("unknown") if active == "unknown" else active, 10),
                     T("no unit file") if enabled == "no unit file" else enabled))
    s.result["services"] = states


def show_images(s, bundle):
    rc, out = s.run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"],
                    check=False, quiet=True)
    present = {}
    if rc == 0:
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2:
                present[parts[0]] = parts[1]
    s.say(T("Images:") if rc == 0 else T("Images: (docker is not answering)"))
    for tag in sorted(present):
        s.say("  %s %s" % (tag, present[tag]))
    missing = []
    for image in (bundle.images if bundle else []):
        if image["repo_tag"] not in present:
            missing.append(image["repo_tag"])
            s.say(T("  %s (in the bundle, not loaded)", image["repo_tag"]))
    s.result["images"] = {"docker_answers": rc == 0, "present": present, "bundle_missing": missing}


def show_receipt(s, receipt):
    if not receipt:
        s.say(T("Receipt: none (%s)", RECEIPT))
    else:
        tx = receipt.get("transaction", {})
        args = (receipt.get("bundle", {}).get("name"), receipt.get("time"), tx.get("id"),
                tx.get("time"))
        if receipt.get("complete", True):
            s.say(T("Receipt: %s (last run %s); packages from yum transaction %s at %s", *args))
        else:
            s.say(T("Receipt: %s (last run %s); packages from yum transaction %s at %s; that "
                    "install stopped after its transaction: run install again", *args))
    s.result["receipt"] = receipt


def removable_packages(s, host, receipt):
    """NEVRAs to remove: what the receipt says airdock installed, minus what others need."""
    names = receipt.get("managed_packages") if receipt else None
    installed = host.installed(names or list(DOCKER_PACKAGES))
    if not names:
        names = list(DOCKER_PACKAGES)
        if installed:
            s.say(T("No airdock receipt: removing the docker packages Docker's docs name."))
    nevras = []
    for name in names:
        for evr in installed.get(name, []):
            nevras.append(nevra_string(name, evr))
    if not nevras:
        return []
    keep = needed_by_others(s, host, nevras)
    for nevra, why in keep:
        s.say(T("  keeping %s (%s)", nevra, why))

    kept = set(n for n, _ in keep)
    return [n for n in nevras if n not in kept]


def purge_plan(s):
    found = []
    for path in DATA_DIRS:
        if os.path.lexists(path):
            found.append((path, tree_size(path)))
    return found


def describe_uninstall(packages, purge):
    lines = []
    if packages:
        lines.append(T("Stop docker and containerd, then remove in one yum transaction:"))
        lines.extend(T("  remove   %s", n) for n in packages)
    else:
        lines.append(T("No docker packages to remove."))
    if purge:
        lines.append(T("Then DELETE (--purge):"))
        lines.extend(layout("  %s %s", Column(p, 22), human_size(size)) for p, size in purge)
    else:
        lines.append(T("Kept: %s (uninstall --purge deletes them).", ", ".join(DATA_DIRS)))
    return join_lines(lines)


def stop_services(s):
    s.step(T("stopping docker and containerd"))
    for unit in STOP_UNITS:
        s.run(["systemctl", "disable", "--now", unit], change=True, check=False)
    if s.dry_run:
        return
    for unit in SERVICES:
        state = s.run(["systemctl", "is-active", unit], check=False, quiet=True)[1].strip()
        if state == "active":
            raise Failure(T("%s is still running after `systemctl stop %s`", unit, unit),
                          T("stop it by hand (systemctl stop %s) and run uninstall again", unit))


def remove_packages(s, host, packages):
    """One yum remove; returns {"id": its yum history ID, "time", "removed"} (or
    "why_no_id") for the retired receipt, None when nothing was removed."""
    if not packages:
        return None
    s.step(T("yum remove: %s", count(len(packages), "package")))
    history_before = yum_history_last_id(s) if not s.dry_run else None
    cmd = ["yum", "-y", "--disablerepo=*", "--setopt=clean_requirements_on_remove=0",
           "remove"] + [nevra_nvra(n) for n in packages]
    rc, out = s.run(cmd, change=True, check=False)
    if s.dry_run:
        return None
    host.forget()
    installed = host.installed(sorted(set(nevra_name(n) for n in packages)))
    left = [n for n in packages if any(nevra_string(nevra_name(n), evr) == n
                                       for evr in installed.get(nevra_name(n), []))]
    if left:
        raise Failure(T("yum remove did not remove %s: %s", ", ".join(left),
                        last_error_line(out)),
                      T("see the log; remove them with `yum remove` and run uninstall again"))
    removal = committed_transaction(s, history_before)
    removal.update({"time": utc_now(), "removed": list(packages)})
    return removal


def remove_unused_keys(s, host, receipt):
    """The gpg-pubkey entries airdock imported that no installed package is signed by."""
    names = (receipt or {}).get("imported_keys") or []
    if not names:
        return
    used = host.signing_key_ids() if not s.dry_run else set()
    for name in names:
        short = name.rsplit("-", 1)[-1].lower()
        if any(k.endswith(short) for k in used):
            s.say(T("  keeping key %s (installed packages are signed by it)", name))
            continue
        s.step(T("removing key %s (airdock imported it; nothing installed needs it)", name))
        s.run(["rpm", "-e", name], change=True, check=False)


def retire_receipt(s, receipt, removal=None):
    """receipt.json -> receipt.uninstalled-STAMP.json, with the uninstall's transaction (and
    such a record alone when there was no receipt but a transaction)."""
    if s.dry_run or not (receipt or removal):
        return
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    retired = dict(receipt or {"format": "airdock-receipt",
                               "format_version": RECEIPT_FORMAT_VERSION,
                               "installer_version": VERSION})
    retired["uninstalled"] = utc_now()
    if removal:
        retired["uninstall_transaction"] = removal
    write_json_atomic(os.path.join(STATE_DIR, "receipt.uninstalled-%s.json" % stamp), retired)
    if receipt:
        os.remove(RECEIPT)


def purge_data(s, purge):
    if s.dry_run:
        for path, _ in purge:
            s.say(T("  (would delete %s)", path))
        return
    for path, _ in purge:
        inside = mounts_under(path)
        if inside:
            raise Failure(T("%s still has a filesystem mounted inside (%s): nothing deleted",
                            path, inside[0]),
                          T("unmount it (or reboot) and run uninstall --purge again"))
    for path, size in purge:
        s.step(T("deleting %s (%s)", path, human_size(size)))
        try:
            remove_tree(path)
        except (IOError, OSError) as exc:
            raise Failure(T("could not delete %s: %s", path, exc_text(exc)),
                          T("stop whatever still uses it (containers, mounts) and delete it by "
                            "hand"))


def summarize_uninstall(s, packages, purged, removal=None):
    transaction_id = (removal or {}).get("id")
    s.result.update({"removed": packages, "purged": bool(purged),
                     "transaction_id": transaction_id})
    if s.dry_run:
        s.say(T("\nDry run: nothing was changed."))
        return
    removed = count(len(packages), "package")
    if transaction_id and purged:
        s.say(T("\nDone: %s removed (yum transaction %s), data deleted.", removed,
                transaction_id))
    elif transaction_id:
        s.say(T("\nDone: %s removed (yum transaction %s).", removed, transaction_id))
    elif purged:
        s.say(T("\nDone: %s removed, data deleted.", removed))
    else:
        s.say(T("\nDone: %s removed.", removed))
    if not purged:
        s.say(T("  kept %s; `uninstall --purge` deletes them", ", ".join(DATA_DIRS)))


# =====================================================================================
# checks
# =====================================================================================


# Every check, in the order run_checks runs them: --json lists each, run or skipped.
CHECK_NAMES = ("root", "os", "kernel", "arch", "tools", "space", "filesystem", "selinux",
               "checksums", "trust", "signatures", "headers", "remove-list", "conflicts",
               "docker-ce", "transaction")


class Check(object):
    """One line of the preflight.  message and fix are English (the log, --json); text and
    fix_text are what the operator reads (Msg, in the operator's language)."""

    def __init__(self, name, status, message, fix=None):
        self.name, self.status = name, status
        self.text, self.fix_text = message, fix
        self.message = english(message)
        self.fix = english(fix) if fix is not None else None

    def as_dict(self):
        """--json: status "skipped" (not "skip") with the reason as its message."""
        return {"name": self.name, "status": "skipped" if self.status == "skip" else self.status,
                "message": self.message, "fix": self.fix}


def run_checks(s, bundle, host):
    """Every check in order; later ones are skipped when what they need failed."""
    checks = []
    s.result["checks"] = []  # as they run: a run stopped amid them still reports these

    def add(check):
        checks.append(check)
        s.result["checks"].append(check.as_dict())
        s.show_check(check)
        return check

    root = add(check_root(host))
    add(check_os(host, bundle))
    add(check_kernel(host))
    add(check_arch(host, bundle))
    tools = add(check_tools(host))
    add(check_space(host, bundle))
    add(check_filesystem(s, host))
    add(check_selinux(host))
    sums = add(check_checksums(s, bundle))
    add(check_trust(s, bundle, s.trust))
    s.result["trust"] = s.trust.label
    plan = None
    if tools.status == "fail":
        for name in ("signatures", "headers", "remove-list", "conflicts", "docker-ce",
                     "transaction"):
            add(Check(name, "skip", T("needs yum and rpm")))
        return checks, plan
    headers = None
    if sums.status == "fail":
        for name in ("signatures", "headers", "remove-list"):
            add(Check(name, "skip", T("the bundle failed its checksums")))
    else:
        add(check_signatures(s, bundle))
        headers = add(check_headers(s, bundle))
        add(check_remove_policy(s, bundle))
    plan = make_plan(s, bundle, host)
    add(check_conflicts(plan))
    add(check_existing(plan, bundle))
    if sums.status == "fail":
        add(Check("transaction", "skip", T("the bundle failed its checksums")))
    elif headers.status == "fail":  # the plan goes by identities the RPMs do not have
        add(Check("transaction", "skip", T("the manifest does not describe the bundle's RPMs")))
    elif root.status == "fail":
        add(Check("transaction", "skip", T("the yum test transaction needs root")))
    else:
        add(check_transaction(s, bundle, plan))
    return checks, plan


def check_root(host):
    if host.euid == 0:
        return Check("root", "pass", T("running as root"))
    return Check("root", "fail", T("running as uid %d, not root", host.euid),
                 T("run it as root: sudo ./install.sh %s", " ".join(sys.argv[1:]).strip()))


def check_os(host, bundle):
    info = host.os_release()
    os_id, version = info.get("ID", ""), info.get("VERSION_ID", "")
    pretty = info.get("PRETTY_NAME") or ("%s %s" % (os_id, version)).strip() or T("unknown OS")
    major = version.split(".")[0]
    built_for = bundle.target.get("baseline") or "CentOS 7"
    if os_id == "centos" and major == "7":
        return Check("os", "pass", layout("%s%s", pretty, minor_release_note(host)))
    if os_id in RHEL_COMPATIBLE and major == "7":
        return Check("os", "warn", T("%s is RHEL-compatible, not CentOS: the bundle was built "
                                     "for %s", pretty, built_for),
                     T("the test transaction below tells whether this host lacks anything"))
    return Check("os", "fail", T("%s is not supported: this bundle holds CentOS 7 (el7) "
                                 "packages", pretty),
                 T("install on a CentOS 7 host (RHEL 7 works with a warning)"))


def minor_release_note(host):
    text = host.read_first(("/etc/centos-release",))
    match = re.search(r"release (7\.\d+)", text or "")
    return " (%s)" % match.group(1) if match else ""


def check_kernel(host):
    release = host.kernel_release()
    parsed = parse_kernel_release(release)
    if not parsed:
        return Check("kernel", "warn", T("cannot read the kernel release from %s",
                                         KERNEL_RELEASE),
                     T("check `uname -r` is 3.10 or newer"))
    major, minor, patch, build = parsed
    if (major, minor) < (3, 10):
        return Check("kernel", "fail", T("kernel %s is older than 3.10, which Docker needs",
                                         release),
                     T("boot a CentOS 7 kernel (3.10.0-*.el7)"))
    if (major, minor) == (3, 10) and build is not None and build < 514:
        return Check("kernel", "warn", T("kernel %s predates 3.10.0-514 (CentOS 7.3): no "
                                         "overlay2, docker falls back to devicemapper", release),
                     T("update the kernel to 3.10.0-514 or later and reboot"))
    return Check("kernel", "pass", T("kernel %s", release))


def check_arch(host, bundle):
    machine = normalize_arch(host.machine)
    if machine == normalize_arch(bundle.arch):
        return Check("arch", "pass", T("%s, as the bundle", machine))
    return Check("arch", "fail", T("this host is %s, the bundle is for %s", machine, bundle.arch),
                 T("build a bundle with `airdock build --arch %s`", machine))


def check_tools(host):
    missing = [t for t in ("yum", "rpm") if not host.has(t)]
    if missing:
        return Check("tools", "fail", T("%s not found: this is not a yum/rpm host",
                                        " and ".join(missing)),
                     T("run it on CentOS 7"))
    if not host.has("systemctl"):
        return Check("tools", "warn", T("yum and rpm found, systemctl not found"),
                     T("the service cannot be started; use --no-start"))
    return Check("tools", "pass", T("yum, rpm and systemctl found"))


def check_space(host, bundle):
    images = sum(int(i.get("size") or 0) for i in bundle.images)
    rpms = sum(int(p.size or 0) for p in bundle.packages)
    need_docker = 3 * images + 1 * GIB
    need_usr = 3 * rpms + 100 * MIB
    docker_free = free_bytes(DOCKER_DATA)
    usr_free = free_bytes("/usr")
    tmp_free = free_bytes(tempfile.gettempdir())
    where = T("%s free for %s, %s for packages in /usr, %s in %s",
              human_size(docker_free), DOCKER_DATA, human_size(usr_free), human_size(tmp_free),
              tempfile.gettempdir())
    if docker_free < need_docker:
        return Check("space", "fail", T("only %s free for %s, the images need about %s",
                                        human_size(docker_free), DOCKER_DATA,
                                        human_size(need_docker)),
                     T("free space under %s (or mount a bigger disk there)", DOCKER_DATA))
    if usr_free < need_usr or tmp_free < 10 * MIB:
        return Check("space", "fail", T("not enough space: %s", where),
                     T("free space in /usr (about %s needed) and %s",
                       human_size(need_usr), tempfile.gettempdir()))
    if docker_free < 10 * GIB:
        return Check("space", "warn", T("%s: little room for images you add later", where),
                     T("consider a bigger disk for %s", DOCKER_DATA))
    return Check("space", "pass", where)


def check_filesystem(s, host):
    path = existing_parent(DOCKER_DATA)
    mount = mount_of(path)
    if not mount:
        return Check("filesystem", "warn", T("cannot tell the filesystem of %s", DOCKER_DATA))
    point, fstype = mount
    where = T("%s is on %s (%s)", DOCKER_DATA, point, fstype)
    if fstype == "xfs":
        if not host.has("xfs_info"):
            return Check("filesystem", "warn", T("%s; xfs_info not found, ftype unknown", where),
                         T("check `xfs_info %s` shows ftype=1 (overlay2 needs it)", point))
        rc, out = s.run(["xfs_info", point], check=False, quiet=True)
        if "ftype=1" in out:
            return Check("filesystem", "pass", T("%s with ftype=1: overlay2 works", where))
        if "ftype=0" in out:
            return Check("filesystem", "fail", T("%s with ftype=0: overlay2 cannot work "
                                                 "(dockerd 26 refuses it)", where),
                         T("put %s on ext4 or on xfs made with `mkfs.xfs -n ftype=1`",
                           DOCKER_DATA))
        return Check("filesystem", "warn", T("%s; xfs_info did not report ftype", where),
                     T("check `xfs_info %s`", point))
    if fstype in ("ext4", "ext3", "btrfs"):
        return Check("filesystem", "pass", T("%s: overlay2 works", where))
    return Check("filesystem", "warn", T("%s: overlay2 may not work on it", where),
                 T("put %s on ext4 or xfs (ftype=1)", DOCKER_DATA))


def check_selinux(host):
    mode = host.selinux_mode()
    if mode == "enforcing":
        return Check("selinux", "pass",
                     T("SELinux enforcing (container-selinux comes with the bundle)"))
    return Check("selinux", "pass", T("SELinux %s", mode))



def check_checksums(s, bundle):
    problems, verified, extra = verify_bundle_files(bundle)
    if problems:
        more = T(" (+%d more)", len(problems) - 1) if len(problems) > 1 else ""
        s.log("checksum problems:\n  " + "\n  ".join(english(p) for p in problems))
        return Check("checksums", "fail", layout("%s%s", problems[0], more),
                     T("the bundle is damaged or was altered: copy it again and run "
                       "`sha256sum -c SHA256SUMS` in its folder"))
    if extra:
        return Check("checksums", "warn", T("%s verified; not in SHA256SUMS (ignored): %s",
                                            count(verified, "file"), ", ".join(extra[:3])))
    return Check("checksums", "pass", T("SHA256SUMS: %s verified", count(verified, "file")))


def check_signatures(s, bundle):
    """Key fingerprints against the manifest and the pinned vendor keys; rpm -K with a
    throw-away rpmdb holding only the bundle's keys (the host's rpmdb is not touched)."""
    notes = []
    status = "pass"
    ids = set()
    for key in bundle.keys:
        if not key.fingerprint:
            return Check("signatures", "fail", T("%s is not an OpenPGP public key", key.file),
                         T("re-copy the bundle"))
        if key.manifest_fingerprint and key.manifest_fingerprint != key.fingerprint:
            return Check("signatures", "fail", T("%s has fingerprint %s, the manifest says %s",
                                                 key.file, key.fingerprint,
                                                 key.manifest_fingerprint),
                         T("re-copy the bundle"))
        ids.update(key.key_ids)
        vendor = VENDOR_KEYS.get(key.fingerprint)
        if vendor:
            notes.append(T(vendor))
        elif s.trust.verified:
            notes.append(T("%s, vouched for by publisher %s", key.fingerprint, s.trust.verified))
        else:
            return Check("signatures", "fail", T("%s (%s) is not a vendor key, and no publisher "
                                                 "this host trusts signed the bundle",
                                                 key.file, key.fingerprint),
                         T("use a bundle of vendor-signed packages, or trust its publisher: "
                           "--trust-key PUBLISHER.asc (kept in %s)", TRUST_DIR))
    unsigned = [p.file for p in bundle.packages if not p.signing_key or p.signing_key.lower()[-16:]
                not in ids]
    if unsigned:
        return Check("signatures", "fail", T("%s is not signed by a key in the bundle",
                                             unsigned[0]),
                     T("rebuild the bundle; the installer refuses unsigned packages"))
    bad = rpm_checksig(s, bundle)
    if bad:
        return Check("signatures", "fail", T("signature check failed: %s", bad[0]),
                     T("the bundle was altered or is damaged: copy it again from the source"))
    return Check("signatures", status, T("%s signed by the bundle's keys: %s",
                                         count(len(bundle.packages), "package"),
                                         layout("; ".join(["%s"] * len(notes)), *notes)))


def check_trust(s, bundle, trust):
    """SHA256SUMS.asc against the host's trust root (keys in TRUST_DIR, --trust-key,
    --trust-fingerprint).  With a trust root, only a bundle signed by a trusted publisher
    passes; without one, the operator is shown what to compare."""
    sums, asc = bundle.path("SHA256SUMS"), bundle.path(SIGNATURE_FILE)
    try:
        with open(sums, "rb") as handle:
            data = handle.read()
    except (IOError, OSError):
        return Check("trust", "skip", T("no SHA256SUMS to check a signature over"))
    trust.sums_sha256 = hashlib.sha256(data).hexdigest()
    compare = T("compare the sha256 of SHA256SUMS, %s, with the one the publisher published",
                trust.sums_sha256)
    if not os.path.isfile(asc):
        if trust.exists:
            return Check("trust", "fail", T("the bundle is not signed (no %s), and this host "
                                            "installs only bundles signed by a publisher it "
                                            "trusts (%s)", SIGNATURE_FILE, trust.describe()),
                         T("get the signed bundle from its publisher (`airdock build "
                           "--sign-key`)"))
        return Check("trust", "warn", T("the bundle is not signed: %s", compare))
    try:
        with open(asc, "rb") as handle:
            signature = handle.read()
        own = publisher_keys(bundle)
        if not trust.exists:
            trust.signer = verify_signature(data, signature, own)
            return Check("trust", "warn", T("signed by %s, but this host trusts no publisher "
                                            "yet: compare that fingerprint with the "
                                            "publisher's", trust.signer),
                         T("then run with --trust-fingerprint %s (or --trust-key FILE)",
                           trust.signer))
        keys = trust.root + [k for k in own if k["primary"] in trust.fingerprints]
        trust.verified = trust.signer = verify_signature(data, signature, keys)
    except (ValueError, IndexError, struct.error, TypeError) as exc:
        return Check("trust", "fail", T("%s does not verify: %s", SIGNATURE_FILE, exc_text(exc)),
                     T("the bundle was altered or comes from another publisher: get it again "
                       "from yours and check it with `airdock verify` or `gpg --verify`"))
    return Check("trust", "pass", T("signed by %s (%s)", trust.verified,
                                    trust.source_of(trust.verified)))


def trust_note(trust):
    if trust.verified:
        return None
    if trust.signer:
        return T("\nThe bundle is signed by an untrusted key: SHA256SUMS sha256 %s; compare it "
                 "with the publisher's.", trust.sums_sha256)
    return T("\nThe bundle is not signed: SHA256SUMS sha256 %s; compare it with the "
             "publisher's.", trust.sums_sha256)


HEADER_QUERYFORMAT = "%{NAME}\\t%{EPOCHNUM}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n"


def check_headers(s, bundle):
    """Each RPM's header (name, epoch, version, release, arch) is what the manifest says: the
    plan, the transaction's verification, the receipt and uninstall all go by the manifest's
    identities, so a manifest that lies about a (genuine, signed) RPM must stop here, before
    the transaction, not after it.  One rpm -qp over every file, in manifest order."""
    files = [p.path for p in bundle.packages]
    rc, out = s.run(["rpm", "-qp", "--nosignature", "--nodigest", "--qf", HEADER_QUERYFORMAT]
                    + files, check=False, quiet=True, stderr=False)
    lines = out.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    # Exactly one 5-field line per file: a header field holding a tab or a newline cannot
    # shift the answers onto other files.
    if rc != 0 or len(lines) != len(files) or any(len(ln.split("\t")) != 5 for ln in lines):
        return Check("headers", "fail", T("rpm -qp could not read every RPM header of the bundle "
                                          "(exit %d, %s for %s; rpm's words are in the log)",
                                          rc, count(len(lines), "answer"),
                                          count(len(files), "file")),
                     T("the bundle is damaged or was altered: copy the bundle again from the "
                       "source"))
    wrong = []
    for pkg, line in zip(bundle.packages, lines):
        name, epoch, version, release, arch = line.split("\t")
        header = (name, int(epoch) if re.match(r"^[0-9]{1,9}\Z", epoch) else epoch, version,
                  release, arch)
        if header != (pkg.name, pkg.epoch, pkg.version, pkg.release, pkg.arch):
            held = "%s-%s:%s-%s.%s" % header if header[1] else "%s-%s-%s.%s" % (
                name, version, release, arch)
            wrong.append(T("%s holds %s (its RPM header), the manifest says %s",
                           pkg.file, printable(held), pkg.nevra))
    if wrong:
        s.log("manifest/header mismatches:\n  " + "\n  ".join(english(w) for w in wrong))
        more = T(" (+%d more)", len(wrong) - 1) if len(wrong) > 1 else ""
        return Check("headers", "fail", layout("%s%s", wrong[0], more),
                     T("the manifest does not describe the bundle's RPMs (altered or damaged): "
                       "copy the bundle again from the source, or rebuild it"))
    return Check("headers", "pass", T("%s match the manifest (name, epoch, version, "
                                      "release, arch)", count(len(files), "RPM header")))



def check_remove_policy(s, bundle):
    """The manifest's remove list may name only CentOS's old docker packages
    (OLD_DOCKER_PACKAGES), what docker-ce's specs conflict with (KNOWN_CONFLICTS) and what the
    bundle's own RPMs Conflict with or Obsolete (their headers): a manifest must not get a
    root process to remove openssh-server.  make_plan removes nothing else either way."""
    allowed = set(OLD_DOCKER_PACKAGES) | set(KNOWN_CONFLICTS) | set(bundle_conflicts(s, bundle))
    refused = [name for name in bundle.remove if name not in allowed]
    if refused:
        named = layout("%s%s", ", ".join(refused[:3]), T(" (+%d more)", len(refused) - 3)
                       if len(refused) > 3 else "")
        return Check("remove-list", "fail", T("the manifest asks to remove %s: %s", named, (
            T("not an old docker package, and no RPM of the bundle conflicts with or obsoletes "
              "it") if len(refused) == 1 else
            T("not old docker packages, and no RPM of the bundle conflicts with or obsoletes "
              "them"))),
                     T("the manifest was altered: copy the bundle again from the source, or "
                       "rebuild it (airdock removes only the old docker packages and what "
                       "docker-ce conflicts with)"))
    return Check("remove-list", "pass", T("the manifest removes only old docker packages and "
                                          "what the bundle's RPMs conflict with (%s)",
                                          count(len(bundle.remove), "name")))


def check_conflicts(plan):
    if not plan.remove:
        return Check("conflicts", "pass", T("no conflicting packages installed"))
    return Check("conflicts", "warn", T("removed in the same transaction: %s",
                                        ", ".join(plan.remove)),
                 T("nothing to do: they conflict with docker-ce (/usr/bin/docker and more)"))


def check_existing(plan, bundle):
    current = plan.docker_ce_installed
    target = plan.package("docker-ce")
    if plan.downgrade:
        pkg, have = plan.downgrade[0]
        return Check("docker-ce", "fail", T("%s %s is installed, newer than the bundle's %s",
                                            pkg.name, have, pkg.evr),
                     T("uninstall first (`./install.sh uninstall` keeps your data) or use a "
                       "newer bundle"))
    if not current:
        return Check("docker-ce", "pass", T("not installed: will install %s",
                                            target.evr if target else bundle.docker_version))
    if target and evr_compare(target.evr_tuple, current) == 0:
        return Check("docker-ce", "pass", T("%s already installed: re-running ensures the "
                                            "service and images", evr_string(current)))
    return Check("docker-ce", "pass", T("upgrade %s -> %s (images and containers are kept)",
                                        evr_string(current), target.evr if target else "?"))


def check_transaction(s, bundle, plan):
    """yum's own answer, with every repo disabled, before anything changes."""
    if plan.nothing_to_do:
        return Check("transaction", "pass", T("nothing to change: all packages already "
                                              "installed"))
    script = write_shell_script(s, plan)
    cmd = ["yum", "-y", "--disablerepo=*", "--nogpgcheck", "--setopt=tsflags=test",
           "--setopt=skip_broken=0", "shell", script]
    rc, out = s.run(cmd, check=False, quiet=True)
    result = parse_yum_output(out)
    plan.extra_removals = result["extra_removals"]
    if result["missing"]:
        needs = layout(", ".join(["%s"] * len(result["missing"][:4])), *[
            T("%s (needed by %s)", cap, by) for cap, by in result["missing"][:4]])
        s.result["missing_dependencies"] = [
            {"requires": cap, "needed_by": by} for cap, by in result["missing"]]
        return Check("transaction", "fail", T("this host lacks what the bundle needs: %s", needs),
                     T("the bundle was built for %s (closure %s): on this host run "
                       "`./install.sh inventory -o host.json`, carry host.json back to the "
                       "connected machine and rebuild with `airdock build --baseline-from "
                       "host.json` (same options), or install those packages from this host's "
                       "own media", bundle.target.get("baseline", "?"),
                       bundle.target.get("closure", "?")))
    if result["conflicts"]:
        return Check("transaction", "fail", T("yum reports a conflict: %s",
                                              result["conflicts"][0]),
                     T("remove the conflicting package first (yum remove ...) and run check "
                       "again"))
    if not result["ok"]:
        return Check("transaction", "fail", T("the yum test transaction failed: %s",
                                              last_error_line(out) or T("see the log")),
                     T("read the log, fix it and run check again"))
    summary = T("%d to install, %d to upgrade, %d to remove", len(plan.install),
                len(plan.upgrade), len(plan.remove) + len(plan.extra_removals))
    if plan.extra_removals:
        return Check("transaction", "warn", T("yum test transaction OK (%s); it also removes %s, "
                                              "which need the removed packages", summary,
                                              ", ".join(plan.extra_removals)),
                     T("if you still need them, do not install this bundle"))
    return Check("transaction", "pass",
                 T("yum test transaction OK, every repo disabled (%s)", summary))



# =====================================================================================
# the bundle
# =====================================================================================


class Package(object):
    def __init__(self, entry, root):
        self.entry = entry
        self.name = entry["name"]
        self.epoch = int(entry.get("epoch") or 0)
        self.version = entry["version"]
        self.release = entry["release"]
        self.arch = entry["arch"]
        self.file = entry["file"]
        self.size = entry.get("size")
        self.sha256 = entry.get("sha256")
        self.signing_key = entry.get("signing_key")
        self.requested = bool(entry.get("requested"))
        self.path = os.path.join(root, self.file)

    @property
    def evr_tuple(self):
        return (self.epoch, self.version, self.release)

    @property
    def evr(self):
        return evr_string(self.evr_tuple)

    @property
    def nevra(self):
        return "%s-%s.%s" % (self.name, self.evr, self.arch)


class Key(object):
    def __init__(self, entry, root):
        self.file = entry.get("file", "")
        self.path = os.path.join(root, self.file)
        self.manifest_fingerprint = (entry.get("fingerprint") or "").replace(" ", "").upper()
        self.manifest_ids = [k.lower() for k in entry.get("key_ids", [])]
        keys = []
        try:
            with open(self.path, "rb") as handle:
                keys = openpgp_keys(handle.read())
        except Exception:  # unreadable or not a key: the signatures check says so
            keys = []
        self.fingerprint = keys[0]["fingerprint"] if keys else None
        self.key_ids = [k["key_id"] for k in keys] or self.manifest_ids
        if self.fingerprint:
            self.short_id = self.fingerprint[-8:].lower()
        else:
            self.short_id = (self.manifest_ids[0] if self.manifest_ids else "00000000")[-8:]


class Bundle(object):
    def __init__(self, root, manifest, manifest_sha256):
        self.root = root
        self.manifest = manifest
        self.manifest_sha256 = manifest_sha256
        self.name = manifest.get("name") or os.path.basename(root)
        self.docker_version = manifest.get("docker_version", "?")
        self.target = manifest.get("target") or {}
        self.arch = self.target.get("arch", "?")
        self.packages = [Package(p, root) for p in manifest.get("packages", [])]
        self.images = list(manifest.get("images") or [])
        self.keys = [Key(k, root) for k in manifest.get("keys", [])]
        self.remove = list(manifest.get("remove") or [])
        self.conflict_names = None  # bundle_conflicts() fills it once

    def path(self, rel):
        return os.path.join(self.root, rel)


class Trust(object):
    """What vouches for a bundle: publisher keys this host trusts, and what the check found."""

    def __init__(self):
        self.root = []          # openpgp_keys dicts, each with a "source"
        self.given = []         # (path, keys) of --trust-key files: install stores them
        self.fingerprints = []  # --trust-fingerprint: trust keys/publisher.asc with these
        self.verified = None    # primary fingerprint of the trusted key that signed
        self.signer = None      # who signed, trusted or not
        self.sums_sha256 = None

    @property
    def exists(self):
        return bool(self.root or self.fingerprints)

    @property
    def label(self):
        if self.verified:
            return "signed-by %s" % self.verified
        return "unverified" if self.signer else "unsigned"

    def describe(self):
        sources = sorted(set(k["source"] for k in self.root))
        if self.fingerprints:
            sources.append("--trust-fingerprint")
        return ", ".join(sources)

    def source_of(self, fingerprint):
        for key in self.root:
            if key["primary"] == fingerprint:
                return T("trusted: %s", key["source"])
        return T("trusted: %s", "--trust-fingerprint")


def load_trust(s, args):
    trust = Trust()
    files = []
    if os.path.isdir(TRUST_DIR):
        files = [(os.path.join(TRUST_DIR, n), os.path.join(TRUST_DIR, n))
                 for n in sorted(os.listdir(TRUST_DIR)) if n.endswith(".asc")]
    files += [(path, "--trust-key %s" % path) for path in getattr(args, "trust_key", [])]
    for path, source in files:
        try:
            with open(path, "rb") as handle:
                keys = [k for k in openpgp_keys(handle.read()) if k.get("n")]
        except (IOError, OSError, ValueError, TypeError, IndexError, struct.error):
            keys = []
        if not keys:
            raise Failure(T("%s is not a readable OpenPGP RSA public key", path),
                          T("give the publisher's ASCII-armoured public key (gpg --armor "
                            "--export)"))
        for key in keys:
            key["source"] = source
        trust.root.extend(keys)
        if source.startswith("--trust-key"):
            trust.given.append((path, keys))
    for value in getattr(args, "trust_fingerprint", []):
        fpr = value.replace(" ", "").upper()
        if not re.match(r"^[0-9A-F]{40}$", fpr):
            raise Failure(T("--trust-fingerprint %s is not a 40-hex fingerprint", value),
                          T("copy the full fingerprint the publisher gave (gpg --fingerprint)"), 2)
        trust.fingerprints.append(fpr)
    return trust


def publisher_keys(bundle):
    """The bundle's own keys/publisher.asc: never trusted by itself, only matched against a
    --trust-fingerprint or shown to the operator."""
    try:
        with open(bundle.path("keys/publisher.asc"), "rb") as handle:
            return openpgp_keys(handle.read())
    except (IOError, OSError, ValueError):
        return []


def load_bundle(s, root, required=True):
    """Read, validate (validate_manifest) and model manifest.json.  A manifest that cannot be
    used is one Failure line (exit 1): the installer runs as root and the bundle is input."""
    root = os.path.abspath(root)
    path = os.path.join(root, "manifest.json")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MANIFEST_MAX_BYTES + 1)
    except (IOError, OSError) as exc:
        if not required:
            return None
        raise Failure(T("cannot read %s: %s", path, exc.strerror or exc_text(exc)),
                      T("run install.sh from the unpacked bundle folder (or pass --bundle DIR)"))
    damaged = T("the bundle is damaged or was altered: copy it again from the source, or "
                "rebuild it")
    if len(data) > MANIFEST_MAX_BYTES:
        raise Failure(T("%s is larger than %s, which no airdock bundle's manifest is",
                        path, human_size(MANIFEST_MAX_BYTES)), damaged)
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (ValueError, RuntimeError) as exc:  # RuntimeError: nested too deep to parse
        raise Failure(T("%s is not valid JSON (%s)", path, one_line(exc_text(exc))), damaged)
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise Failure(T("%s is not an airdock bundle manifest", path), T("re-copy the bundle"))
    try:
        check_format_version(manifest.get("format_version"))
        validate_manifest(manifest)
    except ManifestProblem as exc:
        # what does not fit stays in the schema's own (English) words: field paths and shapes
        raise Failure(T("%s is malformed: %s", path, exc_text(exc)), damaged)
    bundle = Bundle(root, manifest, hashlib.sha256(data).hexdigest())
    s.result["bundle"] = {"name": bundle.name, "docker_version": bundle.docker_version,
                          "arch": bundle.arch, "path": root}
    return bundle


def check_format_version(version):
    """An int this installer knows; a newer one means a newer airdock made the bundle."""
    if not isinstance(version, INT_TYPES) or isinstance(version, bool):
        raise ManifestProblem("format_version is %s, not an integer" % shown(version))
    if version in KNOWN_FORMAT_VERSIONS:
        return
    knows = ", ".join(str(v) for v in KNOWN_FORMAT_VERSIONS)
    if version > max(KNOWN_FORMAT_VERSIONS):
        raise Failure(T("this bundle was made by a newer airdock (manifest format_version %d; "
                        "this installer knows %s)", version, knows),
                      T("run the install.sh inside that bundle: each bundle carries its own "
                        "installer"))
    raise Failure(T("the bundle's manifest has format_version %d, which no airdock writes (this "
                    "installer knows %s)", version, knows),
                  T("the bundle is damaged or was altered: copy it again from the source"))


# What the manifest's strings must look like (the shapes rpm, yum, docker and the builder use,
# as builder/names.py checks them): ASCII, no whitespace, no control character, no "/" in a
# name; \Z, not $, so that a trailing newline does not slip through.
NAME_RE = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9._+-]*\Z")
VERSION_RE = re.compile(r"^[A-Za-z0-9._+~^]+\Z")
FILE_NAME = r"[A-Za-z0-9_+][A-Za-z0-9._+~^-]*"
BUNDLE_NAME_RE = re.compile("^" + FILE_NAME + r"\Z")
RPM_FILE_RE = re.compile("^rpms/" + FILE_NAME + r"\.rpm\Z")
IMAGE_FILE_RE = re.compile("^images/" + FILE_NAME + r"\.tar\Z")
KEY_FILE_RE = re.compile("^keys/" + FILE_NAME + r"\.asc\Z")
SHA256_RE = re.compile(r"^[0-9a-f]{64}\Z")
IMAGE_ID_RE = re.compile(r"^sha256:[0-9a-f]{64}\Z")
FINGERPRINT_RE = re.compile(r"^[0-9A-Fa-f]{40}\Z")
KEY_ID_RE = re.compile(r"^[0-9A-Fa-f]{16}\Z")
IMAGE_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*\Z")  # never an option (-...)
TEXT_RE = re.compile(r"^[ -~]*\Z")  # printable ASCII: text that is only shown

NAME_SHAPE = "a package name (letters, digits and ._+-)"
VERSION_SHAPE = "an RPM version (letters, digits and ._+~^)"
FILE_SHAPE = "a plain name (letters, digits and ._+~^-)"
IN_FOLDER_SHAPE = "%s/<name>.%s with <name> " + FILE_SHAPE


class ManifestProblem(Exception):
    """What in manifest.json does not fit its schema (load_bundle makes it a Failure)."""


def validate_manifest(manifest):
    """Walk manifest.json's schema (docs/bundle-format.md) for everything the installer uses:
    required keys, types, lists of objects, names, versions and file names of the shapes above,
    known architectures, sizes and epochs as integers >= 0.  Raises ManifestProblem naming the
    first thing that does not fit; keys the installer does not use are ignored."""
    top = "the manifest"
    text_field(manifest, "name", top, BUNDLE_NAME_RE, FILE_SHAPE, required=False)
    text_field(manifest, "docker_version", top, VERSION_RE, VERSION_SHAPE)
    target = object_field(manifest, "target", top)
    arch = text_field(target, "arch", "target", None, "")
    if arch not in KNOWN_ARCHES:
        raise ManifestProblem("target.arch is %s, not an architecture this installer knows (%s)"
                              % (shown(arch), ", ".join(KNOWN_ARCHES)))
    for key in ("baseline", "closure"):  # shown in messages
        text_field(target, key, "target", TEXT_RE, "printable text", required=False)
    for index, name in enumerate(list_field(manifest, "requested", top, required=False)):
        check_value(name, "requested[%d]" % index, NAME_RE, NAME_SHAPE)
    for index, name in enumerate(list_field(manifest, "remove", top, required=False)):
        check_value(name, "remove[%d]" % index, NAME_RE, NAME_SHAPE)
    packages = list_field(manifest, "packages", top)
    if not packages:
        raise ManifestProblem("packages is empty: the bundle holds no RPM")
    files = set()
    for index, entry in enumerate(packages):
        where = "packages[%d]" % index
        expect(isinstance(entry, dict), where, entry, "an object")
        name = text_field(entry, "name", where, NAME_RE, NAME_SHAPE)
        where = "%s (%s)" % (where, name)
        int_field(entry, "epoch", where)
        text_field(entry, "version", where, VERSION_RE, VERSION_SHAPE)
        text_field(entry, "release", where, VERSION_RE, VERSION_SHAPE.replace("version", "release"))
        pkg_arch = text_field(entry, "arch", where, None, "")
        expect(pkg_arch in (arch, "noarch"), where + ".arch", pkg_arch,
               "%s or noarch (the bundle's target.arch)" % arch)
        files.add(unique_file(entry, where, RPM_FILE_RE, IN_FOLDER_SHAPE % ("rpms", "rpm"), files))
        int_field(entry, "size", where)
        text_field(entry, "sha256", where, SHA256_RE, "64 lowercase hex digits")
        if entry.get("signing_key") is not None:
            text_field(entry, "signing_key", where, KEY_ID_RE, "a 16-hex-digit key ID")
        if "requested" in entry:
            expect(isinstance(entry["requested"], bool), where + ".requested", entry["requested"],
                   "true or false")
    for index, entry in enumerate(list_field(manifest, "keys", top)):
        where = "keys[%d]" % index
        expect(isinstance(entry, dict), where, entry, "an object")
        files.add(unique_file(entry, where, KEY_FILE_RE, IN_FOLDER_SHAPE % ("keys", "asc"), files))
        text_field(entry, "fingerprint", where, FINGERPRINT_RE, "a 40-hex-digit fingerprint")
        for number, key_id in enumerate(list_field(entry, "key_ids", where, required=False)):
            check_value(key_id, "%s.key_ids[%d]" % (where, number), KEY_ID_RE,
                        "a 16-hex-digit key ID")
    for index, entry in enumerate(list_field(manifest, "images", top, required=False)):
        where = "images[%d]" % index
        expect(isinstance(entry, dict), where, entry, "an object")
        tag = text_field(entry, "repo_tag", where, IMAGE_REF_RE, "an image name:tag")
        where = "%s (%s)" % (where, tag)
        files.add(unique_file(entry, where, IMAGE_FILE_RE, IN_FOLDER_SHAPE % ("images", "tar"),
                              files))
        int_field(entry, "size", where)
        text_field(entry, "sha256", where, SHA256_RE, "64 lowercase hex digits")
        if entry.get("config_digest") is not None:
            text_field(entry, "config_digest", where, IMAGE_ID_RE, "sha256:<64 lowercase hex>")


def expect(ok, where, value, wanted):
    if not ok:
        raise ManifestProblem("%s is %s, not %s" % (where, shown(value), wanted))


def check_value(value, where, pattern, wanted):
    expect(isinstance(value, TEXT_TYPES) and 0 < len(value) <= 512 and
           (pattern is None or pattern.match(value)), where, value, wanted or "a string")
    return value


def present(obj, key, where, required):
    if key in obj:
        return True
    if required:
        raise ManifestProblem("%s has no \"%s\"" % (where, key))
    return False


def text_field(obj, key, where, pattern, wanted, required=True):
    if not present(obj, key, where, required):
        return None
    return check_value(obj[key], "%s.%s" % (where, key) if where != "the manifest" else key,
                       pattern, wanted)


def int_field(obj, key, where, required=True):
    if not present(obj, key, where, required):
        return None
    value = obj[key]
    expect(isinstance(value, INT_TYPES) and not isinstance(value, bool) and value >= 0,
           "%s.%s" % (where, key), value, "an integer >= 0")
    return value


def list_field(obj, key, where, required=True):
    if not present(obj, key, where, required):
        return []
    expect(isinstance(obj[key], list), key if where == "the manifest" else "%s.%s" % (where, key),
           obj[key], "a list")
    return obj[key]


def object_field(obj, key, where):
    present(obj, key, where, True)
    expect(isinstance(obj[key], dict), key, obj[key], "an object")
    return obj[key]


def unique_file(entry, where, pattern, wanted, seen):
    rel = text_field(entry, "file", where, pattern, wanted)
    if rel in seen:
        raise ManifestProblem("%s.file %s is listed twice" % (where, shown(rel)))
    return rel


def shown(value):
    """A manifest value in a message: JSON (control characters escaped), cut short; lists and
    objects only by their kind."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = json.dumps(value)
    return text if len(text) <= 72 else text[:69] + "..."


def verify_bundle_files(bundle):
    """(problems, files verified, files present but not listed)."""
    sums_path = bundle.path("SHA256SUMS")
    try:
        with open(sums_path, "rb") as handle:
            text = handle.read().decode("utf-8", "replace")
    except (IOError, OSError) as exc:
        return ["cannot read SHA256SUMS (%s)" % (exc.strerror or exc)], 0, []
    listed = {}
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = re.match(r"^([0-9a-fA-F]{64}) [ *](.+)$", line)
        rel = match.group(2) if match else ""
        if not match or rel.startswith("/") or ".." in rel.split("/"):
            problems.append(T("SHA256SUMS line %d is malformed", number))
            continue
        listed[rel] = match.group(1).lower()
    for rel in sorted(listed):
        path = bundle.path(rel)
        if not os.path.isfile(path):
            problems.append(T("%s is missing", rel))
            continue
        actual = file_sha256(path)
        if actual != listed[rel]:
            problems.append(T("%s: sha256 %s, SHA256SUMS says %s", rel, actual, listed[rel]))
    expected = [(p.file, p.sha256) for p in bundle.packages]
    expected += [(i.get("file"), i.get("sha256")) for i in bundle.images]
    expected += [(k.file, None) for k in bundle.keys]
    expected += [("manifest.json", None)]
    for rel, digest in expected:
        if rel not in listed:
            problems.append(T("%s is not listed in SHA256SUMS", rel))
        elif digest and digest.lower() != listed[rel]:
            problems.append(T("%s: manifest.json and SHA256SUMS disagree", rel))
    extra = []
    for folder in ("rpms", "images", "keys"):
        for rel in walk_files(bundle.root, folder):
            if rel not in listed:
                extra.append(rel)
    return problems, len(listed), extra


# =====================================================================================
# the plan: what the one transaction installs, upgrades and removes
# =====================================================================================


class Plan(object):
    def __init__(self):
        self.install = []       # Package: not installed yet
        self.upgrade = []       # (Package, installed EVR string)
        self.present = []       # Package: this EVR is installed
        self.downgrade = []     # like newer, for docker's own packages: refused
        self.remove = []        # installed NEVRAs that conflict
        self.extra_removals = []  # what yum adds to the removals (dependents), from the test run
        self.docker_ce_installed = None
        self.packages = []

    @property
    def nothing_to_do(self):
        return not (self.install or self.upgrade or self.remove)

    def package(self, name):
        for pkg in self.packages:
            if pkg.name == name:
                return pkg
        return None

    def managed_names(self):
        """What uninstall may remove: what this install added, plus docker's own packages
        (upgraded or already there).  An upgraded base package (policycoreutils) was the
        host's before and stays the host's."""
        ours = [p for p, _ in self.upgrade] + self.present
        return [p.name for p in self.install] + [
            p.name for p in ours if p.name in DOCKER_PACKAGES or p.requested]


def make_plan(s, bundle, host):
    plan = Plan()
    plan.packages = bundle.packages
    names = [p.name for p in bundle.packages]
    conflict_names = bundle_conflicts(s, bundle)
    # The manifest's remove list adds nothing here: check_remove_policy allows in it only
    # names that are candidates anyway.
    candidates = set(OLD_DOCKER_PACKAGES) | set(KNOWN_CONFLICTS) | set(conflict_names)
    candidates -= set(names)
    installed = host.installed(sorted(set(names) | candidates | set(["docker-ce"])))
    for pkg in bundle.packages:
        have = installed.get(pkg.name)
        if not have:
            plan.install.append(pkg)
            continue
        current = max_evr(have)
        cmp = evr_compare(pkg.evr_tuple, current)
        if cmp > 0:
            plan.upgrade.append((pkg, evr_string(current)))
        elif cmp == 0:
            plan.present.append(pkg)
        elif pkg.name in DOCKER_PACKAGES:
            plan.downgrade.append((pkg, evr_string(current)))
        # else: a dependency the host already has in a newer version: left alone
    for name in sorted(candidates):
        for evr in installed.get(name, []):
            plan.remove.append(nevra_string(name, evr))
    if installed.get("docker-ce"):
        plan.docker_ce_installed = max_evr(installed["docker-ce"])
    return plan


def bundle_conflicts(s, bundle):
    """Names the bundle's RPMs Conflict with or Obsolete (rpm -qp; read-only), asked once."""
    if bundle.conflict_names is not None:
        return bundle.conflict_names
    bundle.conflict_names = []
    files = [p.path for p in bundle.packages if os.path.isfile(p.path)]
    if not files:
        return []
    rc, out = s.run(["rpm", "-qp", "--nosignature", "--qf",
                     "[C %{CONFLICTNAME}\\n][O %{OBSOLETENAME}\\n]"] + files,
                    check=False, quiet=True, stderr=False)
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("C", "O"):
            names.add(parts[1])
    bundle.conflict_names = sorted(names)
    return bundle.conflict_names


def write_shell_script(s, plan):
    """The yum shell script: install first (yum and dnf refuse local files after a remove),
    then remove, then run: one transaction."""
    lines = []
    paths = [p.path for p in plan.install] + [p.path for p, _ in plan.upgrade]
    if paths:
        lines.append("install " + " ".join(shell_quote(p) for p in paths))
    if plan.remove:
        lines.append("remove " + " ".join(shell_quote(nevra_nvra(n)) for n in plan.remove))
    lines.append("run")
    handle, path = tempfile.mkstemp(prefix="airdock-yum-", suffix=".txt")
    os.write(handle, ("\n".join(lines) + "\n").encode("utf-8"))
    os.close(handle)
    s.cleanup.append(path)
    s.log("yum shell script %s:\n  %s" % (path, "\n  ".join(lines)))
    return path


def transaction_problems(plan, host):
    problems = []
    wanted = [p for p in plan.install] + [p for p, _ in plan.upgrade]
    installed = host.installed(sorted(set([p.name for p in wanted] + [
        nevra_name(n) for n in plan.remove])))
    for pkg in wanted:
        if not any(evr_compare(pkg.evr_tuple, evr) == 0 for evr in installed.get(pkg.name, [])):
            problems.append("%s is not installed" % pkg.nevra)
    for nevra in plan.remove:
        name = nevra_name(nevra)
        if any(nevra_string(name, evr) == nevra for evr in installed.get(name, [])):
            problems.append("%s is still installed" % nevra)
    return problems


def remove_keys(s, names):
    for name in names:
        s.run(["rpm", "-e", name], change=True, check=False)


def needed_by_others(s, host, nevras):
    """Which of nevras must stay because packages outside the set need them: rpm -e --test,
    repeated until it passes.  Docker's own packages are never kept silently."""
    keep = []
    candidates = list(nevras)
    for _ in range(len(nevras) + 1):
        if not candidates:
            break
        rc, out = s.run(["rpm", "-e", "--test"] + [nevra_nvra(n) for n in candidates],
                        check=False, quiet=True)
        if rc == 0:
            break
        needs = re.findall(r"^\s*(.+?) is needed by \(installed\) (\S+)", out, re.M)
        blockers = {}
        for cap, by in needs:
            for provider in host.what_provides(cap.split()[0]):
                if provider in candidates:
                    blockers.setdefault(provider, by)
        core = [n for n in blockers if nevra_name(n) in DOCKER_PACKAGES]
        if core:
            raise Failure(T("cannot uninstall: %s needs %s, and airdock did not install it",
                            blockers[core[0]], nevra_name(core[0])),
                          T("remove %s first (yum remove), then run uninstall again",
                            blockers[core[0]]))
        if not blockers:
            raise Failure(T("rpm refuses to remove the docker packages: %s",
                            last_error_line(out)),
                          T("see the log; nothing was removed"))
        for nevra, by in sorted(blockers.items()):
            keep.append((nevra, T("needed by %s", by)))

            candidates.remove(nevra)
    return keep


# =====================================================================================
# host facts
# =====================================================================================


class Host(object):
    """What the installer reads from the host (cached), through files and rpm."""

    def __init__(self, s):
        self.s = s
        self.euid = os.geteuid()
        self.machine = os.uname()[4]
        self._installed = {}

    def read_first(self, paths):
        for path in paths:
            try:
                with open(path, "rb") as handle:
                    text = handle.read().decode("utf-8", "replace")
                if text.strip():
                    return text
            except (IOError, OSError):
                continue
        return None

    def os_release(self):
        text = self.read_first((OS_RELEASE,))
        if text:
            return parse_os_release(text)
        return parse_release_file(self.read_first(OS_RELEASE_FALLBACKS) or "")

    def kernel_release(self):
        return (self.read_first((KERNEL_RELEASE,)) or "").strip()

    def has(self, tool):
        return which(tool) is not None

    def selinux_mode(self):
        enforce = self.read_first(("/sys/fs/selinux/enforce",))
        if enforce is not None:
            return "enforcing" if enforce.strip() == "1" else "permissive"
        config = self.read_first(("/etc/selinux/config",)) or ""
        match = re.search(r"^\s*SELINUX\s*=\s*(\w+)", config, re.M)
        if match and match.group(1).lower() != "disabled":
            return T("%s in /etc/selinux/config, not active now", match.group(1).lower())
        return "disabled"

    def forget(self):
        self._installed = {}

    def installed(self, names):
        """{name: [(epoch, version, release, arch), ...]} for the names that are installed."""
        todo = [n for n in names if n not in self._installed]
        if todo:
            for name in todo:
                self._installed[name] = []
            rc, out = self.s.run(["rpm", "-q", "--qf",
                                  "%{NAME}\\t%{EPOCH}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n"]
                                 + todo, check=False, quiet=True, stderr=False)
            for line in out.splitlines():
                parts = line.split("\t")
                if len(parts) == 5 and parts[0] in self._installed:
                    epoch = 0 if parts[1] in ("(none)", "") else int(parts[1])
                    self._installed[parts[0]].append((epoch, parts[2], parts[3], parts[4]))
        return dict((n, self._installed[n]) for n in names if self._installed.get(n))

    def all_packages(self):
        rc, out = self.s.run(["rpm", "-qa", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\\n"],
                             check=False, quiet=True, stderr=False)
        return sorted(line.strip() for line in out.splitlines() if line.strip())

    def signing_key_ids(self):
        """Key ids (lower-case hex) that signed the installed packages."""
        rc, out = self.s.run(["rpm", "-qa", "--qf", "%{SIGPGP:pgpsig}|%{RSAHEADER:pgpsig}\\n"],
                             check=False, quiet=True, stderr=False)
        return set(m.lower() for m in re.findall(r"Key ID ([0-9a-fA-F]{8,16})", out))

    def imported_key_ids(self):
        rc, out = self.s.run(["rpm", "-q", "gpg-pubkey", "--qf", "%{VERSION}\\n"], check=False,
                             quiet=True, stderr=False)
        return set(line.strip().lower() for line in out.splitlines()
                   if re.match(r"^[0-9a-fA-F]{8}$", line.strip()))

    def what_provides(self, capability):
        rc, out = self.s.run(["rpm", "-q", "--whatprovides", capability, "--qf",
                              "%{NAME}\\t%{EPOCH}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n"],
                             check=False, quiet=True, stderr=False)
        found = []
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) == 5:
                epoch = 0 if parts[1] in ("(none)", "") else int(parts[1])
                found.append(nevra_string(parts[0], (epoch, parts[2], parts[3], parts[4])))
        return found


# One record per installed package, fields apart by ASCII unit separators and records by
# record separators: no name, EVR or arch holds them, so a field cannot shift into the next
# (rpm copies the raw bytes of its --qf through; 4.11 knows no escape for them).
INVENTORY_QUERYFORMAT = "%{NAME}\x1f%{EPOCHNUM}\x1f%{VERSION}\x1f%{RELEASE}\x1f%{ARCH}\x1e"


def host_inventory(s, host):
    """The INVENTORY_FORMAT document: what the builder needs to solve for exactly this host."""
    rc, out = s.run(["rpm", "-qa", "--qf", INVENTORY_QUERYFORMAT], check=False, quiet=True,
                    stderr=False)
    packages = parse_inventory_records(out) if rc == 0 else None
    if packages is None:
        raise Failure(T("`rpm -qa` failed or printed something unexpected (exit %d): %s", rc,
                        one_line(last_error_line(s.last_stderr)) or T("no message")),
                      T("check that `rpm -qa` works on this host (rpm --rebuilddb repairs a "
                        "damaged database), then run the inventory again"))
    docker_names = set(DOCKER_PACKAGES) | set(OLD_DOCKER_PACKAGES) | set(KNOWN_CONFLICTS)
    docker = [p for p in packages if p["name"] in docker_names]
    return {
        "format": INVENTORY_FORMAT,
        "hostname": socket.gethostname(),
        "os_release": host.os_release(),
        "kernel": host.kernel_release(),
        "arch": host.machine,
        "python": platform.python_version(),
        "docker": {
            "present": bool(docker),
            "old_docker": any(p["name"] in OLD_DOCKER_PACKAGES for p in docker),
            "packages": sorted(nevra_string(p["name"], (p["epoch"], p["version"], p["release"],
                                                        p["arch"])) for p in docker),
        },
        "packages": packages,
    }


def parse_inventory_records(out):
    """rpm -qa with INVENTORY_QUERYFORMAT -> [{name, epoch, version, release, arch}] sorted
    by name and arch (then EVR: kernels come in several versions); None when a record is
    not five fields with a numeric epoch."""
    records = out.split("\x1e")
    if records and records[-1].strip() == "":
        records.pop()
    packages = []
    for record in records:
        fields = record.split("\x1f")
        if len(fields) != 5 or not re.match(r"^[0-9]{1,10}\Z", fields[1]) or not fields[0]:
            return None
        packages.append({"name": fields[0], "epoch": int(fields[1]), "version": fields[2],
                         "release": fields[3], "arch": fields[4]})
    packages.sort(key=lambda p: (p["name"], p["arch"], p["epoch"], p["version"], p["release"]))
    return packages


def parse_os_release(text):
    info = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        info[key.strip()] = value
    return info


def parse_release_file(text):
    """CentOS 6 has no /etc/os-release: 'CentOS release 6.10 (Final)'."""
    match = re.search(r"^(.*?) (?:Linux )?release (\d+(?:\.\d+)*)", text.strip())
    if not match:
        return {}
    name = match.group(1).strip()
    lowered = name.lower()
    os_id = "centos" if "centos" in lowered else (
        "rhel" if "red hat" in lowered else lowered.split()[0] if lowered else "")
    return {"ID": os_id, "VERSION_ID": match.group(2), "PRETTY_NAME": text.strip().splitlines()[0]}


def parse_kernel_release(release):
    """'3.10.0-1160.el7.x86_64' -> (3, 10, 0, 1160); None when unreadable."""
    match = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:-(\d+))?", release or "")
    if not match:
        return None
    build = match.group(4)
    return (int(match.group(1)), int(match.group(2)), int(match.group(3) or 0),
            int(build) if build is not None else None)


def normalize_arch(arch):
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)


def existing_parent(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def free_bytes(path):
    try:
        st = os.statvfs(existing_parent(path))
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


def mount_of(path):
    """(mount point, fstype) of the filesystem holding path, from /proc/mounts."""
    real = os.path.realpath(path)
    best = None
    try:
        with open("/proc/mounts") as handle:
            lines = handle.read().splitlines()
    except (IOError, OSError):
        return None
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        if real == point or real.startswith(point.rstrip("/") + "/"):
            if best is None or len(point) >= len(best[0]):
                best = (point, parts[2])
    return best


def mounts_under(path):
    """Mount points strictly below path (deleting through them would delete their contents)."""
    prefix = os.path.realpath(path).rstrip("/") + "/"
    found = []
    try:
        with open("/proc/mounts") as handle:
            for line in handle.read().splitlines():
                parts = line.split()
                if len(parts) >= 2 and parts[1].replace("\\040", " ").startswith(prefix):
                    found.append(parts[1].replace("\\040", " "))
    except (IOError, OSError):
        pass
    return found


def which(tool):
    for folder in os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(os.pathsep):
        path = os.path.join(folder, tool)
        if folder and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


# =====================================================================================
# rpm, yum and docker plumbing
# =====================================================================================


def rpm_checksig(s, bundle):
    """rpm -K every package against a temporary rpmdb that holds only the bundle's keys."""
    tmp = tempfile.mkdtemp(prefix="airdock-rpmdb-")
    try:
        s.run(["rpm", "--dbpath", tmp, "--initdb"], check=False, quiet=True)
        for key in bundle.keys:
            s.run(["rpm", "--dbpath", tmp, "--import", key.path], quiet=True,
                  fail=T("cannot read the key %s", key.file), fix=T("re-copy the bundle"))
        files = [p.path for p in bundle.packages]
        rc, out = s.run(["rpm", "--dbpath", tmp, "-K"] + files, check=False, quiet=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    bad = []
    for pkg in bundle.packages:
        line = ""
        for candidate in out.splitlines():
            if candidate.startswith(pkg.path + ":"):
                line = candidate[len(pkg.path) + 1:].strip()
        lowered = line.lower()
        signed = "pgp" in lowered or "gpg" in lowered or "signatures" in lowered
        if not line or "NOT OK" in line or "BAD" in line or not signed:
            bad.append(layout("%s: %s", pkg.file, line or T("no answer from rpm -K")))
    if rc != 0 and not bad:
        bad.append(T("rpm -K failed: %s", last_error_line(out)))
    return bad


# yum's "Error:" prefix, also as a zh_CN yum prints it ("\u9519\u8bef\uff1a", full-width
# colon; yum-transcripts T9 in tests/data/real-el7/), and its conflict error (T5).
YUM_ERROR_PACKAGE = re.compile(u"^\\s*(?:Error|\u9519\u8bef)\\s*[:\uff1a]\\s*Package: (\\S+)")
YUM_ERROR_CONFLICT = re.compile(u"^\\s*(?:Error|\u9519\u8bef)\\s*[:\uff1a]\\s*\\S+ conflicts\\b")


def parse_yum_output(text):
    """Problems in yum's (EL7) or dnf's output: missing requirements, conflicts, success."""
    missing = []
    conflicts = []
    extra = []
    package = None
    section = None
    for line in text.splitlines():
        match = YUM_ERROR_PACKAGE.match(line)
        if match:
            package = match.group(1)
            continue
        match = re.match(r"^\s*Requires: (.+?)\s*$", line)
        if match and package:
            missing.append((match.group(1), package))
            continue
        match = re.search(r"nothing provides (.+?) needed by (\S+)", line)
        if match:
            missing.append((match.group(1), match.group(2)))
            continue
        match = re.search(r"Missing Dependency: (.+?) is needed by package (\S+)", line)
        if match:
            missing.append((match.group(1), match.group(2)))
            continue
        if ("conflicts with" in line or YUM_ERROR_CONFLICT.match(line)) and (
                line.strip() not in conflicts):
            conflicts.append(line.strip().lstrip("- ").strip())
        if re.match(r"^\s*(Removing for dependencies|Removing dependent packages):", line):
            section = "extra"
            continue
        if section == "extra":
            fields = line.split()
            if not fields or line.strip().endswith(":") or line.startswith("="):
                section = None
            elif len(fields) >= 3 and line.startswith(" "):
                extra.append(fields[0])
    seen = set()
    unique = []
    for item in missing:
        if item not in seen:
            seen.add(item)
            unique.append(item)
    ok = "transaction test succeeded" in text.lower()
    return {"missing": unique, "conflicts": conflicts, "extra_removals": extra, "ok": ok}


def yum_history_last_id(s):
    """The newest yum history ID, or None."""
    return yum_history_newest(s)[0]


def yum_history_newest(s):
    """(newest yum history ID, None) or (None, why there is none)."""
    rc, out = s.run(["yum", "--disablerepo=*", "history", "list"], check=False, quiet=True)
    ids = [int(m) for m in re.findall(r"^\s*(\d+)\s+\|", out, re.M)]
    if ids:
        return max(ids), None
    if rc != 0:
        return None, "`yum history list` failed (exit %d): %s" % (rc, one_line(
            last_error_line(out)))
    return None, "`yum history list` lists no transaction"


def last_error_line(text):
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    # yum ends a failed resolution with hints ("You could try using --skip-broken to work
    # around the problem"): the error is above them (yum-transcripts T1, T4 in tests/data)
    lines = [ln for ln in lines if not ln.startswith("You could try ")] or lines
    for line in reversed(lines):
        lowered = line.lower()
        if "error" in lowered or "fail" in lowered or "problem" in lowered or "not ok" in lowered:
            return line
    return lines[-1] if lines else ""


def docker_image_id(s, repo_tag):
    rc, out = s.run(["docker", "image", "inspect", "--format", "{{.Id}}", repo_tag],
                    check=False, quiet=True, stderr=False)
    value = out.strip()
    return value if rc == 0 and value.startswith("sha256:") else None


def image_name(repo_tag):
    name = repo_tag.rsplit(":", 1)[0] if ":" in repo_tag.split("/")[-1] else repo_tag
    return name.split("/")[-1]


# =====================================================================================
# RPM versions (rpmvercmp) and NEVRA strings
# =====================================================================================


def rpmvercmp(a, b):
    """RPM's version comparison (rpmvercmp.c), tilde and caret included."""
    if a == b:
        return 0
    while a or b:
        a = re.sub(r"^[^A-Za-z0-9~^]+", "", a)
        b = re.sub(r"^[^A-Za-z0-9~^]+", "", b)
        if a.startswith("~") or b.startswith("~"):
            if not a.startswith("~"):
                return 1
            if not b.startswith("~"):
                return -1
            a, b = a[1:], b[1:]
            continue
        if a.startswith("^") or b.startswith("^"):
            if not a:
                return -1
            if not b:
                return 1
            if not a.startswith("^"):
                return 1
            if not b.startswith("^"):
                return -1
            a, b = a[1:], b[1:]
            continue
        if not (a and b):
            break
        if a[0].isdigit():
            seg_a = re.match(r"^[0-9]*", a).group(0)
            seg_b = re.match(r"^[0-9]*", b).group(0)
            numeric = True
        else:
            seg_a = re.match(r"^[A-Za-z]*", a).group(0)
            seg_b = re.match(r"^[A-Za-z]*", b).group(0)
            numeric = False
        if not seg_b:
            return 1 if numeric else -1
        a, b = a[len(seg_a):], b[len(seg_b):]
        if numeric:
            seg_a, seg_b = seg_a.lstrip("0"), seg_b.lstrip("0")
            if len(seg_a) != len(seg_b):
                return 1 if len(seg_a) > len(seg_b) else -1
        if seg_a != seg_b:
            return 1 if seg_a > seg_b else -1
    if not a and not b:
        return 0
    return 1 if a else -1


def evr_compare(left, right):
    """Compare (epoch, version, release[, arch]) tuples like rpm."""
    if int(left[0] or 0) != int(right[0] or 0):
        return 1 if int(left[0] or 0) > int(right[0] or 0) else -1
    result = rpmvercmp(left[1], right[1])
    if result:
        return result
    return rpmvercmp(left[2], right[2])


def max_evr(evrs):
    return sorted(evrs, key=functools.cmp_to_key(evr_compare))[-1]


def evr_string(evr):
    epoch = int(evr[0] or 0)
    return ("%d:" % epoch if epoch else "") + "%s-%s" % (evr[1], evr[2])


def nevra_string(name, evr):
    return "%s-%s.%s" % (name, evr_string(evr), evr[3])


def split_nevra(nevra):
    """'docker-ce-3:26.1.4-1.el7.x86_64' -> (name, epoch, version, release, arch)."""
    match = re.match(r"^(.+)-(?:(\d+):)?([^-]+)-([^-]+)\.([^.]+)$", nevra)
    if not match:
        return (nevra, 0, "", "", "")
    return (match.group(1), int(match.group(2) or 0), match.group(3), match.group(4),
            match.group(5))


def nevra_name(nevra):
    return split_nevra(nevra)[0]


def nevra_nvra(nevra):
    """name-version-release.arch (what rpm -e and yum accept on every version)."""
    name, _, version, release, arch = split_nevra(nevra)
    return "%s-%s-%s.%s" % (name, version, release, arch) if version else nevra


# =====================================================================================
# OpenPGP public keys: fingerprints and key IDs (RFC 4880 v4 keys)
# =====================================================================================


def openpgp_packets(data, block="PUBLIC KEY BLOCK"):
    """[(tag, body)] of an ASCII-armoured (``-----BEGIN PGP <block>-----``) or binary blob."""
    text = data.decode("ascii", "replace") if isinstance(data, bytes) else data
    begin, end = "-----BEGIN PGP %s-----" % block, "-----END PGP %s-----" % block
    if begin in text:
        body = text.split(begin, 1)[1].split(end, 1)[0]
        lines = body.strip().splitlines()
        if "" in [ln.strip() for ln in lines]:  # skip armor headers up to the blank line
            lines = lines[[ln.strip() for ln in lines].index("") + 1:]
        lines = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("=")]
        raw = bytearray(base64.b64decode("".join(lines)))
    else:
        raw = bytearray(data)
    packets = []
    pos = 0
    while pos < len(raw):
        first = raw[pos]
        if not first & 0x80:
            raise ValueError("not an OpenPGP packet")
        if first & 0x40:
            tag = first & 0x3F
            octet = raw[pos + 1]
            if octet < 192:
                length, header = octet, 2
            elif octet < 224:
                length, header = ((octet - 192) << 8) + raw[pos + 2] + 192, 3
            elif octet == 255:
                length = struct.unpack(">I", bytes(raw[pos + 2:pos + 6]))[0]
                header = 6
            else:
                raise ValueError("partial packet lengths are not used in keys or signatures")
        else:
            tag = (first >> 2) & 0x0F
            kind = first & 0x03
            if kind == 0:
                length, header = raw[pos + 1], 2
            elif kind == 1:
                length, header = struct.unpack(">H", bytes(raw[pos + 1:pos + 3]))[0], 3
            elif kind == 2:
                length, header = struct.unpack(">I", bytes(raw[pos + 1:pos + 5]))[0], 5
            else:
                length, header = len(raw) - pos - 1, 1
        if pos + header + length > len(raw):
            raise ValueError("truncated OpenPGP packet")
        packets.append((tag, raw[pos + header:pos + header + length]))
        pos += header + length
    return packets


def openpgp_keys(data):
    """[{fingerprint, key_id, primary, n, e}] for the primary key and subkeys of a key file
    (n and e only for RSA keys, the only ones whose signatures the installer checks)."""
    keys = []
    primary = None
    for tag, body in openpgp_packets(data):
        if tag not in (6, 14) or not body or body[0] != 4:
            continue
        digest = hashlib.sha1(b"\x99" + struct.pack(">H", len(body)) + bytes(body))
        fingerprint = digest.hexdigest().upper()
        if tag == 6:
            primary = fingerprint
        key = {"fingerprint": fingerprint, "key_id": fingerprint[-16:].lower(),
               "primary": primary or fingerprint, "n": None, "e": None}
        if len(body) > 6 and body[5] in (1, 3):  # RSA
            key["n"], at = read_mpi(body, 6)
            key["e"], _ = read_mpi(body, at)
        keys.append(key)
    return keys


def read_mpi(buf, at):
    bits = struct.unpack(">H", bytes(buf[at:at + 2]))[0]
    end = at + 2 + (bits + 7) // 8
    if end > len(buf):
        raise ValueError("truncated number in an OpenPGP packet")
    return int(binascii.hexlify(bytes(buf[at + 2:end])) or b"0", 16), end


# DigestInfo prefixes of EMSA-PKCS1-v1_5 (RFC 4880 5.2.2), by OpenPGP hash algorithm id.
SIGNATURE_HASHES = {
    8: ("sha256", "3031300d060960864801650304020105000420"),
    9: ("sha384", "3041300d060960864801650304020205000430"),
    10: ("sha512", "3051300d060960864801650304020305000440"),
    11: ("sha224", "302d300d06096086480165030402040500041c"),
}


def verify_signature(data, signature, keys):
    """Check a detached v4 RSA signature over ``data`` against ``keys`` (openpgp_keys).

    Returns the primary fingerprint of the key that made it; raises ValueError naming why
    not.  Why by hand: the host's gpg would need a temporary keyring and its output parsed,
    and may be missing; a v4 RSA signature is one packet and one pow(), the same on Python
    2.7 and 3, so every host checks bundles the same way (the tests hold it to gpg's verdict).
    """
    packets = [(t, b) for t, b in openpgp_packets(signature, "SIGNATURE") if t == 2]
    if len(packets) != 1:
        raise ValueError("not a single OpenPGP signature")
    body = packets[0][1]
    if len(body) < 6 or body[0] != 4:
        raise ValueError("not a version 4 signature")
    sig_type, algorithm, hash_id = body[1], body[2], body[3]
    if sig_type != 0:
        raise ValueError("not a signature over a binary document")
    if algorithm not in (1, 3) or hash_id not in SIGNATURE_HASHES:
        raise ValueError("signature algorithm %d/%d is not RSA with SHA-2" % (algorithm, hash_id))
    hashed_len = struct.unpack(">H", bytes(body[4:6]))[0]
    hashed = body[6:6 + hashed_len]
    at = 6 + hashed_len
    unhashed_len = struct.unpack(">H", bytes(body[at:at + 2]))[0]
    unhashed = body[at + 2:at + 2 + unhashed_len]
    at += 2 + unhashed_len
    left16 = bytes(body[at:at + 2])
    value, _ = read_mpi(body, at + 2)
    issuers = signature_issuers(hashed) + signature_issuers(unhashed)
    name, prefix = SIGNATURE_HASHES[hash_id]
    digest = hashlib.new(name, bytes(data))
    digest.update(bytes(body[:6 + hashed_len]))
    digest.update(b"\x04\xff" + struct.pack(">I", 6 + hashed_len))
    hashed_value = digest.digest()
    if hashed_value[:2] != left16:
        raise ValueError("the data does not match the signature (altered)")
    candidates = [k for k in keys if k.get("n") and (not issuers or any(
        k["fingerprint"].lower().endswith(i) for i in issuers))]
    if not candidates:
        raise ValueError("made by key %s, which is not trusted" % (issuers[0] if issuers else "?"))
    for key in candidates:
        size = (key["n"].bit_length() + 7) // 8
        info = binascii.unhexlify(prefix) + hashed_value
        expected = b"\x00\x01" + b"\xff" * (size - len(info) - 3) + b"\x00" + info
        got = binascii.unhexlify("%0*x" % (2 * size, pow(value, key["e"], key["n"])))
        if got == expected:
            return key["primary"]
    raise ValueError("bad signature (the data or the signature was altered)")


def signature_issuers(subpackets):
    """Issuer key ids / fingerprints (lower-case hex) named in signature subpackets."""
    found = []
    pos = 0
    while pos < len(subpackets):
        first = subpackets[pos]
        if first < 192:
            length, header = first, 1
        elif first < 255:
            length, header = ((first - 192) << 8) + subpackets[pos + 1] + 192, 2
        else:
            length = struct.unpack(">I", bytes(subpackets[pos + 1:pos + 5]))[0]
            header = 5
        kind = subpackets[pos + header] & 0x7F if length else 0
        content = bytes(subpackets[pos + header + 1:pos + header + length])
        if kind == 16:
            found.append(binascii.hexlify(content).decode("ascii"))
        elif kind == 33 and content:
            found.append(binascii.hexlify(content[1:]).decode("ascii"))
        pos += header + length
    return found


# =====================================================================================
# receipt and files
# =====================================================================================


def read_receipt(s):
    try:
        with open(RECEIPT, "rb") as handle:
            receipt = json.loads(handle.read().decode("utf-8"))
    except (IOError, OSError):
        return None
    except (ValueError, RuntimeError) as exc:
        s.log("unreadable receipt %s: %s" % (RECEIPT, exc))
        return None
    if not isinstance(receipt, dict) or not isinstance(receipt.get("transaction", {}), dict):
        s.log("unreadable receipt %s: not an airdock receipt" % RECEIPT)
        return None
    return receipt


def summarize_receipt(receipt):
    return {"time": receipt.get("time"), "bundle": receipt.get("bundle", {}).get("name"),
            "transaction": receipt.get("transaction", {}).get("id")}


def write_file_atomic(path, data):
    """data (bytes) into path through a temporary file beside it and a rename: a reader
    sees the old file or the whole new one, never half of it."""
    folder = os.path.dirname(path) or "."
    handle, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=folder)
    try:
        written = 0
        while written < len(data):
            written += os.write(handle, data[written:])
        os.fsync(handle)
        os.close(handle)
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.close(handle)
        except OSError:
            pass
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json_atomic(path, data):
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        os.makedirs(folder, 0o755)
    tmp = path + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write((json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    os.rename(tmp, path)


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(1024 * 1024)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


def walk_files(root, folder):
    found = []
    top = os.path.join(root, folder)
    for dirpath, _dirs, filenames in os.walk(top):
        for name in filenames:
            found.append(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
    return sorted(found)


def tree_size(path):
    total = 0
    for dirpath, _dirs, filenames in os.walk(path):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def remove_tree(path):
    """Delete path; when it is a mount point, empty it and keep the empty folder."""
    if os.path.islink(path) or not os.path.isdir(path):
        os.remove(path)
        return
    for name in os.listdir(path):
        child = os.path.join(path, name)
        if os.path.isdir(child) and not os.path.islink(child):
            shutil.rmtree(child)
        else:
            os.remove(child)
    try:
        os.rmdir(path)
    except OSError as exc:
        if exc.errno not in (errno.EBUSY, errno.EPERM, errno.EACCES):
            raise


def human_size(size):
    size = float(size or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return ("%d %s" % (size, unit)) if unit == "B" else ("%.1f %s" % (size, unit))
        size /= 1024.0
    return "%.1f TiB" % size


def one_line(text):
    """Text on one line: control characters (a newline in a file's words) become spaces."""
    return " ".join(re.sub(r"[\x00-\x1f\x7f]", " ", text or "").split())


def printable(text):
    """Text from an untrusted file, for a message: anything but printable ASCII becomes ?."""
    return re.sub(r"[^ -~]", "?", text or "")


def short_digest(digest):
    return (digest or "").replace("sha256:", "")[:12]


def utc_now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# =====================================================================================
# the installer lock: one run changing the host at a time
# =====================================================================================


class InstallerLock(object):
    """LOCK_FILE (/var/lib/airdock/lock), an flock(2) lock held for the whole run.

    install and uninstall hold it exclusively.  check (and --dry-run, which changes nothing
    either) holds it shared: checks may run side by side, but never beside an install or
    uninstall - a check during a transaction would read a half-changed rpmdb and report it
    as the host's state - and an install does not start under a running check.  status
    takes no lock: it only reads, and shows a half state as what it is.

    A run that cannot have the lock fails at once, changing nothing, with one line naming the
    other run's pid (written into the file); it never waits.  The kernel drops the lock when
    its process dies, even by SIGKILL.  The file exists only while held: the last holder
    removes it (and /var/lib/airdock when it made that folder and it is still empty), and a
    run that locked a file another run has just removed locks the new one instead.  Not root:
    no lock (the root check fails anyway).  A filesystem that cannot lock: a warning, and the
    run goes on unprotected.
    """

    def __init__(self, path=LOCK_FILE):
        self.path = path
        self.fd = None
        self.made_folder = False

    def acquire(self, s, exclusive):
        if os.geteuid() != 0:
            s.log("lock: not root, no lock taken")
            return False
        folder = os.path.dirname(self.path)
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        for _ in range(50):
            try:
                if not os.path.isdir(folder):
                    os.makedirs(folder, 0o755)
                    self.made_folder = True
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            except (IOError, OSError) as exc:
                if exc.errno in (errno.ENOENT, errno.EEXIST):  # a finishing run tidied up
                    continue
                return self.unprotected(s, exc)
            fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.fcntl(fd, fcntl.F_GETFD) | fcntl.FD_CLOEXEC)
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    os.close(fd)
                    return self.unprotected(s, exc)
                pid = self.holder(fd)
                os.close(fd)
                s.log("lock: %s is held by pid %s" % (self.path, pid or "?"))
                raise Failure(T("another airdock installer (pid %d) is running", pid) if pid
                              else T("another airdock installer is running"),
                              T("wait for it to finish"))
            if self.is_current(fd):
                self.fd = fd
                self.write_pid(exclusive)
                s.log("lock: %s held %s" % (self.path, "exclusively" if exclusive else "shared"))
                return True
            os.close(fd)  # locked a file a finishing run had just removed: lock the new one
        return self.unprotected(s, OSError("the lock file kept being replaced"))

    def unprotected(self, s, exc):
        s.say(T("warning: cannot lock %s (%s): nothing stops a second installer run meanwhile",
                self.path, getattr(exc, "strerror", None) or exc_text(exc)))
        return False

    def is_current(self, fd):
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        mine = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)

    def write_pid(self, exclusive):
        try:
            if exclusive:
                os.ftruncate(self.fd, 0)
            elif os.fstat(self.fd).st_size:
                return  # another check's pid is there; either names a running installer
            os.lseek(self.fd, 0, 0)
            os.write(self.fd, ("%d\n" % os.getpid()).encode("ascii"))
        except OSError:
            pass

    def holder(self, fd):
        """The pid in the lock file (its holder may not have written it yet: wait a little)."""
        for _ in range(20):
            try:
                os.lseek(fd, 0, 0)
                match = re.match(r"^\s*([0-9]{1,9})\s", to_text(os.read(fd, 64)) or "")
            except OSError:
                match = None
            if match:
                return int(match.group(1))
            time.sleep(0.05)
        return None

    def release(self):
        if self.fd is None:
            return
        try:
            # Remove the file only when no other run holds it (a shared holder, or one that
            # got in between): an exclusive lock we can take now says so.
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if self.is_current(self.fd):
                os.unlink(self.path)
        except (IOError, OSError):
            pass
        os.close(self.fd)
        self.fd = None
        if self.made_folder:
            try:
                os.rmdir(os.path.dirname(self.path))  # only when still empty
            except OSError:
                pass


# =====================================================================================
# running commands, output and the log
# =====================================================================================


class Failure(Exception):
    """One line for the operator: what went wrong and what to do.  message and fix are the
    English text (the log, --json); text and fix_text what the operator reads (Msg)."""

    def __init__(self, message, fix=None, code=1):
        Exception.__init__(self, english(message))
        self.text, self.fix_text, self.code = message, fix, code
        self.message = english(message)
        self.fix = english(fix) if fix is not None else None


def exc_text(exc):
    """An exception's words as text, whatever they hold (Python 2's str() of a unicode
    message with non-ASCII characters raises)."""
    try:
        return as_text(str(exc))
    except UnicodeError:
        return as_text(repr(exc))


def to_text(data):
    if isinstance(data, bytes) and not isinstance(data, str):
        return data.decode("utf-8", "replace")
    return data


# ---- the operator's language (the catalogue, ZH, is at the top of the file)

PY2 = sys.version_info[0] == 2
CHINESE_PROBE = u"\u4e2d\u6587"  # what a Chinese-capable encoding must encode


class Msg(object):
    """An English message and its arguments, put into words only when shown: in the
    operator's language on the terminal, in English in the log and in --json."""

    def __init__(self, fmt, args):
        self.fmt, self.args = fmt, args

    def render(self, lang="en"):
        fmt = as_text(ZH.get(self.fmt, self.fmt) if lang == "zh" else self.fmt)
        if not self.args:
            return fmt
        return fmt % tuple(render(a, lang) for a in self.args)

    def __str__(self):
        return native(self.render())

    def __unicode__(self):  # Python 2
        return self.render()

    def __repr__(self):
        return "T(%r)" % (self.fmt,)


class Column(Msg):
    """A table cell: its text padded to width columns (CJK characters take two)."""

    def __init__(self, value, width):
        Msg.__init__(self, "%s", (value,))
        self.width = width

    def render(self, lang="en"):
        return pad(Msg.render(self, lang), self.width)


class CheckLabel(Msg):
    """A check's name: its id in English (as --json has it), its ZH label in Chinese."""

    def __init__(self, name):
        Msg.__init__(self, "check:" + name, ())
        self.name = name

    def render(self, lang="en"):
        return Msg.render(self, lang) if lang == "zh" else as_text(self.name)


def T(fmt, *args):
    """A message for the operator: fmt is the English text (a key of ZH) with %-placeholders."""
    return Msg(fmt, args)


def render(value, lang="en"):
    """A Msg (or plain text, or a number) as text in lang; None stays None."""
    if isinstance(value, Msg):
        return value.render(lang)
    return as_text(value)


def english(value):
    return render(value, "en")


def as_text(value):
    """Text as this Python's text type: Python 2's byte strings are decoded (UTF-8)."""
    if PY2 and isinstance(value, str):
        return value.decode("utf-8", "replace")
    return value


def native(text):
    """Text as this Python's str (UTF-8 bytes on Python 2)."""
    if PY2 and not isinstance(text, str):
        return text.encode("utf-8")
    return text


def locale_language(environ):
    """The messages locale as gettext orders its variables: the first non-empty of LC_ALL,
    LC_MESSAGES, LANG; "zh" for zh_CN, zh_SG, zh_TW..., "en" for anything else."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name)
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def output_encoding(stream, environ):
    """The charset the terminal reads: the locale's own (LC_ALL, LC_CTYPE, LANG:
    zh_CN.UTF-8 -> UTF-8, zh_CN.gb18030 -> gb18030) when it names one, else what Python
    found for the stream (zh_CN alone means GB2312 where that locale is installed, ASCII
    under LANG=C)."""
    for name in ("LC_ALL", "LC_CTYPE", "LANG"):
        value = environ.get(name)
        if value:
            codeset = value.split("@", 1)[0].partition(".")[2]
            if codeset and known_encoding(codeset):
                return codeset
            break
    found = getattr(stream, "encoding", None)
    if not found:
        try:
            import locale
            found = locale.getpreferredencoding()
        except Exception:  # no usable locale at all
            found = None
    return found if found and known_encoding(found) else "ascii"


def known_encoding(name):
    try:
        import codecs
        codecs.lookup(name)
        return True
    except (LookupError, TypeError):
        return False


def can_show_chinese(encoding):
    try:
        CHINESE_PROBE.encode(encoding)
        return True
    except (UnicodeError, LookupError):
        return False


def choose_language(forced, environ, encodings):
    """(language, note): --lang wins over the locale; Chinese the terminal cannot show falls
    back to English (a console under LANG=C would print only question marks), and the note
    says why."""
    wanted = forced or locale_language(environ)
    if wanted == "zh":
        unable = [e for e in encodings if not can_show_chinese(e)]
        if unable:
            return "en", ("the terminal's encoding (%s) cannot show Chinese: messages are in "
                          "English (a UTF-8 locale shows them: LANG=zh_CN.UTF-8)" % unable[0])
    return wanted, None


def write_bytes(stream, data):
    """Bytes to a text stream: through its buffer on Python 3 (whatever encoding Python
    chose for it), as they are on Python 2.  A closed pipe loses the output, not the run."""
    try:
        target = getattr(stream, "buffer", None)
        if target is not None:
            stream.flush()
            target.write(data)
            target.flush()
        elif PY2:
            stream.write(data)
            stream.flush()
        else:
            stream.write(data.decode(getattr(stream, "encoding", None) or "utf-8", "replace"))
            stream.flush()
    except (IOError, OSError, ValueError, UnicodeError):
        pass


WIDE = "WF"  # east_asian_width classes a terminal shows two columns wide


def display_width(text):
    """Columns a terminal gives text (CJK characters take two)."""
    import unicodedata
    return sum(2 if unicodedata.east_asian_width(c) in WIDE else 1 for c in text)


def pad(text, width):
    text = as_text(text)
    return text + u" " * max(0, width - display_width(text))


def layout(fmt, *args):
    """Columns and punctuation only, no words (a table row): the same in every language."""
    return Msg(fmt, args)


def join_lines(items):
    """Several messages as one, a line each (each in the operator's language)."""
    return Msg("\n".join(["%s"] * len(items)), tuple(items))


def count(number, noun):
    """ "1 package", "3 packages": English singular and plural; ZH has one entry per noun."""
    return T("%d " + noun + ("" if number == 1 else "s"), number)


class Session(object):
    """Options, output (human or --json), the log, and running commands (--dry-run aware)."""

    def __init__(self, args):
        self.args = args
        self.dry_run = bool(getattr(args, "dry_run", False))
        self.json = bool(getattr(args, "json", False))
        self.quiet_result = False  # inventory without -o: its document is the whole stdout
        self.last_stderr = ""  # of the last command run with stderr=False
        self.result = {"command": args.command, "dry_run": self.dry_run, "ok": False,
                       "installer_version": VERSION}
        self.cleanup = []
        self.lock = None
        self.log_path = args.log
        self.log_error = None
        self._log = None
        self.env = dict(os.environ)
        self.env.update({"LC_ALL": "C", "LANG": "C"})
        self.encodings = {}
        for stream in (sys.stdout, sys.stderr):
            self.encodings[id(stream)] = output_encoding(stream, os.environ)
        self.lang, note = choose_language(getattr(args, "lang", None), os.environ,
                                          sorted(set(self.encodings.values())))
        self.log("=== airdock installer %s: %s (python %s, pid %d, language %s)" % (
            VERSION, " ".join(sys.argv), sys.version.split()[0], os.getpid(), self.lang))
        if note:
            self.log(note)
            if getattr(args, "lang", None):  # asked for by name: say why it is not Chinese
                self._write(sys.stderr, "airdock: " + note)

    # ---- output (text: a Msg, or plain text such as a package name)
    def say(self, text, err=False, prefix=""):
        self.log(prefix + english(text))
        if err:
            self._write(sys.stderr, prefix + render(text, self.lang))
        elif not self.json:
            self._write(sys.stdout, prefix + render(text, self.lang))

    def step(self, text):
        self.say(text, prefix="==> ")

    def show_check(self, check):
        self.log("check %s: %s: %s%s" % (check.name, check.status, check.message,
                                         " (fix: %s)" % check.fix if check.fix else ""))
        if self.json:
            return
        status, name = check.status, render(CheckLabel(check.name), self.lang)
        if self.lang == "zh":  # in English the status is its id, as in --json
            status = render(T("check-status:" + check.status), self.lang)
        self._write(sys.stdout, u"  [%s] %s %s" % (pad(status, 4), pad(name, 12),
                                                   render(check.text, self.lang)))
        if check.fix_text and check.status in ("fail", "warn"):
            self._write(sys.stdout, u"  %s %s %s" % (u" " * 6, pad(u"", 12), render(
                T("fix: %s", check.fix_text), self.lang)))

    def _write(self, stream, text):
        encoding = self.encodings.get(id(stream)) or output_encoding(stream, os.environ)
        write_bytes(stream, (as_text(text) + u"\n").encode(encoding, "replace"))

    def failed(self, exc):
        where = self.log_path if self._log else "no log: %s" % english(
            self.log_error or T("not written"))
        self.log("FAILED: airdock: %s%s (log: %s)" % (
            exc.message, "; " + exc.fix if exc.fix else "", where))
        self.result["error"] = exc.message
        self.result["fix"] = exc.fix
        if self._log:
            line = T("airdock: %s; %s (log: %s)", exc.text, exc.fix_text, where) if exc.fix_text \
                else T("airdock: %s (log: %s)", exc.text, where)
        else:
            line = T("airdock: %s; %s (no log: %s)", exc.text, exc.fix_text, self.log_error or
                     T("not written")) if exc.fix_text \
                else T("airdock: %s (no log: %s)", exc.text, self.log_error or T("not written"))
        self._write(sys.stderr, render(line, self.lang))

    def finish(self, code):
        if self.lock:
            self.lock.release()
        for path in self.cleanup:
            try:
                os.remove(path)
            except OSError:
                pass
        self.result["ok"] = code == 0
        self.result["exit_code"] = code
        self.log("=== exit %d" % code)
        if self.json and not self.quiet_result:
            self._write(sys.stdout, json.dumps(self.result, indent=2, sort_keys=True,
                                               separators=(",", ": ")))
        if self._log:
            self._log.close()

    # ---- the log
    def log(self, text):
        if self._log is None and self.log_error is None:
            try:
                folder = os.path.dirname(os.path.abspath(self.log_path))
                if not os.path.isdir(folder):
                    os.makedirs(folder, 0o755)
                self._log = open(self.log_path, "ab")
            except (IOError, OSError) as exc:
                self.log_error = T("cannot write %s: %s", self.log_path,
                                   exc.strerror or exc_text(exc))
        if self._log:
            data = time.strftime("%Y-%m-%d %H:%M:%S ", time.gmtime()) + english(text) + "\n"
            if not isinstance(data, bytes):  # str on Python 3, unicode on Python 2
                data = data.encode("utf-8", "replace")
            self._log.write(data)
            self._log.flush()

    # ---- commands
    def run(self, cmd, change=False, check=True, quiet=False, stderr=True, fail=None, fix=None):
        """Run cmd (a list) -> (exit code, output).  change=True commands only print under
        --dry-run.  check=True turns a non-zero exit into Failure(fail or cmd, fix)."""
        shown = " ".join(shell_quote(c) for c in cmd)
        if change and self.dry_run:
            self.say(T("  would run: %s", shown))
            return 0, ""
        if change and not quiet:
            self.say("  $ %s" % shown)
        devnull = open(os.devnull, "rb")
        try:
            proc = subprocess.Popen(cmd, stdin=devnull, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT if stderr else subprocess.PIPE,
                                    close_fds=True, env=self.env)
            out, err = proc.communicate()
            code = proc.returncode
        except OSError as exc:
            out, err, code = ("%s: %s" % (cmd[0], exc.strerror or exc)).encode("utf-8"), b"", 127
        finally:
            devnull.close()
        out, err = to_text(out) or "", to_text(err) or ""
        self.last_stderr = err
        self.log("$ %s -> %d\n%s%s" % (shown, code, indent(out), indent(err)))
        if code != 0 and check:
            raise Failure(fail or T("`%s` failed (exit %d): %s", shown, code,
                                    last_error_line(out + err)), fix or T("see the log"))

        return code, out


def indent(text):
    if not text:
        return ""
    return "".join("    " + line + "\n" for line in text.rstrip("\n").splitlines())


if __name__ == "__main__":
    sys.exit(main())
