"""The gmemfs pytest fixture for tests in a checkout of the repository.

The fixture is the plugin of the repository's Python package, python/gmemfs_testing. Once that
is installed (``pip install ./python``) pytest loads the plugin by itself (entry point
``pytest11``) and no conftest.py is needed; this one only makes the checkout's copy available
when it is not installed. See docs/integration-testing.md.
"""
import importlib.metadata
import os
import sys

if not any(ep.name == "gmemfs" for ep in importlib.metadata.entry_points(group="pytest11")):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
    from gmemfs_testing.pytest_plugin import gmemfs, pytest_runtest_makereport  # noqa: E402,F401
