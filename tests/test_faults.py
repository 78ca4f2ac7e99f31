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


# -- concurrent and crashed builds ------------------------------------------------------------


# -- error lines ------------------------------------------------------------------------------
