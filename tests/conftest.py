"""Registers seald's test harness plugin; its fixtures are described in seald_testing/plugin.py.

sys.path: pyproject's [tool.pytest.ini_options] pythonpath puts tests/ (seald_testing),
tests/assets/ (PDF generators) and softhsm-fixtures/ (fixture_layout) on it.
"""

pytest_plugins = ["seald_testing.plugin"]
