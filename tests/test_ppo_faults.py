"Faults during residual PPO runs: killed at random moments and resumed, two runs into one folder"
import os, random, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
from waypoint_rl.ppo_delta import train_ppo_delta, read_jsonl, list_checkpoints
from waypoint_rl.policy import WaypointNet, WaypointNetConfig, save_sft_checkpoint, load_checkpoint

torch.set_num_threads(1)
ENV = dict(os.environ, OMP_NUM_THREADS="1")
BIN = Path(sys.executable).parent
RUN = dict(total_steps=128*20, num_envs=8, num_steps=16, num_minibatches=4, checkpoint_every=128, seed=3)

def flags(d:dict)->list: return [x for k, v in d.items() for x in (f"--{k.replace('_', '-')}", str(v))]

@pytest.fixture(scope='module')
def sft(tmp_path_factory):
    p = tmp_path_factory.mktemp('sft')/'model.pt'
    torch.manual_seed(0); save_sft_checkpoint(p, WaypointNet(WaypointNetConfig(channels=[8, 8], z_dim=16, hidden=32)))
    return p

@pytest.fixture(scope='module')
def reference(sft, tmp_path_factory):
    "The uninterrupted run"
    out = tmp_path_factory.mktemp('ref')/'run'
    train_ppo_delta(sft, out, show_progress=False, **RUN)
    return out

def trained(path:Path)->dict:
    sds = load_checkpoint(path, 'delta')['state_dicts']
    return {f'{part}.{k}': v for part in ('delta', 'value', 'policy') for k, v in sds[part].items()}

def no_time(recs:list)->list: return [{k: v for k, v in r.items() if k != 'charts/SPS'} for r in recs]

def wait_for(cond, timeout=120.):
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout: raise TimeoutError
        time.sleep(0.01)

