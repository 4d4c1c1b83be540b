"wrl_ppo under torchrun: two CPU processes (gloo) train one policy; resume continues it; one process is unchanged"
import os, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
from waypoint_rl.ppo_delta import read_jsonl
from waypoint_rl.policy import WaypointNet, WaypointNetConfig, save_sft_checkpoint, load_checkpoint

ENV = dict(os.environ, OMP_NUM_THREADS="1")
BIN = Path(sys.executable).parent
RUN = ['--num-envs', '4', '--num-steps', '16', '--num-minibatches', '4', '--seed', '5']

def torchrun(n:int, *args, module=False)->list:
    "The command: `torchrun --standalone --nproc-per-node n wrl_ppo ...` (or `-m waypoint_rl.ppo_delta`)"
    target = ['-m', 'waypoint_rl.ppo_delta'] if module else [str(BIN/'wrl_ppo')]
    return [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', str(n), *target, *args]

@pytest.fixture(scope='module')
def sft(tmp_path_factory):
    p = tmp_path_factory.mktemp('sft')/'model.pt'
    torch.manual_seed(0); save_sft_checkpoint(p, WaypointNet(WaypointNetConfig(channels=[8, 8], z_dim=16, hidden=32)))
    return p

def trained(path:Path)->dict:
    sds = load_checkpoint(path, 'delta')['state_dicts']
    return {f'{part}.{k}': v for part in ('delta', 'value', 'policy') for k, v in sds[part].items()}

def same(a:dict, b:dict)->bool: return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

def no_time(recs:list)->list: return [{k: v for k, v in r.items() if k != 'charts/SPS'} for r in recs]

def ok(cmd, **kw):
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300, **kw)
    assert r.returncode == 0, r.stderr[-3000:]
    return r

@pytest.fixture(scope='module')
def two(sft, tmp_path_factory):
    "An uninterrupted 2-process run: 8 iterations of 2 ranks x 4 cars x 16 steps, a checkpoint every 2"
    out = tmp_path_factory.mktemp('ddp')/'run'
    r = ok(torchrun(2, '--sft-model', str(sft), '--out-dir', str(out), '--total-steps', '1024',
                    '--checkpoint-every', '256', *RUN))
    return out, r

def test_two_processes_train_one_policy(two):
    out, r = two
    recs = read_jsonl(out/'train_log.jsonl')
    assert [x['global_step'] for x in recs] == [128*i for i in range(1, 9)]      # both ranks' steps
    assert [x['iteration'] for x in recs] == list(range(1, 9))                   # one record per iteration
    assert all(x['dist/weight_spread'] == 0.0 for x in recs)                      # identical weights on both ranks
    assert recs[-1]['charts/total_episodes'] == sum(x.get('charts/episodes', 0) for x in recs)
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ['.lock', 'checkpoint_1024.pt', 'checkpoint_256.pt',
        'checkpoint_512.pt', 'checkpoint_768.pt', 'final.pt', 'learning_curve.png', 'train_log.jsonl']
    assert r.stdout.count('wrote') == 1                                           # rank 0 reports, once
    ck = load_checkpoint(out/'final.pt', 'delta')
    assert ck['step'] == 1024 and len(ck['state_dicts']['trainer']['ranks']) == 2

def test_killed_and_resumed_under_torchrun_ends_bit_identical(sft, two, tmp_path):
    out = tmp_path/'run'
    args = ['--sft-model', str(sft), '--out-dir', str(out), '--total-steps', '1024', '--checkpoint-every', '256', *RUN]
    p = subprocess.Popen(torchrun(2, *args), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    t0 = time.time()
    while not (out/'checkpoint_512.pt').exists() and p.poll() is None and time.time() - t0 < 240: time.sleep(0.01)
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    assert not (out/'final.pt').exists()
    ok(torchrun(2, *args, '--resume'))
    assert same(trained(two[0]/'final.pt'), trained(out/'final.pt'))
    assert no_time(read_jsonl(out/'train_log.jsonl')) == no_time(read_jsonl(two[0]/'train_log.jsonl'))

def test_resume_needs_the_same_number_of_processes(sft, two, tmp_path):
    r = subprocess.run([str(BIN/'wrl_ppo'), '--sft-model', str(sft), '--out-dir', str(two[0]), '--total-steps', '2048',
                        '--resume', *RUN], env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and 'trained by 2 process(es), this one has 1' in r.stderr, r.stderr

def test_one_process_is_unchanged_and_python_m_works(sft, tmp_path):
    args = ['--total-steps', '256', '--checkpoint-every', '0', *RUN]
    ok([str(BIN/'wrl_ppo'), '--sft-model', str(sft), '--out-dir', str(tmp_path/'plain'), *args])
    ok(torchrun(1, '--sft-model', str(sft), '--out-dir', str(tmp_path/'one'), *args, module=True))
    assert same(trained(tmp_path/'plain'/'final.pt'), trained(tmp_path/'one'/'final.pt'))

def test_tensorboard_events_from_rank_0_only(two):
    pytest.importorskip('tensorboard')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = list((two[0]/'tb').glob('events.out.tfevents.*'))
    assert len(events) == 1, events
    acc = EventAccumulator(str(events[0])); acc.Reload()
    assert [e.step for e in acc.Scalars('charts/SPS')] == [128*i for i in range(1, 9)]

# ---------------------------------------------------------------- wrl_sft under torchrun
@pytest.fixture(scope='module')
def episodes(tmp_path_factory):
    from waypoint_rl.episodes import write_expert_episodes
    from waypoint_rl.env import ToyWaypointConfig
    d = tmp_path_factory.mktemp('episodes')
    write_expert_episodes(d, 6, seed=0, config=ToyWaypointConfig(route_length=40.0), show_progress=False)
    return d

def sft_cmd(n:int, episodes:Path, out:Path, *extra)->list:
    return [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', str(n),
            str(BIN/'wrl_sft'), '--episodes-glob', str(episodes/'*.json'), '--out-dir', str(out), '--batch-size', '8',
            '--num-steps', '12', '--z-dim', '16', *extra]

def test_sft_under_torchrun(episodes, tmp_path):
    "Two ranks train one model on disjoint shares of the frames; rank 0 writes model.pt and the log, once"
    r = ok(sft_cmd(2, episodes, tmp_path/'two'))
    assert r.stdout.count('wrote') == 1
    assert sorted(p.name for p in (tmp_path/'two').iterdir() if p.is_file()) == ['.lock', 'loss_curve.png', 'model.pt',
                                                                               'split.json', 'train_log.jsonl']
    ck = load_checkpoint(tmp_path/'two'/'model.pt', 'sft')
    assert ck['step'] == 12 and all(torch.isfinite(v).all() for v in ck['state_dicts']['sft'].values())
    recs = read_jsonl(tmp_path/'two'/'train_log.jsonl')
    assert [x['step'] for x in recs if 'loss' in x][:2] == [1, 11]
    one = ok(sft_cmd(1, episodes, tmp_path/'one'))                       # one process: the plain command's model
    plain = subprocess.run([str(BIN/'wrl_sft'), '--episodes-glob', str(episodes/'*.json'), '--out-dir',
                            str(tmp_path/'plain'), '--batch-size', '8', '--num-steps', '12', '--z-dim', '16'],
                           env=ENV, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0 and plain.returncode == 0, plain.stderr
    a, b = (load_checkpoint(tmp_path/d/'model.pt', 'sft')['state_dicts']['sft'] for d in ('one', 'plain'))
    assert same(a, b)
