"""Session fixtures shared by the whole suite: the local cluster and a real Swift server."""

pytest_plugins = ["tests.fixtures.cluster", "tests.fixtures.swift"]
