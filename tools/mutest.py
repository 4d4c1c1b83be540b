"""The test command for mutation testing (dev only): one module's notebook tests *against the package*, then its tests/.

    python tools/mutest.py env          # exit 0: every test passed (a mutant survived); 1: a test failed

`nbdev_test` runs a notebook's test cells against the notebook's own definitions, so a mutated
`waypoint_rl/<module>.py` would escape them. Here the notebook's non-exported cells run in a namespace
that starts as `vars(waypoint_rl.<module>)`: every function and class they call is the package's. Export
cells are skipped (the package already defines them), as are `#| eval: false` and `#| slow` cells.
Then pytest runs the module's files in `tests/`, stopping at the first failure. Everything runs in this
one process and the package is imported from the folder that holds `tools/` (the working copy being
mutated), not from wherever `waypoint_rl` is installed.
"""
import argparse, json, os, re, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# tests/ files that exercise each module, fastest first (pytest stops at the first failure)
TESTS = {
    'env': ['tests/test_env.py', 'tests/test_env_values.py', 'tests/test_worlds.py', 'tests/test_gym_clients.py',
            'tests/test_cuda_env.py'],                          # (the CUDA files run their CPU tests; CUDA: skipped)
    'ppo': ['tests/test_ppo_core.py', 'tests/test_cuda_ppo.py'],
    'ppo_delta': ['tests/test_ppo_delta.py', 'tests/test_ppo_faults.py', 'tests/test_cuda_ppo.py'],
    'metrics': ['tests/test_metrics.py'],
    'selection': ['tests/test_selection.py'],
}

def notebook_of(module):
    "The notebook in nbs/ whose `#| default_exp` is `module`"
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        if re.search(rf'"#\| default_exp {module}(\\n)?"', nb.read_text()): return nb
    raise SystemExit(f'mutest: no notebook in nbs/ exports waypoint_rl.{module}')

def run_notebook(module, flags=()):
    "Run the test cells of `module`'s notebook in a namespace built from the package module; True when all pass"
    import importlib
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    from nbdev.process import NBProcessor
    nb_path = notebook_of(module)
    nb = NBProcessor(nb_path, procs=[], process=True).nb
    skip = {'slow'} - set(flags)
    def _skip(cell):
        if cell.cell_type != 'code': return True
        d = getattr(cell, 'directives_', {}) or {}
        if any(k.startswith('export') for k in d) or 'default_exp' in d: return True
        if d.get('eval:', [''])[0].lower() == 'false': return True
        return bool(skip & d.keys())
    mod = importlib.import_module(f'waypoint_rl.{module}')
    shell = CaptureShell(nb_path)
    shell.user_ns.update({k: v for k, v in vars(mod).items() if not k.startswith('__')})
    try:
        with working_directory(nb_path.parent): shell.run_all(nb, exc_stop=True, preproc=_skip)
    except Exception:
        sys.stderr.write(shell.prettytb(fname=nb_path) + '\n')
        return False
    return True

def selected_tests(cov, lines, files):
    "The pytest node ids in `cov` that run any of `lines` ('FIRST-LAST'); `files` when one of them is '*'"
    first, _, last = lines.partition('-')
    ids = set()
    for ln in range(int(first), int(last or first) + 1): ids |= set(cov.get(str(ln), []))
    return files if '*' in ids else sorted(ids)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('module', choices=sorted(TESTS), help='the module of waypoint_rl under test')
    p.add_argument('--no-tests-dir', action='store_true', help="only the notebook's tests")
    p.add_argument('--coverage-map', type=Path, help='JSON {line: [pytest node ids]} from `tools/mutate.py`: '
                   'only the tests/ that run the mutated lines are run ("*": all of them)')
    p.add_argument('--lines', default='', help='the mutated lines, FIRST-LAST (with --coverage-map)')
    a = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    os.environ['PYTHONPATH'] = os.pathsep.join([str(ROOT)] + [x for x in [os.environ.get('PYTHONPATH')] if x])
    os.environ['IN_TEST'] = '1'
    os.environ.setdefault('MPLBACKEND', 'Agg')
    t0 = time.time()
    import waypoint_rl
    if Path(waypoint_rl.__file__).resolve().parent != ROOT/'waypoint_rl':
        raise SystemExit(f'mutest: imported {waypoint_rl.__file__}, not the copy in {ROOT}')
    if not run_notebook(a.module): print(f'mutest: notebook failed ({time.time()-t0:.1f} s)'); return 1
    if a.no_tests_dir: return 0
    tests = TESTS[a.module]
    if a.coverage_map:
        tests = selected_tests(json.loads(a.coverage_map.read_text()), a.lines, tests)
        if not tests: print('mutest: no test in tests/ runs these lines'); return 0
    import pytest
    os.chdir(ROOT)
    rc = pytest.main(['-x', '-q', '-p', 'no:cacheprovider', '--no-header', *tests])
    print(f'mutest: tests/ {"passed" if rc == 0 else "failed"} ({time.time()-t0:.1f} s)')
    return 0 if rc == 0 else 1

if __name__ == '__main__': sys.exit(main())
