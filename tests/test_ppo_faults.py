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
