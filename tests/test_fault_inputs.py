"""Hostile but fair input to the commands of episodes, SFT, metrics, selection and the demo: mutated episode files,
predictions files, checkpoints and flags. Whatever the input, a command either succeeds or ends with exit code 2
and one line on stderr starting with `error:` (plus `warning:` lines where a command skips files), never a
traceback, and it never replaces a good output file with a bad one. Commands run in this process through their
`cli` wrapper (a fresh process per example would be too slow); one smoke check runs a real console script."""
import contextlib, copy, io, json, os, shutil, subprocess, sys, tempfile
from pathlib import Path
import pytest, torch
from hypothesis import HealthCheck, given, settings, strategies as st
from waypoint_rl.env import ToyWaypointConfig
from waypoint_rl.episodes import write_expert_episodes, wrl_episodes, wrl_drive
from waypoint_rl.policy import WaypointNet, WaypointNetConfig, DeltaHead, save_sft_checkpoint, save_delta_checkpoint
from waypoint_rl.metrics import predict_checkpoint, wrl_predict, wrl_eval
from waypoint_rl.selection import wrl_select
from waypoint_rl.sft import wrl_sft
from waypoint_rl.pipeline import wrl_demo

torch.set_num_threads(1)
FEW = dict(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

@pytest.fixture(scope='module')
def base(tmp_path_factory):
    "Two short expert episodes, an SFT and a delta checkpoint (tiny nets), their predictions, a finished SFT run"
    d = tmp_path_factory.mktemp('faults')
    write_expert_episodes(d/'eps', 2, seed=0, config=ToyWaypointConfig(route_length=20.0), show_progress=False)
    torch.manual_seed(0)
    net = WaypointNet(WaypointNetConfig(channels=[8, 8], z_dim=8, hidden=8))
    save_sft_checkpoint(d/'sft.pt', net); save_delta_checkpoint(d/'delta.pt', net, DeltaHead(8, 8, hidden=8))
    predict_checkpoint(str(d/'sft.pt'), str(d/'eps'/'*.json'), str(d/'preds.json'), device='cpu')
    predict_checkpoint(str(d/'delta.pt'), str(d/'eps'/'*.json'), str(d/'preds_rl.json'), device='cpu')
    code, err, _ = call(wrl_sft, ['--episodes-glob', str(d/'eps'/'*.json'), '--out-dir', str(d/'sft_run'),
                                  '--num-steps', '2', '--batch-size', '4', '--z-dim', '8', '--no-cache',
                                  '--device', 'cpu'])
    assert code == 0, err
    return d

def call(cmd, argv):
    "Run a command in this process: (exit code, stderr, stdout); an escaping exception is printed as a traceback"
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try: cmd(argv); code = 0
        except SystemExit as e: code = e.code
        except BaseException:
            import traceback; traceback.print_exc(file=err); code = 'exception'
    return code, err.getvalue(), out.getvalue()

def one_line_error(code, err):
    assert 'Traceback' not in err, err
    lines = [l for l in err.splitlines() if not l.startswith('warning: ')]
    assert code == 2 and len(lines) == 1 and lines[0].startswith('error: '), (code, err)

def succeeds_or_one_line(code, err):
    if code == 0: assert 'Traceback' not in err, err
    else: one_line_error(code, err)

def snapshot(*paths)->dict:
    "Bytes of every file under `paths` (files or folders), to show nothing was replaced"
    out = {}
    for p in map(Path, paths):
        for f in ([p] if p.is_file() else sorted(x for x in p.rglob('*') if x.is_file())): out[str(f)] = f.read_bytes()
    return out

def fresh()->Path: return Path(tempfile.mkdtemp(prefix='wrl_fault_'))

## Mutating JSON documents

def json_paths(x, at=()):
    "Every path (tuple of keys and indices) into a parsed JSON document"
    yield at
    if isinstance(x, dict):
        for k, v in x.items(): yield from json_paths(v, at + (k,))
    elif isinstance(x, list):
        for i, v in enumerate(x): yield from json_paths(v, at + (i,))

REPLACEMENTS = [None, 'x', '', 7, -1, 0, 2.5, float('nan'), float('inf'), True, [], {}, [[1, 2]], 10**30]
HOW = ['drop', 'nest'] + [f'set{i}' for i in range(len(REPLACEMENTS))]

def mutate(doc, at:tuple, how:str):
    "A copy of `doc` with the value at `at` dropped, wrapped in a list, or replaced"
    doc = copy.deepcopy(doc)
    if not at: return [doc] if how == 'nest' else REPLACEMENTS[int(how[3:])] if how.startswith('set') else {}
    parent = doc
    for k in at[:-1]: parent = parent[k]
    k = at[-1]
    if how == 'drop': parent.pop(k)
    elif how == 'nest': parent[k] = [parent[k]]
    else: parent[k] = REPLACEMENTS[int(how[3:])]
    return doc

@st.composite
def mutated_text(draw, text:str):
    "The JSON `text` with one value mutated, or the text truncated, or garbage"
    kind = draw(st.sampled_from(['value', 'value', 'value', 'truncate', 'garbage']))
    if kind == 'truncate': return text[:draw(st.integers(0, len(text) - 1))]
    if kind == 'garbage': return draw(st.binary(max_size=64)).decode('latin-1')
    doc = json.loads(text)
    at = draw(st.sampled_from(list(json_paths(doc))))
    return json.dumps(mutate(doc, at, draw(st.sampled_from(HOW))))

## Episode files

@settings(max_examples=20, **FEW)
@given(data=st.data())
def test_mutated_episode_files(base, data):
    d = fresh(); shutil.copytree(base/'eps', d/'eps'); shutil.copytree(base/'sft_run', d/'run')
    f = d/'eps'/'toy_000001.json'
    f.write_text(data.draw(mutated_text(f.read_text())))
    shutil.copy(base/'preds.json', d/'out.json')
    good = snapshot(d/'run', d/'out.json')
    E = str(d/'eps'/'*.json')
    for cmd, argv in [(wrl_predict, ['--checkpoint', str(base/'sft.pt'), '--eval-data', E,
                                     '--output', str(d/'out.json'), '--device', 'cpu', '--quiet']),
                      (wrl_eval, [str(base/'preds.json'), '--targets', E, '--output', str(d/'out.json'), '--quiet']),
                      (wrl_sft, ['--episodes-glob', E, '--out-dir', str(d/'run'), '--overwrite', '--num-steps', '1',
                                 '--batch-size', '4', '--z-dim', '8', '--no-cache', '--device', 'cpu', '--quiet'])]:
        code, err, _ = call(cmd, argv)
        succeeds_or_one_line(code, err)
        if code: assert snapshot(d/'run', d/'out.json') == good, cmd.__name__
        good = snapshot(d/'run', d/'out.json')

## Predictions files

@settings(max_examples=40, **FEW)
@given(data=st.data(), which=st.sampled_from(['preds.json', 'preds_rl.json']))
def test_mutated_predictions_files(base, data, which):
    d = fresh(); shutil.copy(base/'preds.json', d/'sft.json'); shutil.copy(base/'preds_rl.json', d/'rl.json')
    f = d/('sft.json' if which == 'preds.json' else 'rl.json')
    f.write_text(data.draw(mutated_text(f.read_text())))
    shutil.copy(base/'preds.json', d/'out.json'); good = snapshot(d/'out.json')
    for argv in ([str(f), '--output', str(d/'out.json')],
                 [str(d/'sft.json'), str(d/'rl.json'), '--compare', '--output', str(d/'out.json'),
                  '--plot', str(d/'c.png')],
                 [str(f), '--targets', str(d/'sft.json'), '--output', str(d/'out.json')]):
        code, err, _ = call(wrl_eval, argv + ['--quiet'])
        succeeds_or_one_line(code, err)
        if code: assert snapshot(d/'out.json') == good and not (d/'c.png').exists()
        else: json.loads((d/'out.json').read_text()); good = snapshot(d/'out.json')

## Checkpoints

def _tensors(ck, at=()):
    "Paths to every tensor in a checkpoint dict"
    if isinstance(ck, dict):
        for k, v in ck.items(): yield from _tensors(v, at + (k,))
    elif isinstance(ck, torch.Tensor): yield at

@st.composite
def mutated_checkpoint(draw, ck:dict):
    "A checkpoint dict with a tensor made NaN/inf or reshaped, or a field dropped or retyped (small values only)"
    ck = copy.deepcopy(ck)
    kind = draw(st.sampled_from(['nan', 'inf', 'shape', 'field', 'field']))
    if kind in ('nan', 'inf', 'shape'):
        at = draw(st.sampled_from(list(_tensors(ck))))
        parent = ck
        for k in at[:-1]: parent = parent[k]
        t = parent[at[-1]]
        if kind == 'shape': parent[at[-1]] = torch.zeros(t.numel() + 1)
        elif t.is_floating_point(): t.view(-1)[draw(st.integers(0, t.numel() - 1))] = float(kind)
        return ck
    at = draw(st.sampled_from([p for p in json_paths({k: v for k, v in ck.items() if k != 'state_dicts'}) if p]))
    small = [None, 'x', 0, -1, 3, 2.5, True, [], {}, [8]]    # no huge sizes: a crafted z_dim of 10**9 would allocate
    parent = ck
    for k in at[:-1]: parent = parent[k]
    if draw(st.booleans()): parent.pop(at[-1])
    else: parent[at[-1]] = draw(st.sampled_from(small))
    return ck

@settings(max_examples=40, **FEW)
@given(data=st.data(), name=st.sampled_from(['sft.pt', 'delta.pt']))
def test_mutated_checkpoints(base, data, name):
    d = fresh()
    ck = torch.load(base/name, weights_only=True)
    torch.save(data.draw(mutated_checkpoint(ck)), d/'checkpoint_1.pt')
    shutil.copy(base/'preds.json', d/'out.json'); shutil.copy(base/'sft.pt', d/'best.pt')
    good = snapshot(d/'out.json', d/'best.pt')
    E = str(base/'eps'/'*.json')
    for cmd, argv in [(wrl_predict, ['--checkpoint', str(d/'checkpoint_1.pt'), '--eval-data', E,
                                     '--output', str(d/'out.json'), '--closed-loop-episodes', '1']),
                      (wrl_select, ['--checkpoints', str(d/'checkpoint_*.pt'), '--eval-data', E,
                                    '--output-best', str(d/'best.pt'), '--json-output', str(d/'sel.json')])]:
        code, err, _ = call(cmd, argv + ['--device', 'cpu', '--quiet'])
        succeeds_or_one_line(code, err)
        if code: assert snapshot(d/'out.json', d/'best.pt') == good and not (d/'sel.json').exists(), cmd.__name__
        good = snapshot(d/'out.json', d/'best.pt')

@settings(max_examples=12, **FEW)
@given(blob=st.one_of(st.binary(max_size=200), st.integers(1, 2000).map(lambda n: n)))
def test_garbage_and_truncated_checkpoints(base, blob):
    d = fresh()
    raw = (base/'sft.pt').read_bytes()
    (d/'checkpoint_1.pt').write_bytes(blob if isinstance(blob, bytes) else raw[:blob])
    shutil.copy(base/'sft.pt', d/'best.pt'); good = snapshot(d/'best.pt')
    code, err, _ = call(wrl_predict, ['--checkpoint', str(d/'checkpoint_1.pt'), '--eval-data', str(base/'eps'/'*.json'),
                                      '--output', str(d/'p.json'), '--device', 'cpu'])
    one_line_error(code, err); assert not (d/'p.json').exists()
    code, err, _ = call(wrl_select, ['--checkpoints', str(d/'checkpoint_*.pt'), '--eval-data',
                                     str(base/'eps'/'*.json'), '--output-best', str(d/'best.pt'), '--device', 'cpu'])
    one_line_error(code, err); assert snapshot(d/'best.pt') == good

class _Payload:
    "Unpickling this would run a shell command"
    def __init__(self, path): self.path = path
    def __reduce__(self): return (os.system, (f"touch {self.path}",))

def test_crafted_pickle_is_refused_and_never_runs(base, tmp_path):
    ck = torch.load(base/'sft.pt', weights_only=True)
    ck['metrics'] = {'note': _Payload(tmp_path/'pwned')}
    torch.save(ck, tmp_path/'checkpoint_evil.pt')
    for cmd, argv in [(wrl_predict, ['--checkpoint', str(tmp_path/'checkpoint_evil.pt'),
                                     '--output', str(tmp_path/'p.json')]),
                      (wrl_select, ['--checkpoints', str(tmp_path/'checkpoint_*.pt')])]:
        code, err, _ = call(cmd, argv + ['--eval-data', str(base/'eps'/'*.json'), '--device', 'cpu'])
        one_line_error(code, err)
        assert 'refused to load' in err and not (tmp_path/'pwned').exists()

## Flags

def _commands(base, d):
    "Each command with a minimal good command line writing into `d`"
    E = str(base/'eps'/'*.json')
    return dict(
        wrl_episodes=(wrl_episodes, ['--out-dir', str(d/'e'), '--episodes', '1']),
        wrl_sft=(wrl_sft, ['--episodes-glob', E, '--out-dir', str(d/'s'), '--num-steps', '1', '--no-cache',
                           '--device', 'cpu']),
        wrl_predict=(wrl_predict, ['--checkpoint', str(base/'sft.pt'), '--eval-data', E, '--output', str(d/'p.json'),
                                   '--device', 'cpu']),
        wrl_eval=(wrl_eval, [str(base/'preds.json'), '--output', str(d/'m.json')]),
        wrl_select=(wrl_select, ['--checkpoints', str(base/'*.pt'), '--eval-data', E, '--output-best',
                                 str(d/'best.pt'), '--device', 'cpu']),
        wrl_drive=(wrl_drive, ['--out-dir', str(d/'dr'), '--episodes', '1', '--cameras', '']),
        wrl_demo=(wrl_demo, ['--out-dir', str(d/'demo'), '--quick']))

NEG, ZERO, NAN, INF, HUGE = '-1', '0', 'nan', 'inf', 'huge'
BAD_FLAGS = {   # command: {flag: values that must be refused}; 'huge' is given per flag below
    'wrl_episodes': {'--episodes': [NEG, ZERO], '--seed': [NEG, HUGE], '--num-envs': [NEG, ZERO],
                     '--noise-std': [NEG, NAN, INF, '-inf'], '--camera-dropout': [NEG, NAN, INF, '2'],
                     '--image-size': [NEG, ZERO, HUGE], '--horizon-steps': [NEG, ZERO, HUGE]},
    'wrl_sft': {'--batch-size': [NEG, ZERO], '--num-steps': [NEG, ZERO], '--lr': [NEG, ZERO, NAN, INF, '-inf'],
                '--seed': [NEG, HUGE], '--val-frac': [NEG, NAN, INF, '1'], '--image-size': [NEG, ZERO, HUGE],
                '--z-dim': [NEG, ZERO, HUGE], '--weight-decay': [NEG, NAN, INF], '--eval-every': [NEG],
                '--threads': [NEG, HUGE], '--device': ['warp9']},
    'wrl_predict': {'--closed-loop-episodes': [NEG], '--seed': [NEG, HUGE], '--num-envs': [NEG, ZERO],
                    '--batch-size': [NEG, ZERO], '--device': ['warp9'], '--dynamics': ['moon', 'gain=nan', 'lag=-1']},
    'wrl_eval': {'--goal-threshold': [NEG, ZERO, NAN, INF], '--waypoint-threshold': [NEG, ZERO, NAN, INF],
                 '--miss-threshold': [NEG, ZERO, NAN, INF]},
    'wrl_select': {'--top-k': [NEG], '--seed': [NEG, HUGE], '--num-envs': [NEG, ZERO], '--batch-size': [NEG, ZERO],
                   '--closed-loop-episodes': [NEG], '--metric': ['speed', NAN], '--device': ['warp9']},
    'wrl_drive': {'--episodes': [NEG, ZERO], '--seed': [NEG, HUGE]},
    'wrl_demo': {'--threads': [NEG, HUGE], '--seed': [NEG, HUGE], '--device': ['warp9']},
}
HUGE_OF = {'--seed': str(2**64), '--image-size': '1000000', '--horizon-steps': '100000000', '--z-dim': '1000000000',
           '--threads': '1000000'}
CASES = [(c, f, v) for c, fl in BAD_FLAGS.items() for f, vs in fl.items() for v in vs]

@settings(max_examples=80, **FEW)
@given(case=st.sampled_from(CASES), neg=st.integers(-10**12, -1))
def test_mutated_flags(base, case, neg):
    c, flag, v = case
    v = HUGE_OF[flag] if v == HUGE else str(neg) if v == NEG else v
    d = fresh(); cmd, argv = _commands(base, d)[c]
    code, err, out = call(cmd, argv + [f'{flag}={v}'])          # `--flag=-inf`: argparse would read '-inf' as a flag
    one_line_error(code, err)
    assert flag in err or flag.lstrip('-').replace('-', '_') in err or 'device' in err, err
    assert not [p for p in d.rglob('*') if p.is_file() and p.name != '.lock'], list(d.rglob('*'))   # nothing written

@pytest.mark.parametrize('c, flag', [('wrl_sft', '--num-steps'), ('wrl_eval', '--goal-threshold'),
                                     ('wrl_drive', '--seed'), ('wrl_select', '--top-k')])
def test_non_numeric_flags_are_usage_errors(base, tmp_path, c, flag):
    "argparse refuses a non-number itself: usage line and its error line, exit 2, no traceback"
    cmd, argv = _commands(base, tmp_path)[c]
    code, err, _ = call(cmd, argv + [flag, 'abc'])
    assert code == 2 and 'Traceback' not in err and f'error: argument {flag}' in err.splitlines()[-1], err

def test_smoke_in_a_fresh_process(base, tmp_path):
    r = subprocess.run([str(Path(sys.executable).parent/'wrl_drive'), '--out-dir', str(tmp_path/'o'), '--seed=-1'],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr == 'error: seed (--seed): must be >= 0, got -1\n', r.stderr
    assert not (tmp_path/'o').exists()
