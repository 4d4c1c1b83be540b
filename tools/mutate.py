"""Mutation testing of the core modules with cosmic-ray (dev only; `make mutate`).

    python tools/mutate.py                       # 150 sampled mutants in each core module, 2 workers
    python tools/mutate.py metrics --sample 0    # every mutant of waypoint_rl/metrics.py
    python tools/mutate.py --retest              # run the survivors again (after adding tests)

cosmic-ray enumerates the mutants of `waypoint_rl/<module>.py` into a session database
(`.mutation/<module>-<hash>.sqlite`, one per version of the source) and applies each one; the test
command is `tools/mutest.py <module>`: the module's notebook tests run against the package, then its
files in tests/. A mutant is *killed* when a test fails (or the tests time out) and *survives* when all
pass. Workers run in copies of the working tree (`.mutation/work-<i>/`), so mutants never meet.

The operators are a subset of cosmic-ray's: for each binary operator the nearest wrong one (+ ↔ -,
* ↔ /, ...), comparisons moved across their boundary (< ↔ <=, > ↔ >=) or negated (== ↔ !=, is ↔ is
not, in ↔ not in), unary minus and `not` dropped or added, True ↔ False, and ↔ or, break ↔ continue,
loops that never run, numbers ± 1 and exception types replaced. The full cross product (+ → **, + → <<,
...) multiplies the count by ten and adds little. Results go to `nbs/mutation_results.json`, which the
notebook `14_mutation` prints; the table is printed here too.
"""
import argparse, ast, concurrent.futures as cf, datetime, hashlib, json, os, random, re, shutil, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT/'.mutation'
RESULTS = ROOT/'nbs'/'mutation_results.json'
CORE = ['env', 'ppo', 'ppo_delta', 'metrics', 'selection']
OPERATORS = [
    'ReplaceBinaryOperator_(Add_Sub|Sub_Add|Mul_Div|Div_Mul|FloorDiv_Div|Mod_FloorDiv|Pow_Mul|BitAnd_BitOr|BitOr_BitAnd'
    '|BitXor_BitOr|LShift_RShift|RShift_LShift)',
    'ReplaceComparisonOperator_(Lt_LtE|LtE_Lt|Gt_GtE|GtE_Gt|Eq_NotEq|NotEq_Eq|Is_IsNot|IsNot_Is|In_NotIn|NotIn_In)',
    'ReplaceUnaryOperator_(USub_UAdd|Delete_Not|Delete_USub|Invert_UAdd)', 'AddNot', 'ReplaceTrueWithFalse',
    'ReplaceFalseWithTrue', 'ReplaceAndWithOr', 'ReplaceOrWithAnd', 'ReplaceBreakWithContinue',
    'ReplaceContinueWithBreak', 'ZeroIterationForLoop', 'NumberReplacer', 'ExceptionReplacer']
KEEP = re.compile('core/(' + '|'.join(OPERATORS) + ')$')

def _session(module):
    "The cosmic-ray session database for the current source of `module` (created when missing)"
    src = (ROOT/'waypoint_rl'/f'{module}.py').read_bytes()
    db = WORK/f'{module}-{hashlib.sha1(src).hexdigest()[:10]}.sqlite'
    if not db.exists():
        cfg = WORK/f'{module}.toml'
        cfg.write_text(f'[cosmic-ray]\nmodule-path = "waypoint_rl/{module}.py"\ntimeout = 600.0\n'
                       'excluded-modules = []\n'
                       f'test-command = "{sys.executable} tools/mutest.py {module}"\n\n'
                       '[cosmic-ray.distributor]\nname = "local"\n')
        tmp = db.with_suffix('.tmp')
        tmp.unlink(missing_ok=True)
        subprocess.run([str(Path(sys.executable).parent/'cosmic-ray'), 'init', str(cfg), str(tmp)], cwd=ROOT,
                       check=True)
        tmp.rename(db)
    return db

