"`wrl_select` end to end in a temp dir with the original module's command line, in fresh processes."
import json, subprocess, sys
from pathlib import Path
import numpy as np, pytest, torch
from waypoint_rl.episodes import write_expert_episodes, load_episodes, EpisodeDataset
from waypoint_rl.policy import (WaypointNet, WaypointNetConfig, DeltaHead, WaypointPolicyTorch, WaypointPolicyConfig,
                                save_delta_checkpoint, save_sft_checkpoint)

BIN = Path(sys.executable).parent

@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    "out/episodes (3 expert episodes), out/rl_delta_waypoint_v0/checkpoint_*.pt: one SFT, delta heads of varied quality"
    d = tmp_path_factory.mktemp('sel'); out = d / 'out'
    write_expert_episodes(out / 'episodes' / 'toy', episodes=3, seed=0, show_progress=False)
    eps = load_episodes(str(out / 'episodes' / '**' / '*.json'))
    ds = EpisodeDataset(eps, cameras=['front'], image_size=64, cache=False)
    torch.manual_seed(1)
    net = WaypointNet(WaypointNetConfig(channels=[8, 8], z_dim=16, hidden=16)).eval()
    with torch.no_grad(): resid = (ds.waypoints - net({'front': ds.images[:, 0].float() / 255})).mean(0)
    run = out / 'rl_delta_waypoint_v0'
    # shuffled quality order, so neither file order nor step order can pick the winner by accident
    for i, frac in enumerate([.5, 0., 1., .25]):
        head = DeltaHead(16, 8, hidden=8, max_delta=4.0)
        with torch.no_grad(): head.net[-1].bias.copy_(torch.atanh((frac * resid / 4.0).clamp(-.99, .99)).reshape(-1))
        save_delta_checkpoint(run / f'checkpoint_{i:03d}.pt', net, head, step=10 * i)
    save_sft_checkpoint(run / 'checkpoint_sft.pt', net)
    (run / 'checkpoint_broken.pt').write_bytes(b'\x00garbage')
    truth = {}
    for p in sorted(run.glob('checkpoint_*.pt')):
        if 'broken' in p.name: continue
        pol = WaypointPolicyTorch(WaypointPolicyConfig(checkpoint=str(p), device='cpu'))
        w = pol({'front': ds.images[:, 0]}).numpy()
        truth[p.name] = float(np.linalg.norm(w - ds.waypoints.numpy(), axis=-1).mean())
    return d, truth

def _run(args, cwd):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)

def test_original_select_command(run_dir):
    d, truth = run_dir
    r = _run([str(BIN / 'wrl_select'), '--checkpoints', 'out/rl_delta_waypoint_v0/checkpoint_*.pt',
              '--eval-data', 'out/episodes/**/*.json', '--metric', 'ade',
              '--output-best', 'out/rl_delta_waypoint_v0/best.pt', '--json-output', 'sel.json', '--device', 'cpu'], d)
    assert r.returncode == 0, r.stderr
    best = min(truth, key=truth.get)
    assert best == 'checkpoint_002.pt'                       # the full correction
    sel = json.loads((d / 'sel.json').read_text())
    assert Path(sel['best']['checkpoint']).name == best
    assert (d / 'out/rl_delta_waypoint_v0/best.pt').read_bytes() == (d / 'out/rl_delta_waypoint_v0' / best).read_bytes()
    assert [Path(x['checkpoint']).name for x in sel['ranking']] == sorted(truth, key=truth.get)
    for x in sel['ranking']: assert x['ade'] == pytest.approx(truth[Path(x['checkpoint']).name], abs=1e-4)
    assert [Path(s['checkpoint']).name for s in sel['skipped']] == ['checkpoint_broken.pt']
    assert 'warning: skipped' in r.stderr and 'checkpoint_broken.pt' in r.stderr
    assert 'rank' in r.stdout and best in r.stdout

def test_python_m_json_stdout_and_top_k(run_dir):
    d, truth = run_dir
    r = _run([sys.executable, '-m', 'waypoint_rl.selection',
              '--checkpoints', 'out/rl_delta_waypoint_v0/checkpoint_*.pt',
              '--eval-data', 'out/episodes/**/*.json', '--metric', 'combined', '--top-k', '2', '--json-output', '-',
              '--device', 'cpu'], d)
    assert r.returncode == 0, r.stderr
    sel = json.loads(r.stdout)
    assert len(sel['ranking']) == 2 and sel['n_evaluated'] == 5 and sel['metric'] == 'combined'
    assert sel['ranking'][0]['score'] <= sel['ranking'][1]['score']

