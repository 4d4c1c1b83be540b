"Property tests of the metric definitions, and `wrl_eval` end to end in a temp dir (fresh processes)."
import json, math, subprocess, sys
from pathlib import Path
import numpy as np, pytest, torch
from hypothesis import given, settings, assume, strategies as st
from hypothesis.extra.numpy import arrays
from waypoint_rl.metrics import (ade, fde, point_errors, open_loop_metrics, Predictions, write_predictions,
                                 read_predictions, wrl_eval)

BIN = Path(sys.executable).parent
coord = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, allow_subnormal=False)

@st.composite
def pairs(draw, max_b=6, max_k=10):
    "(pred, target) float64 arrays of the same (B, K, 2) shape"
    b, k = draw(st.integers(1, max_b)), draw(st.integers(1, max_k))
    p = draw(arrays(np.float64, (b, k, 2), elements=coord))
    t = draw(arrays(np.float64, (b, k, 2), elements=coord))
    return p, t

@settings(max_examples=200, deadline=None)
@given(pairs())
def test_ade_nonnegative_and_matches_torch(pt):
    p, t = pt
    a = ade(p, t)
    assert (a >= 0).all()
    at = ade(torch.tensor(p), torch.tensor(t)).numpy()
    assert (at >= 0).all() and np.allclose(a, at, rtol=1e-9, atol=1e-9)

@settings(max_examples=200, deadline=None)
@given(pairs(), st.data())
def test_ade_zero_exactly_when_equal(pt, data):
    p, t = pt
    # make some samples exact copies so both branches are exercised
    same = data.draw(arrays(np.bool_, (p.shape[0],)))
    t = np.where(same[:, None, None], p, t)
    a = ade(p, t)
    assert ((a == 0) == (p == t).all(axis=(1, 2))).all()

@settings(max_examples=200, deadline=None)
@given(pairs())
def test_fde_is_last_point_error(pt):
    p, t = pt
    d = p[:, -1] - t[:, -1]
    assert np.allclose(fde(p, t), np.hypot(d[:, 0], d[:, 1]), rtol=1e-12, atol=0)
    assert np.allclose(fde(p, t), np.sqrt(d[:, 0]**2 + d[:, 1]**2), rtol=1e-9, atol=1e-12)
    assert np.array_equal(fde(p, t), point_errors(p, t)[:, -1])

@settings(max_examples=200, deadline=None)
@given(pairs(), st.floats(-math.pi, math.pi), coord, coord)
def test_invariant_under_common_rigid_motion(pt, theta, bx, by):
    p, t = pt
    R = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    mv = lambda x: x @ R.T + [bx, by]
    e = point_errors(p, t)
    # threshold metrics compare errors strictly; skip draws with an error within rounding of a threshold
    assume(np.abs(e[..., None] - np.array([2.0, 3.0])).min() > 1e-6)
    m0, m1 = open_loop_metrics(p, t), open_loop_metrics(mv(p), mv(t))
    for k in ('ade', 'fde', 'ade_median', 'fde_median'):
        assert math.isclose(m0[k], m1[k], rel_tol=1e-9, abs_tol=1e-9), k
    for k in ('miss_rate', 'waypoint_hit_rate', 'goal_reach_rate', 'n_samples', 'n_waypoints'): assert m0[k] == m1[k], k

@settings(max_examples=30, deadline=None)
@given(pairs(max_b=8, max_k=6), st.lists(st.text('abc', min_size=1, max_size=3), min_size=1, max_size=3))
def test_compare_with_itself_gives_zero_deltas(tmp_path_factory, pt, ids):
    p, t = pt
    keys = [(ids[i % len(ids)], i) for i in range(len(p))]
    eps = [dict(episode_id=f'c{i}', goal_reached=bool(i % 2), waypoints_hit=i, waypoints_total=5, length=10 + i,
                termination='goal' if i % 2 else 'off_route', **{'return': float(i)}) for i in range(3)]
    f = tmp_path_factory.mktemp('self') / 'p.json'
    write_predictions(Predictions(keys, p, t, eps), f)
    c = wrl_eval.func([str(f), str(f)], compare=True, quiet=True)
    assert c['improvement'] and all(v == 0 for v in c['improvement'].values()), c['improvement']
    assert c['n_matched'] == len(p) and c['unmatched']['sft_only'] == c['unmatched']['rl_only'] == 0
    assert c['paired']['samples_tied'] == len(p) and c['paired']['goals_fixed'] == c['paired']['goals_lost'] == 0