def _copies(n):
    "`n` copies of the working tree (tracked and untracked, not ignored files) for the workers"
    files = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split('\0')
    out = []
    for i in range(n):
        d = WORK/f'work-{i}'
        shutil.rmtree(d, ignore_errors=True)
        for f in filter(None, files):
            if not (ROOT/f).is_file(): continue
            (d/f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT/f, d/f)
        out.append(d)
    return out

def _test_command(copy, module, cov=None, lines=None):
    cmd = f'{sys.executable} {copy}/tools/mutest.py {module}'
    return cmd + (f' --coverage-map {cov} --lines {lines}' if cov else '')

def _node(ctx):
    "A pytest node id from a coverage context: 'tests/test_x.py::test_f[a]', ' (call)' and the like dropped"
    if not ctx: return '*'  # run at import: no single test to name
    return re.sub(r' \((setup|call|teardown)\)$', '', ctx)

def coverage_map(module, copy):
    """Which tests/ of `module` run each of its lines, {line: [pytest node ids]}, measured once per version of the
    tests and the module with coverage.py, subprocesses included ('*': a line run outside any single test)"""
    import coverage
    from mutest import TESTS
    files = TESTS[module] + [f'waypoint_rl/{module}.py', 'tools/covctx.py']
    key = hashlib.sha1(b''.join((ROOT/f).read_bytes() for f in files)).hexdigest()[:10]
    out = WORK/f'{module}-coverage-{key}.json'
    if out.exists(): return out
    data, rc = WORK/f'coverage-{module}', WORK/f'{module}.coveragerc'
    shutil.rmtree(data, ignore_errors=True); data.mkdir()
    rc.write_text(f'[run]\ninclude = */waypoint_rl/{module}.py\n'
                  f'context = ${{PYTEST_CURRENT_TEST-}}\nparallel = true\ndata_file = {data}/.coverage\n')
    env = dict(os.environ, COVERAGE_PROCESS_START=str(rc), PYTHONPATH=f'{copy}{os.pathsep}{copy}/tools', IN_TEST='1',
               MPLBACKEND='Agg')
    run = lambda cmd, *a: subprocess.run([sys.executable, '-m', 'coverage', cmd, f'--rcfile={rc}', *a], cwd=copy,
                                         env=env, capture_output=True, text=True)
    r = run('run', '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-p', 'covctx', *TESTS[module])
    if r.returncode:
        raise SystemExit(f'mutate: tests/ of {module} fail under coverage:\n{(r.stdout + r.stderr)[-3000:]}')
    run('combine', '-q')
    d = coverage.CoverageData(str(data/'.coverage')); d.read()
    lines = {}
    for f in d.measured_files():
        for ln, ctxs in (d.contexts_by_lineno(f) or {}).items():
            lines.setdefault(str(ln), set()).update(map(_node, ctxs))
    tmp = out.with_suffix('.tmp')
    tmp.write_text(json.dumps({k: sorted(v) for k, v in lines.items()})); tmp.rename(out)
    return out

def _annotations(path):
    "The (start, end) positions of every type annotation in `path`: with postponed evaluation, mutants there are inert"
    spans = []
    for n in ast.walk(ast.parse(path.read_text())):
        anns = ([n.returns] if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) else []) + \
               ([n.annotation] if isinstance(n, (ast.arg, ast.AnnAssign)) else [])
        spans += [((a.lineno, a.col_offset), (a.end_lineno, a.end_col_offset)) for a in anns if a is not None]
    return spans

def _baseline(copy, module):
    "Seconds the unmutated tests take in `copy`; stops when they fail"
    t0 = time.time()
    r = subprocess.run(_test_command(copy, module).split(), capture_output=True, text=True)
    if r.returncode: raise SystemExit(f'mutate: the unmutated tests of {module} fail in {copy}:\n{r.stdout[-3000:]}')
    return time.time() - t0