@pytest.mark.parametrize('args,msg', [
    (['--checkpoints', 'out/nothing/*.pt'], "--checkpoints 'out/nothing/*.pt': no files match"),
    (['--checkpoints', 'out/rl_delta_waypoint_v0/checkpoint_broken.pt'], 'none of the 1 files is a usable checkpoint'),
    (['--checkpoints', 'out/rl_delta_waypoint_v0/*.pt', '--metric', 'mean_return'], 'needs --closed-loop-episodes'),
])
def test_errors(run_dir, args, msg):
    d, _ = run_dir
    r = _run([str(BIN / 'wrl_select'), *args, '--eval-data', 'out/episodes/**/*.json', '--device', 'cpu'], d)
    assert r.returncode == 2, (r.returncode, r.stderr)
    last = r.stderr.splitlines()[-1]
    assert last.startswith('error: ') and msg in last, r.stderr

def test_help_lists_every_flag(run_dir):
    d, _ = run_dir
    h = _run([str(BIN / 'wrl_select'), '-h'], d).stdout
    for f in ('--checkpoints', '--eval-data', '--metric', '--top-k', '--json-output', '--output-best',
              '--closed-loop-episodes'):
        assert f in h

def _in_process(argv, cwd, monkeypatch, capsys):
    "Run `wrl_select` in this process; (exit code, stderr lines)"
    from waypoint_rl.selection import wrl_select
    monkeypatch.chdir(cwd)
    try: wrl_select(argv + ['--device', 'cpu', '--quiet']); code = 0
    except SystemExit as e: code = e.code
    return code, capsys.readouterr().err.splitlines()

