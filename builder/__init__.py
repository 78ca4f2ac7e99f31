"""airdock: bundle Docker CE and its CentOS 7 dependencies for air-gapped hosts."""

__version__ = "0.1.0"