def _mutated(diff):
    "The first line a unified diff adds: the mutated line"
    return next((x[1:].strip() for x in (diff or '').splitlines() if x.startswith('+') and not x.startswith('+++')), '')

def run_module(module, copies, sample, seed, retest, log, fresh=False, prev=None):
    "Test `module`'s sample of mutants; the counts, the kill rate and the survivors. `prev`: the entry to retest"
    from cosmic_ray.mutating import mutate_and_test
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import MutationSpec, TestOutcome
    db_path = _session(module)
    with use_db(str(db_path), WorkDB.Mode.open) as db:
        inert = _annotations(ROOT/'waypoint_rl'/f'{module}.py')
        def wanted(m): return KEEP.match(m.operator_name) and not any(a <= tuple(m.start_pos) < b for a, b in inert)
        items = sorted((it for it in db.work_items if all(wanted(m) for m in it.mutations)),
                       key=lambda it: [(m.start_pos, m.operator_name, m.occurrence) for m in it.mutations])
        done = {jid: r for jid, r in db.results}
        if fresh and retest:   # a fresh sample was drawn among the untested of its day: retest its survivors
            if not prev: raise SystemExit(f'mutate: no fresh sample of {module} to retest')
            want = {(s['operator'], s['occurrence']) for s in prev['survivors']}
            chosen = [it for it in items if (it.mutations[0].operator_name.split('/')[1], it.mutations[0].occurrence)
                      in want]
        else:
            pool = [it for it in items if it.job_id not in done] if fresh else items   # fresh: never tested
            chosen = random.Random(seed).sample(pool, min(sample, len(pool))) if sample else pool
        todo = chosen if fresh and retest else [it for it in chosen if it.job_id not in done or (
            retest and done[it.job_id].test_outcome == TestOutcome.SURVIVED)]
        timeout = 3 * max(_baseline(c, module) for c in copies) + 30
        cov = coverage_map(module, copies[0])
        log(f'{module}: {len(items)} mutants, {len(chosen)} chosen, {len(todo)} to run (timeout {timeout:.0f} s)')
        def work(it, copy):
            muts = [MutationSpec(copy/m.module_path, m.operator_name, m.occurrence, m.start_pos, m.end_pos)
                    for m in it.mutations]
            t0 = time.time()
            lines = f'{min(m.start_pos[0] for m in muts)}-{max(m.end_pos[0] for m in muts)}'
            return it.job_id, mutate_and_test(muts, _test_command(copy, module, cov, lines), timeout), time.time() - t0
        free = list(copies)
        with cf.ThreadPoolExecutor(len(copies)) as ex:
            running, queue, n = {}, list(todo), 0
            while queue or running:
                while queue and free:
                    c = free.pop(); running[ex.submit(work, queue.pop(0), c)] = c
                fin, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for f in fin:
                    free.append(running.pop(f))
                    jid, res, dt = f.result()
                    res = _relative(res, copies)
                    db.set_result(jid, res); n += 1
                    log(f'{module} {n:4d}/{len(todo)} {(res.test_outcome or res.worker_outcome).value} ({dt:.1f} s)')
        results = {jid: r for jid, r in db.results}
    rows = [(it, results.get(it.job_id)) for it in chosen]
    killed = sum(r is not None and r.test_outcome == TestOutcome.KILLED for _, r in rows)
    survived = [(it, r) for it, r in rows if r is not None and r.test_outcome == TestOutcome.SURVIVED]
    other = sum(r is None or r.test_outcome not in (TestOutcome.KILLED, TestOutcome.SURVIVED) for _, r in rows)
    def _survivor(it, r):
        m = it.mutations[0]
        return dict(line=m.start_pos[0], operator=m.operator_name.split('/')[1], occurrence=m.occurrence,
                    mutated=_mutated(r.diff))
    sampled = len(chosen)
    if fresh and retest: killed, sampled = killed + prev['killed'], prev['sampled']
    return dict(mutants=len(items), sampled=sampled, killed=killed, survived=len(survived), not_run=other,
                kill_rate=round(killed / max(1, killed + len(survived)), 4),
                survivors=sorted((_survivor(it, r) for it, r in survived), key=lambda s: s['line']),
                source_sha1=db_path.stem.split('-')[-1])

