"""The mutation-testing runner: a notebook's tests run against the package, so a bug in `waypoint_rl/<module>.py`
fails them (nbdev_test alone would run the notebook's own definitions and miss it)."""
import shutil, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))
from mutest import selected_tests  # noqa: E402
from mutate import _node  # noqa: E402

def _copy(dest):
    for d in ('waypoint_rl', 'nbs', 'tools'):
        shutil.copytree(ROOT/d, dest/d, ignore=shutil.ignore_patterns('__pycache__'))
    shutil.copy2(ROOT/'settings.ini', dest/'settings.ini')
    return dest

def _mutest(copy, module):
    return subprocess.run([sys.executable, str(copy/'tools'/'mutest.py'), module, '--no-tests-dir'],
                          capture_output=True, text=True, cwd=copy)

def test_a_bug_in_the_package_fails_the_notebook_tests(tmp_path):
    copy = _copy(tmp_path)
    r = _mutest(copy, 'metrics')
    assert r.returncode == 0, r.stdout + r.stderr
    src = copy/'waypoint_rl'/'metrics.py'
    code = src.read_text()
    assert code.count('return fde(pred, target) > miss_threshold') == 1
    src.write_text(code.replace('fde(pred, target) > miss_threshold', 'fde(pred, target) >= miss_threshold'))
    r = _mutest(copy, 'metrics')
    assert r.returncode == 1 and 'notebook failed' in r.stdout, r.stdout + r.stderr
    assert 'misses' in r.stderr

def test_the_copy_is_tested_not_the_installed_package(tmp_path):
    copy = _copy(tmp_path)
    (copy/'waypoint_rl'/'selection.py').write_text('raise ImportError("the copy was imported")\n')
    r = _mutest(copy, 'selection')
    assert r.returncode == 1 and 'the copy was imported' in r.stdout + r.stderr

def test_tests_are_chosen_by_the_lines_they_run():
    cov = {'10': ['tests/test_x.py::test_a'], '11': ['tests/test_x.py::test_b', 'tests/test_x.py::test_a'], '12': ['*']}
    files = ['tests/test_x.py']
    assert selected_tests(cov, '10', files) == ['tests/test_x.py::test_a']
    assert selected_tests(cov, '10-11', files) == ['tests/test_x.py::test_a', 'tests/test_x.py::test_b']
    assert selected_tests(cov, '11-12', files) == files     # a line run outside any one test: every file
    assert selected_tests(cov, '13', files) == []           # no test runs it
    assert _node('') == '*'
    assert _node('tests/test_env.py::test_cli[a-b] (call)') == 'tests/test_env.py::test_cli[a-b]'
    assert _node('tests/test_env.py::test_cli (setup)') == 'tests/test_env.py::test_cli'