def test_hand_computed():
    p = np.zeros((1, 4, 2)); t = np.array([[[0, 1], [0, 1], [3, 4], [6, 8]]], float)   # errors 1, 1, 5, 10
    m = open_loop_metrics(p, t)
    assert m['ade'] == pytest.approx(17 / 4) and m['fde'] == 10.0
    assert m['miss_rate'] == 1.0 and m['goal_reach_rate'] == 0.0 and m['waypoint_hit_rate'] == 0.5

# ---- the command line, in fresh processes -------------------------------------------------------------------------

def _files(d:Path, n=20, k=8, seed=0):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.uniform(.5, 1, (n, k, 2)), 1)
    keys = [(f'ep{i // 5}', i % 5) for i in range(n)]
    sft = Predictions(keys, t + rng.normal(0, 1.0, t.shape), t, checkpoint='sft.pt')
    write_predictions(sft, d / 'sft_predictions.json')
    # RL covers all but the first sample, in reverse order (matching must not be positional), plus one extra
    rk = keys[1:][::-1] + [('extra', 0)]
    rt = np.concatenate([t[1:][::-1], t[:1]])
    rl = Predictions(rk, rt + rng.normal(0, .3, rt.shape), rt, checkpoint='rl.pt')
    write_predictions(rl, d / 'rl_predictions.json')
    return t, keys

def _run(args, cwd):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)

def test_original_compare_command(tmp_path):
    _files(tmp_path)
    r = _run([str(BIN / 'wrl_eval'), 'sft_predictions.json', 'rl_predictions.json', '--compare',
              '--output', 'comparison.json', '--plot', 'comparison.png'], tmp_path)
    assert r.returncode == 0, r.stderr
    c = json.loads((tmp_path / 'comparison.json').read_text())
    assert set(c) >= {'sft', 'rl', 'improvement', 'n_matched', 'unmatched', 'sign_convention'}
    deltas = {'ade_delta', 'fde_delta', 'goal_reach_delta', 'waypoint_hit_delta', 'miss_rate_delta'}
    assert set(c['improvement']) >= deltas
    assert c['n_matched'] == 19 and c['unmatched']['sft_only'] == 1 and c['unmatched']['rl_only'] == 1
    assert c['improvement']['ade_delta'] > 0 and c['rl']['ade'] < c['sft']['ade']   # RL is less noisy; positive: better
    assert (tmp_path / 'comparison.png').stat().st_size > 1000
    assert 'ADE' in r.stdout and 'improvement is positive when RL is better' in r.stdout

def test_python_m_and_single_file(tmp_path):
    _files(tmp_path)
    r = _run([sys.executable, '-m', 'waypoint_rl.metrics', 'sft_predictions.json', '--output', 'm.json'], tmp_path)
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / 'm.json').read_text())
    assert m['n_samples'] == 20 and {'ade', 'fde', 'miss_rate', 'waypoint_hit_rate', 'goal_reach_rate'} <= set(m)
    h = _run([str(BIN / 'wrl_eval'), '-h'], tmp_path)
    for flag in ('--targets', '--compare', '--goal-threshold', '--waypoint-threshold', '--output', '--plot'):
        assert flag in h.stdout

