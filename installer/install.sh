#!/bin/sh
# airdock: run the bundle's installer with the host's own Python (CentOS 7: /usr/bin/python 2.7.5).
# Usage: sudo ./install.sh [check|install|status|uninstall] [options]   (--help for all options)
# AIRDOCK_PYTHON=/path/to/python overrides the interpreter search.
here=$(cd "$(dirname "$0")" && pwd) || exit 1
for py in "$AIRDOCK_PYTHON" /usr/bin/python /usr/libexec/platform-python /usr/bin/python3 python3 python; do
    [ -n "$py" ] || continue
    if command -v "$py" >/dev/null 2>&1; then
        exec "$py" "$here/airdock_install.py" "$@"
    fi
done
echo "install.sh: no Python found (looked for /usr/bin/python, /usr/libexec/platform-python, python3); install python or set AIRDOCK_PYTHON" >&2
exit 127
