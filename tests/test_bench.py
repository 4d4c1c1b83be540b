"""`wrl_bench` as a user runs it: a quick run writes its table and JSON, `-h` names every flag, bad flags are one line
with exit code 2, and (with a GPU) the CUDA rows are measured."""
import json, os, subprocess, sys
from pathlib import Path

import pytest, torch
from waypoint_rl.bench import ROW_KEYS, bench, wrl_bench

BIN = Path(sys.executable).parent
ENV = dict(os.environ, OMP_NUM_THREADS='1')

def _run(*args, cwd=None):
    return subprocess.run([str(BIN/'wrl_bench'), *args], capture_output=True, text=True, cwd=cwd, env=ENV,
                          timeout=300)

def test_quick_run_prints_the_table_and_writes_json(tmp_path):
    p = _run('--quick', '--output', 'x.json', cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert 'wrl_bench on cpu' in p.stdout and 'torch ' in p.stdout
    for measure in ('env: state only', 'env: front camera', 'SFT encoder', 'residual PPO end to end',
                    'SB3 PPO, same delta head'):
        assert measure in p.stdout
    res = json.loads((tmp_path/'x.json').read_text())
    assert {'format', 'device', 'device_name', 'torch', 'threads', 'repeats', 'sizes', 'wall_s', 'rows'} <= set(res)
    assert res['format'] == 'wrl_bench/1' and res['device'] == 'cpu' and res['quick'] is True
    for row in res['rows']:
        assert tuple(row) == ROW_KEYS
        assert row['rate'] is None or (row['rate'] > 0 and len(row['runs']) == res['repeats'])
    ppo = next(r for r in res['rows'] if r['measure'] == 'residual PPO end to end (numpy env)')
    assert ppo['ratio_of'] == 'PPO / encoder' and ppo['ratio'] > 0

def test_help_names_every_flag():
    p = _run('-h')
    assert p.returncode == 0
    for flag in ('--device', '--sizes', '--seconds', '--repeats', '--ppo-cars', '--ppo-iterations', '--no-sb3',
                 '--threads', '--output', '--quick', '--no-show', '--no-compile'):
        assert flag in p.stdout, flag

def test_bad_flag_is_one_line_exit_2_in_a_fresh_process():
    p = _run('--repeats', '0')
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == ['error: repeats (--repeats): must be an integer >= 1, got 0']

@pytest.mark.parametrize('args, flag', [(['--seconds', '0'], '--seconds'), (['--sizes', '0,4'], '--sizes'),
                                        (['--sizes', 'a'], '--sizes'), (['--ppo-cars', '0'], '--ppo-cars'),
                                        (['--ppo-iterations', '-1'], '--ppo-iterations'),
                                        (['--threads', '0'], '--threads'), (['--device', 'tpu'], '--device')])
def test_bad_flags_name_the_flag(args, flag, capsys):
    with pytest.raises(SystemExit) as e: wrl_bench(args + ['--quick'])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: ') and flag in err[0]

@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message on a machine without CUDA')
def test_cuda_without_a_gpu_is_one_line(capsys):
    with pytest.raises(SystemExit) as e: wrl_bench(['--device', 'cuda', '--quick'])
    assert e.value.code == 2 and 'CUDA is not available' in capsys.readouterr().err

@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_rows(tmp_path):
    res = bench(device='cuda', quick=True, sizes=(64,), output=str(tmp_path/'c.json'), show=False)
    rows = {(r['measure'], r['precision'], r['N']): r for r in res['rows']}
    bf16 = rows[('SFT encoder', 'bf16 channels-last', 64)]
    assert bf16['rate'] > 0 and bf16['ratio_of'] == 'bf16 channels-last / fp32' and bf16['runs_on'] == 'cuda'
    assert rows[('env: front camera', 'fp32', 64)]['runs_on'] == 'cuda'
    ppo = rows[('residual PPO end to end (device env)', 'bf16 channels-last', 8)]
    assert ppo['rate'] > 0 and ppo['ratio_of'] == 'PPO / encoder'
    assert res['device_name'] == torch.cuda.get_device_name()
    assert json.loads((tmp_path/'c.json').read_text())['rows'] == res['rows']