def _relative(res, copies):
    "The result with the copies' folders taken out of its diff and output"
    import attrs
    def strip(s):
        for c in copies: s = s.replace(f'{c}/', '') if s else s
        return s
    return attrs.evolve(res, diff=strip(res.diff), output=strip(res.output))

def table(results, bucket='modules'):
    "The per-module kill rates as a markdown table ('modules': the main sample; 'fresh': samples of untested mutants)"
    rows = ['| module | mutants | tested | killed | survived | kill rate |', '|---|---|---|---|---|---|']
    for mod, r in results.get(bucket, {}).items():
        rows.append(f"| {mod} | {r['mutants']} | {r['sampled']} | {r['killed']} | {r['survived']} | "
                    f"{100 * r['kill_rate']:.1f}% |")
    return '\n'.join(rows)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('modules', nargs='*', default=CORE, help=f'modules of waypoint_rl (default: {" ".join(CORE)})')
    p.add_argument('--sample', type=int, default=150, help='mutants tested per module, drawn at random (0: all)')
    p.add_argument('--seed', type=int, default=0, help='seed of the sample')
    p.add_argument('--jobs', type=int, default=2, help='mutants tested at once, each in its own copy of the tree')
    p.add_argument('--retest', action='store_true', help='run the surviving mutants again (after adding tests)')
    p.add_argument('--fresh', action='store_true',
                   help='sample only mutants never tested before: a kill rate not biased by tests written for a sample')
    a = p.parse_args(argv)
    from mutest import TESTS
    bad = [m for m in a.modules if m not in TESTS]
    if bad: p.error(f'modules: unknown {bad}; choose from {sorted(TESTS)}')
    if a.sample < 0 or a.jobs < 1: p.error('--sample must be >= 0 and --jobs >= 1')
    sys.path.insert(0, str(ROOT))
    from waypoint_rl.utils import UserError, run_lock
    try:
        with run_lock(WORK, 'mutation folder'): return _run(a)     # two runs would rebuild each other's copies
    except UserError as e: raise SystemExit(f'mutate: {e}') from None

def _run(a):
    copies = _copies(a.jobs)
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results = dict(tool='cosmic-ray ' + __import__('importlib.metadata').metadata.version('cosmic-ray'),
                   date=datetime.date.today().isoformat(), sample=a.sample, seed=a.seed, operators=OPERATORS,
                   modules=dict(old.get('modules', {})), fresh=dict(old.get('fresh', {})),
                   history=list(old.get('history', [])))
    log = lambda s: print(s, flush=True)
    for mod in a.modules:
        bucket = results.setdefault('fresh' if a.fresh else 'modules', {})
        r = bucket[mod] = run_module(mod, copies, a.sample, a.seed, a.retest, log, a.fresh, bucket.get(mod))
        results.setdefault('history', []).append(dict(
            date=results['date'], module=mod, seed=a.seed, fresh=a.fresh, retest=a.retest,
            **{k: r[k] for k in ('sampled', 'killed', 'survived', 'kill_rate', 'source_sha1')}))
        tmp = RESULTS.with_suffix('.tmp')
        tmp.write_text(json.dumps(results, indent=1) + '\n'); tmp.rename(RESULTS)
    bucket = 'fresh' if a.fresh else 'modules'
    print(table(results, bucket))
    for mod in a.modules:
        for s in results[bucket][mod]['survivors']:
            print(f"survived  {mod}.py:{s['line']:<5} {s['operator']:<40} {s['mutated']}")

if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
