"""The house rules the package keeps: imports run from earlier notebooks to later ones, and every command line is a
thin wrapper that takes its flags from the library function it delegates to."""
import ast, configparser, importlib, inspect, json, re
from pathlib import Path

import pytest
from waypoint_rl.utils import build_parser

ROOT = Path(__file__).resolve().parents[1]
PKG = 'waypoint_rl'

# --- imports only from earlier notebooks ----------------------------------------------------------------------------

def _cells(nb:Path)->list:
    return [(c['cell_type'], ''.join(c['source']) if isinstance(c['source'], list) else c['source'])
            for c in json.loads(nb.read_text())['cells']]

def _notebooks()->dict:
    "module name -> (notebook number or None, notebook path), from each notebook's `#| default_exp`"
    out = {}
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        for kind, src in _cells(nb):
            m = re.search(r'^#\|\s*default_exp\s+(\S+)', src, re.M) if kind == 'code' else None
            if m:
                num = re.match(r'(\d+)', nb.name)
                out[m.group(1)] = (int(num.group(1)) if num else None, nb)
                break
    return out

NOTEBOOKS = _notebooks()

def _export_source(nb:Path)->str:
    "The code of a notebook's `#| export` cells, directives stripped"
    cells = [s for k, s in _cells(nb) if k == 'code' and re.search(r'^#\|\s*exports?\b', s, re.M)]
    return '\n'.join('\n'.join(l for l in s.splitlines() if not l.lstrip().startswith(('#|', '%'))) for s in cells)

def _imports(src:str)->set:
    "Every module named by an `import` / `from` statement anywhere in `src` (relative ones as `waypoint_rl.x`)"
    mods = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import): mods |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = (f'{PKG}.{node.module}' if node.module else PKG) if node.level else node.module
            mods.add(base)
            if base == PKG: mods |= {f'{PKG}.{a.name}' for a in node.names}   # `from . import env`
    return mods

def _package_imports(mod:str)->set:
    "The package modules `mod` imports, in its exported file and in its notebook's export cells"
    src = [_export_source(NOTEBOOKS[mod][1])]
    f = ROOT/PKG/f'{mod}.py'
    if f.exists(): src.append(f.read_text())
    names = set().union(*(_imports(s) for s in src))
    return {n.split('.')[1] for n in names if n.startswith(f'{PKG}.')} - {mod}

def test_every_module_has_a_numbered_notebook():
    mods = {p.stem for p in (ROOT/PKG).glob('*.py') if not p.stem.startswith('_')}
    assert mods <= set(NOTEBOOKS), f"modules without a notebook: {sorted(mods - set(NOTEBOOKS))}"
    assert all(NOTEBOOKS[m][0] is not None for m in mods)

@pytest.mark.parametrize('mod', sorted(m for m, (n, _) in NOTEBOOKS.items() if n is not None))
def test_imports_only_earlier_notebooks(mod):
    num = NOTEBOOKS[mod][0]
    later = {m: NOTEBOOKS[m][1].name for m in _package_imports(mod) if m not in NOTEBOOKS or NOTEBOOKS[m][0] is None
             or NOTEBOOKS[m][0] >= num}
    assert not later, f"{PKG}.{mod} ({NOTEBOOKS[mod][1].name}) imports modules of later notebooks: {later}"

def test_package_init_imports_no_module():
    assert _package_imports('__init__') == set(), "`import waypoint_rl` must stay light: nothing of the package"

def test_ppo_core_knows_nothing_of_cars():
    assert not _package_imports('ppo') & {'env', 'policy'}

def test_rollout_knows_no_policy_and_no_torch():
    src = _export_source(NOTEBOOKS['rollout'][1]) + '\n' + (ROOT/PKG/'rollout.py').read_text()
    assert 'policy' not in _package_imports('rollout')
    torch = sorted(m for m in _imports(src) if m == 'torch' or m.startswith('torch.'))
    assert not torch, f"{PKG}.rollout imports {torch}"

def test_the_import_parser():
    assert _imports('from .env import X\nimport torch.nn as nn\ndef f():\n    from . import policy') == {
        'waypoint_rl.env', 'torch.nn', 'waypoint_rl', 'waypoint_rl.policy'}