def test_targets_from_episode_files(tmp_path):
    t, keys = _files(tmp_path)
    (tmp_path / 'episodes' / 'a').mkdir(parents=True)
    for e in range(4):   # episodes in the original schema; the RL/SFT files' own targets are ignored in favour of these
        obs = lambda i: dict(cameras=dict(front=dict(image_path=f'{i}.png')), state=dict(speed_mps=1., yaw_rad=0.))
        frames = [dict(t=i, observations=obs(i),
                       expert=dict(waypoints=t[e * 5 + i].tolist())) for i in range(5)]
        doc = dict(episode_id=f'ep{e}', domain='toy', source='test', cameras=['front'],
                   waypoint_spec=dict(horizon_steps=8, dt=.5, frame='ego', units='m'), frames=frames)
        (tmp_path / 'episodes' / 'a' / f'ep{e}.json').write_text(json.dumps(doc))
    r = _run([str(BIN / 'wrl_eval'), 'sft_predictions.json', '--targets', 'episodes/**/*.json', '--output', 'm.json'],
             tmp_path)
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / 'm.json').read_text())
    assert m['n_samples'] == 20 and m['targets']['n_matched'] == 20
    own = open_loop_metrics(read_predictions(tmp_path / 'sft_predictions.json').pred, t)
    assert m['ade'] == pytest.approx(own['ade'], abs=1e-3)

