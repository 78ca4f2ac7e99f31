"""The test rig: real peers driven by the tests (rpmbuild, createrepo_c, dnf, registry, dockerd)."""
