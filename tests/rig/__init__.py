"""The test rig: real peers (rpmbuild, createrepo_c, dnf, docker-registry, dockerd) driven by the tests."""
