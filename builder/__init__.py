"""airdock: bundle Docker CE and its CentOS 7 dependencies for air-gapped hosts.

The version has one source, pyproject.toml: read here from the installed distribution's
metadata, and stamped into the bundled installer's ``VERSION`` by the builder.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("airdock")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
