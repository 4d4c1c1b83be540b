"""pytest plugin for `tools/mutate.py`'s coverage map: each line is attributed to the test that ran it.

coverage.py's `dynamic_context = test_function` names only the test function's own frames, so code a test runs
through a fixture would be attributed to no test; here each test's setup, call and teardown run in a context
named by its pytest node id."""
import os, subprocess
import coverage, pytest

_popen_init = subprocess.Popen.__init__

def _popen(self, *args, env=None, **kwargs):
    "Children started with their own `env` (built before the test ran) still learn which test started them"
    if env is not None and 'PYTEST_CURRENT_TEST' in os.environ:
        env = {**env, 'PYTEST_CURRENT_TEST': os.environ['PYTEST_CURRENT_TEST']}
    _popen_init(self, *args, env=env, **kwargs)

subprocess.Popen.__init__ = _popen

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cov = coverage.Coverage.current()
    if cov is not None: cov.switch_context(item.nodeid)
    yield
    if cov is not None: cov.switch_context('')

def pytest_sessionstart(session):
    "Import the mapped modules before any test, so that their import-time lines are nobody's (every test's)"
    import importlib
    from mutest import TESTS
    for m in TESTS: importlib.import_module(f'waypoint_rl.{m}')