def test_module_lines_fit():
    "Exported code keeps to 120 characters (ruff checks the notebooks; nbdev's own `__all__` line may be longer)"
    long = [f"{f.name}:{i}" for f in sorted((ROOT/PKG).glob('*.py')) if f.name != '_modidx.py'
            for i, l in enumerate(f.read_text().splitlines(), 1) if len(l) > 120 and not l.startswith('__all__ = [')]
    assert not long, f"lines over 120 characters: {long}"

# --- every command delegates to a library function ------------------------------------------------------------------

def _console_scripts()->dict:
    p = configparser.ConfigParser(interpolation=None); p.read(ROOT/'settings.ini')
    lines = [l.strip() for l in p['DEFAULT']['console_scripts'].splitlines() if l.strip()]
    return dict(l.split('=', 1) for l in lines)

SCRIPTS = _console_scripts()

def _command(name):
    mod, _, attr = SCRIPTS[name].partition(':')
    cmd = getattr(importlib.import_module(mod), attr)
    assert callable(getattr(cmd, 'func', None)), f"{name}: {SCRIPTS[name]} is not a `utils.cli` command (no .func)"
    return cmd

def _dests(parser)->set:
    return {a.dest for a in parser._actions if a.dest != 'help'}

def test_console_scripts_listed():
    assert {'wrl_drive', 'wrl_episodes', 'wrl_sft', 'wrl_ppo', 'wrl_predict', 'wrl_eval', 'wrl_select',
            'wrl_demo'} <= set(SCRIPTS)
    assert SCRIPTS['wrl_drive'] == 'waypoint_rl.episodes:wrl_drive'

@pytest.mark.parametrize('name', sorted(SCRIPTS))
def test_command_delegates(name):
    "Every flag is a parameter of the delegated library function or listed in the command's `cli_only`"
    func = _command(name).func
    to = getattr(func, '__delwrap__', None)
    assert to is not None, f"{name}: does not delegate (`@delegates(library_fn)` and a body calling it by keyword)"
    params = set(inspect.signature(to).parameters)
    cmd = _command(name)   # `wrl_x.cli_only = (...)` set after the def lands on the command, not on .func
    cli_only = set(getattr(cmd, 'cli_only', None) or getattr(func, 'cli_only', ()))
    stray = _dests(build_parser(func)) - params - cli_only
    assert not stray, f"{name}: flags neither parameters of {to.__name__} nor in {name}.cli_only: {sorted(stray)}"

@pytest.mark.parametrize('name', sorted(SCRIPTS))
def test_help(name, capsys):
    with pytest.raises(SystemExit) as e: _command(name)(['-h'])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith('usage:') and '--' in out

# --- the original module's commands parse as written (DESIGN.md, "Compatibility") -----------------------------------

ORIGINAL = {
    'wrl_sft': (['--episodes-glob', 'out/episodes/**/*.json', '--batch-size', '32', '--num-steps', '200'],
                dict(episodes_glob='out/episodes/**/*.json', batch_size=32, num_steps=200)),
    'wrl_ppo': (['--sft-model', 'out/sft_waypoint_bc_torch_v0/model.pt', '--out-dir', 'out/rl_delta_waypoint_v0',
                 '--episodes', '1000'],
                dict(sft_model='out/sft_waypoint_bc_torch_v0/model.pt', out_dir='out/rl_delta_waypoint_v0',
                     episodes=1000)),
    'wrl_eval': (['sft_predictions.json', 'rl_predictions.json', '--compare', '--output', 'comparison.json'],
                 dict(compare=True, output='comparison.json')),
    'wrl_select': (['--checkpoints', 'out/rl_delta_waypoint_v0/checkpoint_*.pt', '--eval-data',
                    'out/episodes/**/*.json', '--metric', 'ade', '--output-best', 'out/rl_delta_waypoint_v0/best.pt'],
                   dict(checkpoints='out/rl_delta_waypoint_v0/checkpoint_*.pt', eval_data='out/episodes/**/*.json',
                        metric='ade', output_best='out/rl_delta_waypoint_v0/best.pt')),
}

@pytest.mark.parametrize('name', sorted(ORIGINAL))
def test_original_commands_parse(name):
    argv, want = ORIGINAL[name]
    args = vars(build_parser(_command(name).func).parse_args(argv))
    assert {k: str(args[k]) if isinstance(want[k], str) else args[k] for k in want} == want
    if name == 'wrl_eval':   # the two prediction files: the one positional
        assert [str(x) for x in next(v for v in args.values() if isinstance(v, list))] == \
               ['sft_predictions.json', 'rl_predictions.json']
