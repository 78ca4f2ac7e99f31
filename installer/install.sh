#!/bin/sh
# airdock: run the bundle's installer with the host's own Python (CentOS 7: /usr/bin/python 2.7.5).
# Usage: sudo ./install.sh [check|install|status|uninstall] [options]   (--help for all options)
#        ./install.sh inventory [-o FILE]   this host's packages as JSON (airdock build --baseline-from)
# AIRDOCK_PYTHON=/path/to/python overrides the interpreter search.
here=$(cd "$(dirname "$0")" && pwd) || exit 1
for py in "$AIRDOCK_PYTHON" /usr/bin/python /usr/libexec/platform-python /usr/bin/python3 python3 python; do
    [ -n "$py" ] || continue
    if command -v "$py" >/dev/null 2>&1; then
        exec "$py" "$here/airdock_install.py" "$@"
    fi
done
# The one message before Python runs: Chinese for a zh_* UTF-8 locale (LC_ALL, LC_MESSAGES, LANG).
case "${LC_ALL:-${LC_MESSAGES:-$LANG}}" in
    zh_*.UTF-8 | zh_*.utf8 | zh_*.utf-8)
        echo "install.sh：找不到 Python（查找了 /usr/bin/python、/usr/libexec/platform-python、python3）；请安装 python 或设置 AIRDOCK_PYTHON" >&2 ;;
    *)
        echo "install.sh: no Python found (looked for /usr/bin/python, /usr/libexec/platform-python, python3); install python or set AIRDOCK_PYTHON" >&2 ;;
esac
exit 127