def test_nothing_written_unless_every_output_can_be(run_dir, tmp_path, monkeypatch, capsys):
    d, _ = run_dir
    (tmp_path / 'best.pt').write_bytes(b'previous best'); (tmp_path / 'a_file').write_text('')
    code, err = _in_process(['--checkpoints', 'out/rl_delta_waypoint_v0/checkpoint_00*.pt', '--eval-data',
                             'out/episodes/**/*.json', '--output-best', str(tmp_path / 'best.pt'),
                             '--json-output', str(tmp_path / 'a_file' / 'sel.json')], d, monkeypatch, capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith('error: --json-output'), err
    assert (tmp_path / 'best.pt').read_bytes() == b'previous best'
    assert not list(tmp_path.glob('.*.tmp'))

def test_output_best_as_the_only_checkpoint(run_dir, monkeypatch, capsys):
    d, _ = run_dir
    ck = 'out/rl_delta_waypoint_v0/checkpoint_001.pt'
    code, err = _in_process(['--checkpoints', ck, '--eval-data', 'out/episodes/**/*.json', '--output-best', ck], d,
                            monkeypatch, capsys)
    assert code == 2 and len(err) == 1 and 'matches only --output-best' in err[0], err

def test_non_finite_weights_are_skipped_and_never_best(run_dir, tmp_path, monkeypatch, capsys):
    d, truth = run_dir
    src = d / 'out/rl_delta_waypoint_v0'
    for n in ('checkpoint_000.pt', 'checkpoint_001.pt'): (tmp_path / n).write_bytes((src / n).read_bytes())
    ck = torch.load(src / 'checkpoint_002.pt', weights_only=True)         # the best one, with one NaN weight
    k = next(k for k in ck['state_dicts']['delta'] if k.endswith('weight'))
    ck['state_dicts']['delta'][k] = ck['state_dicts']['delta'][k].clone().fill_(float('nan'))
    torch.save(ck, tmp_path / 'checkpoint_002.pt')
    code, err = _in_process(['--checkpoints', str(tmp_path / 'checkpoint_*.pt'), '--eval-data',
                             'out/episodes/**/*.json', '--output-best', str(tmp_path / 'best.pt'),
                             '--json-output', str(tmp_path / 'sel.json')], d, monkeypatch, capsys)
    assert code == 0, err
    sel = json.loads((tmp_path / 'sel.json').read_text())
    assert [Path(s['checkpoint']).name for s in sel['skipped']] == ['checkpoint_002.pt']
    assert 'non-finite values in delta_head' in sel['skipped'][0]['reason']
    assert (tmp_path / 'best.pt').read_bytes() == (tmp_path / Path(sel['best']['checkpoint']).name).read_bytes()

def test_json_on_stdout_is_the_files_text(run_dir, tmp_path, monkeypatch, capsys):
    "`--json-output -` prints exactly what `--json-output FILE` writes; ADE is ranked lower-is-better"
    from waypoint_rl.selection import wrl_select
    d, _ = run_dir
    monkeypatch.chdir(d)
    args = ['--checkpoints', 'out/rl_delta_waypoint_v0/checkpoint_00*.pt', '--eval-data', 'out/episodes/**/*.json',
            '--device', 'cpu']
    wrl_select(args + ['--json-output', str(tmp_path / 'sel.json')]); capsys.readouterr()
    wrl_select(args + ['--json-output', '-'])
    text = capsys.readouterr().out
    assert text == (tmp_path / 'sel.json').read_text()
    sel = json.loads(text)
    assert (sel['metric'], sel['better']) == ('ade', 'lower')

def test_no_usable_checkpoint_names_the_first_reason(run_dir, tmp_path, monkeypatch, capsys):
    "When every file is unusable the error quotes the first file's reason, without its path"
    d, _ = run_dir
    ck = torch.load(d / 'out/rl_delta_waypoint_v0/checkpoint_002.pt', weights_only=True)
    k = next(k for k in ck['state_dicts']['delta'] if k.endswith('weight'))
    ck['state_dicts']['delta'][k] = ck['state_dicts']['delta'][k].clone().fill_(float('nan'))
    torch.save(ck, tmp_path / 'checkpoint_a.pt')
    (tmp_path / 'checkpoint_b.pt').write_bytes(b'\x00garbage')
    code, err = _in_process(['--checkpoints', str(tmp_path / 'checkpoint_*.pt'), '--eval-data',
                             'out/episodes/**/*.json'], d, monkeypatch, capsys)
    assert code == 2 and len(err) == 3 and [e.split(':')[0] for e in err] == ['warning', 'warning', 'error'], err
    a, b = str(tmp_path / 'checkpoint_a.pt'), str(tmp_path / 'checkpoint_b.pt')
    assert err[0].startswith(f'warning: skipped {a}: non-finite values')
    assert err[1].startswith(f'warning: skipped {b}: ')
    assert 'none of the 2 files is a usable checkpoint (first: non-finite values' in err[2], err
    assert a not in err[2], err

def test_a_bad_json_output_is_refused_before_scoring(run_dir, tmp_path, monkeypatch, capsys):
    "An unwritable --json-output stops the command before any checkpoint is scored"
    import waypoint_rl.selection as S
    d, _ = run_dir
    (tmp_path / 'a_folder').mkdir()
    def boom(*a, **k): raise AssertionError('scored')
    monkeypatch.setattr(S, 'evaluate_checkpoints', boom)
    code, err = _in_process(['--checkpoints', 'out/rl_delta_waypoint_v0/checkpoint_00*.pt', '--eval-data',
                             'out/episodes/**/*.json', '--json-output', str(tmp_path / 'a_folder')], d,
                            monkeypatch, capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith('error: --json-output') and 'not a regular' in err[0], err

def test_scoring_is_open_loop_by_default(run_dir):
    "score_checkpoint drives no closed-loop episode unless asked"
    from waypoint_rl.selection import score_checkpoint
    d, _ = run_dir
    eps = load_episodes(str(d / 'out' / 'episodes' / '**' / '*.json'))
    r = score_checkpoint(d / 'out/rl_delta_waypoint_v0/checkpoint_001.pt', eps, {}, device='cpu')
    assert not r.get('n_episodes') and r.get('episode_goal_reach_rate') is None, r

def test_a_skipped_reason_is_the_errors_first_line(run_dir, monkeypatch, capsys):
    "A checkpoint that fails with a long message is skipped with its first line, on one line of stderr"
    import waypoint_rl.selection as S
    d, _ = run_dir
    def fail(p, *a, **k): raise RuntimeError(f"{p}: cannot use it\nsecond line\nthird line")
    monkeypatch.setattr(S, 'score_checkpoint', fail)
    results, skipped = S.evaluate_checkpoints(['x.pt'], [], show_progress=False)
    assert results == [] and skipped == [dict(checkpoint='x.pt', reason='cannot use it')]
    assert capsys.readouterr().err == 'warning: skipped x.pt: cannot use it\n'

def test_closed_loop_scoring_draws_no_progress_bar(run_dir, capsys):
    "Scoring one checkpoint in closed loop writes nothing to stderr (the progress bar is over checkpoints)"
    from waypoint_rl.selection import score_checkpoint
    d, _ = run_dir
    eps = load_episodes(str(d / 'out' / 'episodes' / '**' / '*.json'))
    r = score_checkpoint(d / 'out/rl_delta_waypoint_v0/checkpoint_001.pt', eps, {}, device='cpu',
                         closed_loop_episodes=1, num_envs=1)
    assert r['n_episodes'] == 1 and capsys.readouterr().err == ''
