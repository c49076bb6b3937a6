"""Shared fixtures live in tests/fixtures/, one module per concern."""

pytest_plugins = [
    "tests.fixtures.browser",
    "tests.fixtures.demo_model",
    "tests.fixtures.seaweedfs",
    "tests.fixtures.services",
    "tests.fixtures.tiny_chat",
]