def test_killed_at_random_moments_and_resumed_ends_bit_identical(sft, reference, tmp_path):
    "SIGKILL a few times at random moments (some during a save), resume each time: same weights and log as never killed"
    out, rng, kills = tmp_path/'run', random.Random(0), 0
    cmd = [str(BIN/'wrl_ppo'), '--sft-model', str(sft), '--out-dir', str(out), *flags(RUN)]
    for attempt in range(6):
        resume = ['--resume'] if list_checkpoints(out) else (['--overwrite'] if out.exists() else [])
        p = subprocess.Popen(cmd + resume, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if attempt < 3:                                   # kill after a new checkpoint, at a random moment after it
            seen = {c.name for c in list_checkpoints(out)}
            try: wait_for(lambda: p.poll() is not None or {c.name for c in list_checkpoints(out)} - seen)
            except TimeoutError: p.kill(); raise
            time.sleep(rng.uniform(0, 0.4))
            if p.poll() is None: p.send_signal(signal.SIGKILL); kills += 1
        p.wait(timeout=240)
        if p.returncode == 0: break
        assert p.returncode == -signal.SIGKILL, p.stderr.read()
    assert p.returncode == 0 and kills >= 2, (p.returncode, kills)
    a, b = trained(reference/'final.pt'), trained(out/'final.pt')
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert no_time(read_jsonl(out/'train_log.jsonl')) == no_time(read_jsonl(reference/'train_log.jsonl'))
    assert not list(out.glob('.*.tmp'))

def test_a_second_run_into_a_busy_folder_is_refused(sft, tmp_path):
    out = tmp_path/'run'
    cmd = [str(BIN/'wrl_ppo'), '--sft-model', str(sft), '--out-dir', str(out), *flags({**RUN, 'total_steps': 128*400})]
    first = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (out/'train_log.jsonl').exists())
        second = subprocess.run(cmd + ['--overwrite'], env=ENV, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        assert second.stderr == f"error: --out-dir {out}: another run is writing there (it holds {out/'.lock'}); " \
                                "wait for it to finish or choose another folder\n"
        assert first.poll() is None                          # the first run goes on
    finally: first.kill(); first.wait()
    assert list_checkpoints(out)                             # and its files are its own

# ---------------------------------------------------------------- mutated flags and files: one line, exit 2
from hypothesis import HealthCheck, given, settings, strategies as st
import contextlib, io
from waypoint_rl.ppo_delta import wrl_ppo

BAD_VALUES = {'--lr': ['0', '-1', 'nan', 'inf', '-inf', 'x'], '--num-envs': ['0', '-3', '1000000000', '2.5', 'x'],
              '--num-steps': ['0', '-1', 'x'], '--max-delta': ['0', '-1', 'nan', 'inf'],
              '--init-std': ['0', '-1', 'nan', 'inf'], '--reward-scale': ['0', 'nan', 'inf', '-1'],
              '--seed': ['-1', '-5', '1.5', 'x'], '--gamma': ['-0.1', '1.5', 'nan'], '--gae-lambda': ['2', 'nan'],
              '--clip-coef': ['0', 'nan', 'inf'], '--ent-coef': ['-1', 'nan', 'inf'], '--delta-l2': ['-1', 'nan'],
              '--episodes': ['0', '-1'], '--total-steps': ['1', '0'], '--checkpoint-every': ['-1'],
              '--threads': ['-1'], '--max-seconds': ['-1'], '--hidden': ['0', '-2'], '--update-epochs': ['0'],
              '--num-minibatches': ['0', '100000'], '--target-kl': ['0', '-1', 'nan'], '--device': ['warp9', 'cuda:99'],
              '--dynamics': ['icy', 'gain=nan', 'gain=-1', 'lag=x'], '--dynamics-shift': ['icy']}

def one_line_exit(argv:list, err_code=2)->str:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        with pytest.raises(SystemExit) as e: wrl_ppo(argv)
    msg = err.getvalue()
    assert e.value.code == err_code and msg.startswith('error: ') and msg.count('\n') == 1, (argv, e.value.code, msg)
    assert 'Traceback' not in msg
    return msg

@pytest.mark.parametrize('flag,value', [(f, v) for f, vs in BAD_VALUES.items() for v in vs])
def test_bad_flags_are_one_line(sft, tmp_path, flag, value):
    "Every bad value of every numeric or named flag: one line, exit 2, nothing written (argparse refuses non-numbers)"
    argv = ['--sft-model', str(sft), '--out-dir', str(tmp_path/'x'), f'{flag}={value}']
    if flag not in ('--num-envs', '--num-steps'): argv += ['--num-envs', '4', '--num-steps', '16']
    if value == 'x' or (flag in ('--num-envs', '--seed', '--num-steps') and '.' in value):
        with contextlib.redirect_stderr(io.StringIO()) as err, pytest.raises(SystemExit) as e: wrl_ppo(argv)
        assert e.value.code == 2 and f'argument {flag}' in err.getvalue() and 'invalid' in err.getvalue()
    else: one_line_exit(argv)
    assert not (tmp_path/'x'/'final.pt').exists()

def _mutations(good:bytes):
    "Ways a checkpoint file goes bad: empty, truncated, random bytes, a crafted pickle, a JSON file"
    import pickle
    class Boom:
        def __reduce__(self): return (os.system, ('echo pwned > /tmp/wrl_pwned',))
    return {'empty': b'', 'truncated': good[:len(good)//2], 'random': os.urandom(2048),
            'pickle': pickle.dumps({'kind': 'sft', 'x': Boom()}), 'json': b'{"kind": "sft"}'}

@settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(['empty', 'truncated', 'random', 'pickle', 'json', 'nan']))
def test_bad_sft_model_files_are_one_line(sft, tmp_path, kind):
    bad = tmp_path/f'{kind}.pt'
    if kind == 'nan':
        net = load_checkpoint(sft)
        from waypoint_rl.policy import models_from_checkpoint
        n = models_from_checkpoint(net)[0]
        with torch.no_grad(): next(n.parameters()).view(-1)[0] = float('nan')
        save_sft_checkpoint(bad, n)
    else: bad.write_bytes(_mutations(sft.read_bytes())[kind])
    msg = one_line_exit(['--sft-model', str(bad), '--out-dir', str(tmp_path/'x'), '--num-envs', '4',
                         '--num-steps', '16'])
    assert str(bad) in msg and not Path('/tmp/wrl_pwned').exists(), msg

def test_a_corrupt_checkpoint_stops_resume_with_one_line(sft, tmp_path):
    out = tmp_path/'run'
    train_ppo_delta(sft, out, total_steps=128, num_envs=4, num_steps=16, checkpoint_every=64, show_progress=False)
    last = list_checkpoints(out)[-1]; last.write_bytes(last.read_bytes()[:1000])
    msg = one_line_exit(['--sft-model', str(sft), '--out-dir', str(out), '--total-steps', '256', '--num-envs', '4',
                         '--num-steps', '16', '--resume'])
    assert last.name in msg, msg

def test_a_full_disk_is_one_line_naming_the_file(sft, tmp_path, monkeypatch):
    "The disk fills during a checkpoint save: one line naming the checkpoint, no temp file, the earlier files intact"
    import errno, waypoint_rl.utils as U
    out, calls = tmp_path/'run', []
    real = U.os.fsync
    def fsync(fd):
        calls.append(fd)
        if len(calls) >= 2: raise OSError(errno.ENOSPC, 'No space left on device')   # the second file written
        return real(fd)
    monkeypatch.setattr(U.os, 'fsync', fsync)
    msg = one_line_exit(['--sft-model', str(sft), '--out-dir', str(out), '--total-steps', '256', '--num-envs', '4',
                         '--num-steps', '16', '--checkpoint-every', '64'])
    assert msg == f"error: {out/'checkpoint_128.pt'}: no space left on the device (disk full); nothing was written " \
                  "there\n", msg
    assert [p.name for p in list_checkpoints(out)] == ['checkpoint_64.pt'] and not list(out.glob('.*.tmp'))
    load_checkpoint(out/'checkpoint_64.pt', 'delta')                      # the good one is whole

def test_a_full_disk_while_logging_is_one_line(sft, tmp_path, monkeypatch):
    import builtins, errno
    out, real_open = tmp_path/'run', builtins.open
    def full_open(f, mode='r', *a, **k):
        if str(f).endswith('train_log.jsonl') and 'a' in mode: raise OSError(errno.ENOSPC, 'No space left on device')
        return real_open(f, mode, *a, **k)
    monkeypatch.setattr(builtins, 'open', full_open)
    msg = one_line_exit(['--sft-model', str(sft), '--out-dir', str(out), '--total-steps', '128', '--num-envs', '4',
                         '--num-steps', '16'])
    assert msg.startswith(f"error: {out/'train_log.jsonl'}: no space left on the device"), msg