def test_original_episodes_shape_with_targets(tmp_path):
    rng = np.random.default_rng(3); t = rng.normal(size=(6, 4, 2)); p = t + .5
    (tmp_path / 'original_preds.json').write_text(json.dumps({'episodes': [{'waypoints': w} for w in p.tolist()]}))
    (tmp_path / 'original_targets.json').write_text(json.dumps({'episodes': t.tolist()}))
    r = _run([str(BIN / 'wrl_eval'), 'original_preds.json', '--targets', 'original_targets.json', '--output', 'm.json'],
             tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'paired by position' in r.stderr
    m = json.loads((tmp_path / 'm.json').read_text())
    assert m['ade'] == pytest.approx(math.sqrt(.5), abs=1e-9) and m['targets']['matching'] == 'position'

@pytest.mark.parametrize('args,msg', [
    (['missing.json'], 'missing.json: no such file'),
    (['malformed.json'], 'malformed.json: malformed JSON'),
    (['nofield.json'], "samples[1]: missing field 'pred'"),
    (['shape.json'], 'samples[2].pred: has 3 points, expected 8'),
    (['sft_predictions.json', 'short.json', '--compare'], 'shape mismatch'),
    (['sft_predictions.json', 'other.json', '--compare'], 'matches a sample'),
    (['sft_predictions.json', '--compare'], '--compare needs exactly two'),
    (['sft_predictions.json', 'rl_predictions.json', 'other.json', '--compare'], '--compare needs exactly two'),
    (['sft_predictions.json', 'rl_predictions.json'], 'give one, or two with --compare'),
    (['sft_predictions.json', '--targets', 'nothing/*.json'], '--targets: no file matches'),
])
def test_cli_errors(tmp_path, monkeypatch, capsys, args, msg):
    _files(tmp_path)
    good = json.loads((tmp_path / 'sft_predictions.json').read_text())
    (tmp_path / 'malformed.json').write_text('{"format": "waypoint_rl.predictions", ')
    d = json.loads(json.dumps(good)); del d['samples'][1]['pred']; (tmp_path / 'nofield.json').write_text(json.dumps(d))
    d = json.loads(json.dumps(good)); d['samples'][2]['pred'] = d['samples'][2]['pred'][:3]
    (tmp_path / 'shape.json').write_text(json.dumps(d))
    d = json.loads(json.dumps(good))
    for s in d['samples']: s['pred'], s['target'] = s['pred'][:4], s['target'][:4]
    (tmp_path / 'short.json').write_text(json.dumps(d))
    d = json.loads(json.dumps(good))
    for s in d['samples']: s['episode_id'] = 'other_' + s['episode_id']
    (tmp_path / 'other.json').write_text(json.dumps(d))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e: wrl_eval(args)       # in-process: argparse, the error path and the exit code
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith('error: ') and msg in err and err.count('\n') == 1, err

def test_cli_error_in_a_fresh_process(tmp_path):
    r = _run([str(BIN / 'wrl_eval'), 'nope.json'], tmp_path)
    assert r.returncode == 2 and r.stderr == 'error: nope.json: no such file\n', r.stderr

def test_a_closed_pipe_is_one_line(tmp_path):
    "`wrl_eval ... | head`: the reader goes away before the output is written"
    _files(tmp_path)
    p = subprocess.Popen([str(BIN / 'wrl_eval'), 'sft_predictions.json', '--output', '-'], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdout.close()                                           # as `head` does once it has its lines
    err = p.stderr.read(); p.wait(timeout=120)
    assert p.returncode == 1 and err.count('\n') == 1 and err.startswith('error: stdout:'), (p.returncode, err)

def test_predict_refuses_a_camera_the_episodes_lack_and_duplicate_ids(tmp_path, capsys):
    import shutil
    from waypoint_rl.episodes import write_expert_episodes
    from waypoint_rl.policy import WaypointNet, WaypointNetConfig, save_sft_checkpoint
    from waypoint_rl.metrics import wrl_predict
    write_expert_episodes(tmp_path / 'eps', 2, seed=0, show_progress=False)
    cfg = dict(channels=[8, 8], z_dim=8, hidden=8)
    save_sft_checkpoint(tmp_path / 'two.pt', WaypointNet(WaypointNetConfig(cameras=['front', 'side_left'], **cfg)))
    save_sft_checkpoint(tmp_path / 'one.pt', WaypointNet(WaypointNetConfig(**cfg)))
    def fails(argv, msg):
        with pytest.raises(SystemExit) as e: wrl_predict(argv + ['--device', 'cpu', '--quiet'])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.startswith('error: ') and err.count('\n') == 1 and msg in err, err
    out = tmp_path / 'p.json'
    fails(['--checkpoint', str(tmp_path / 'two.pt'), '--eval-data', str(tmp_path / 'eps/*.json'), '--output', str(out)],
          "no frame has the policy's camera 'side_left'")
    shutil.copy(tmp_path / 'eps/toy_000000.json', tmp_path / 'eps/copy.json')
    fails(['--checkpoint', str(tmp_path / 'one.pt'), '--eval-data', str(tmp_path / 'eps/*.json'), '--output', str(out)],
          "episode_id 'toy_000000' is also the id of")
    assert not out.exists()

# ---- pinned details: shapes of empty inputs, counts, messages, the file version -----------------------------------

def test_one_dimensional_waypoints_are_refused_clearly():
    with pytest.raises(ValueError, match=r'shaped \(\.\.\., K, 2\)'): ade(np.zeros(2), np.zeros(2))

def test_no_episodes_gives_zero_counts():
    from waypoint_rl.metrics import closed_loop_metrics
    m = closed_loop_metrics([])
    assert (m['n_episodes'], m['n_goal_episodes'], m['n_route_waypoints_hit'], m['n_route_waypoints']) == (0, 0, 0, 0)

def test_written_file_is_version_1_and_default_goal_threshold_is_3m(tmp_path, capsys):
    t = np.zeros((1, 2, 2)); p = t.copy(); p[0, -1] = [2.5, 0]      # FDE 2.5 m: a goal reach at the default 3 m
    write_predictions(Predictions([('e', 0)], p, t), tmp_path / 'p.json')
    d = json.loads((tmp_path / 'p.json').read_text())
    assert (d['format'], d['version']) == ('waypoint_rl.predictions', 1)
    from waypoint_rl.metrics import evaluate_files
    assert evaluate_files(str(tmp_path / 'p.json'))['goal_reach_rate'] == 1.0
    out = tmp_path / 'm.json'
    wrl_eval([str(tmp_path / 'p.json'), '--output', str(out)])
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and 'wrote None' not in printed

def test_closed_loop_only_file_without_horizon_has_empty_samples(tmp_path):
    ep = dict(episode_id='e', goal_reached=True, waypoints_hit=1, waypoints_total=1, length=3, termination='goal',
              **{'return': 1.0})
    (tmp_path / 'p.json').write_text(json.dumps(dict(format='waypoint_rl.predictions', version=1, samples=[],
                                                     episodes=[ep])))
    assert read_predictions(tmp_path / 'p.json').pred.shape == (0, 1, 2)

def test_a_fully_masked_episode_adds_no_targets(tmp_path):
    from waypoint_rl.metrics import read_targets
    for e, wp in (('a', [[1., 2.], [3., 4.]]), ('b', [[1., None], [3., 4.]])):
        frames = [dict(t=0, expert=dict(waypoints=wp))]
        (tmp_path / f'{e}.json').write_text(json.dumps(dict(episode_id=e, frames=frames)))
    keys, tg = read_targets(str(tmp_path / '*.json'))
    assert keys == [('a', 0)] and tg.shape == (1, 2, 2)

def _preds(pred, target, source):
    return Predictions([('e', i) for i in range(len(pred))], np.asarray(pred, float), np.asarray(target, float),
                       source=source)

def test_compare_names_each_files_waypoint_count():
    from waypoint_rl.metrics import compare_predictions
    from waypoint_rl.utils import UserError
    with pytest.raises(UserError, match='sft.json has 3 waypoints per sample, rl.json has 4'):
        compare_predictions(_preds(np.zeros((1, 3, 2)), np.zeros((1, 3, 2)), 'sft.json'),
                            _preds(np.zeros((1, 4, 2)), np.zeros((1, 4, 2)), 'rl.json'))

def test_half_a_metre_better_counts_as_rl_better():
    from waypoint_rl.metrics import compare_predictions
    t = np.zeros((2, 1, 2))
    c = compare_predictions(_preds([[[1., 0]], [[0, 0]]], t, 's'), _preds([[[.5, 0]], [[0, 0]]], t, 'r'))
    pc = c['paired']
    assert (pc['samples_rl_better'], pc['samples_sft_better'], pc['samples_tied']) == (1, 0, 1)

def test_comparison_bars_sit_either_side_of_their_tick():
    from waypoint_rl.metrics import plot_comparison
    t = np.zeros((2, 1, 2))
    fig = plot_comparison(_preds(t + 1, t, 's'), _preds(t + .5, t, 'r'))
    centres = sorted(round(r.get_x() + r.get_width() / 2, 6) for r in fig.axes[0].patches)
    assert centres == pytest.approx([-.19, .19, .81, 1.19])

def test_bad_recorded_world_is_one_user_error():
    from types import SimpleNamespace
    from waypoint_rl.metrics import closed_loop_config
    from waypoint_rl.utils import UserError
    pol = SimpleNamespace(cameras=('front',), horizon_steps=8)
    with pytest.raises(UserError, match="eval episodes' env_config"):
        closed_loop_config(pol, [SimpleNamespace(meta=dict(env_config=dict(dt=-1.0)))])

def test_world_checks_allow_5_failures_per_100_routes():
    from waypoint_rl.metrics import world_checks
    cell = lambda fails: dict(n_episodes=200, n_goal_episodes=200 - fails)
    m = {'SFT': {'shift': cell(0), 'lag': cell(0)}, 'SFT + RL delta': {'shift': cell(10), 'lag': cell(10)}}
    assert world_checks(m) == {'shift': (10, 10.0, True), 'lag': (10, 10.0, True)}

def test_batch_size_1_is_allowed():
    from waypoint_rl.metrics import _check_closed_loop_flags
    _check_closed_loop_flags(0, 0, 1, 1, 'cpu', None, None)

def test_no_fully_labelled_frame_gives_no_samples(tmp_path):
    from waypoint_rl.episodes import write_expert_episodes, load_episodes, EpisodeDataset
    from waypoint_rl.metrics import predict_open_loop
    write_expert_episodes(tmp_path / 'eps', 1, seed=0, show_progress=False)
    f = next((tmp_path / 'eps').glob('*.json')); d = json.loads(f.read_text())
    for fr in d['frames']: fr['expert']['waypoints'][-1] = None          # every label masked
    f.write_text(json.dumps(d))
    ds = EpisodeDataset(load_episodes(str(tmp_path / 'eps/*.json')), cameras=['front'], image_size=64)
    policy = lambda images, image_valid: pytest.fail('called without frames')
    policy.cameras = ['front']
    p = predict_open_loop(policy, ds)
    assert p.keys == [] and p.pred.shape == (0, ds.horizon_steps, 2) and len(p) == 0
