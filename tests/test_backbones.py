"""Swappable SFT backbones: the built-ins through every downstream path, a backbone registered from Python, a residual
trained on a ResNet-18 SFT network, and the errors for unknown backbones."""
import os, subprocess, sys, textwrap
import numpy as np, pytest, torch, torch.nn as nn
from waypoint_rl.env import ToyWaypointConfig, ToyWaypointEnv
from waypoint_rl.policy import (BACKBONES, CameraEncoder, CheckpointError, ResNet18Encoder, WaypointNet,
                                WaypointNetConfig, WaypointPolicyTorch, DeltaHead, encode_obs, load_checkpoint,
                                models_from_checkpoint, register_backbone, save_delta_checkpoint, save_sft_checkpoint)
from waypoint_rl.utils import UserError

ENV = dict(os.environ, OMP_NUM_THREADS="1")
BUILT_IN = ["cnn", "resnet18"]

def _cfg(arch, **kw): return WaypointNetConfig(arch=arch, z_dim=16, hidden=16, horizon_steps=4, **kw)

def _trained_stats(net):
    "One train-mode pass, so batch-norm running statistics differ from their initial values"
    net.train()(({"front": torch.rand(6, 3, 64, 64)}))
    return net.eval()

@pytest.fixture
def pooled_mlp():
    "A backbone of one's own: 8×8 average-pooled pixels → linear → z (registered for the test, removed after)"
    class PooledMLP(nn.Module):
        def __init__(self, z_dim):
            super().__init__()
            self.pool, self.mlp = nn.AdaptiveAvgPool2d(8), nn.Sequential(nn.Flatten(), nn.Linear(192, z_dim), nn.ReLU())
        def forward(self, x): return self.mlp(self.pool(x))
    register_backbone("pooled_mlp", lambda cfg: PooledMLP(cfg.z_dim))
    yield PooledMLP
    BACKBONES.pop("pooled_mlp", None)

def test_registry_lists_the_built_ins():
    assert list(BACKBONES)[:2] == BUILT_IN
    assert isinstance(WaypointNet(_cfg("cnn")).encoder, CameraEncoder)
    assert isinstance(WaypointNet(_cfg("resnet18")).encoder, ResNet18Encoder)

@pytest.mark.parametrize("arch", BUILT_IN)
def test_forward_shapes_and_checkpoint_round_trip(tmp_path, arch):
    torch.manual_seed(0)
    net = _trained_stats(WaypointNet(_cfg(arch, cameras=["front", "side_left"])))
    imgs = {"front": torch.rand(3, 3, 64, 64), "side_left": torch.rand(3, 3, 64, 64)}
    valid = {"side_left": torch.tensor([True, False, True])}
    with torch.no_grad(): out, z = net(imgs, valid), net.encode(imgs, valid)
    assert out.shape == (3, 4, 2) and z.shape == (3, 16) and bool(torch.isfinite(out).all())
    save_sft_checkpoint(tmp_path/"m.pt", net)
    raw = torch.load(tmp_path/"m.pt", weights_only=True)                     # plain data
    assert raw["model_config"]["sft"]["arch"] == arch
    net2, _ = models_from_checkpoint(load_checkpoint(tmp_path/"m.pt"))
    sd, sd2 = net.state_dict(), net2.state_dict()
    assert list(sd) == list(sd2) and all(torch.equal(sd[k], sd2[k]) for k in sd)   # batch-norm statistics included
    with torch.no_grad(): assert torch.equal(net2(imgs, valid), out)

@pytest.mark.parametrize("arch", BUILT_IN)
def test_policy_wrapper_and_encode_obs_with_sft_and_delta_checkpoints(tmp_path, arch):
    torch.manual_seed(1)
    net = _trained_stats(WaypointNet(_cfg(arch)))
    dh = DeltaHead(16, 4, hidden=8, max_delta=1.0, state_dim=3)
    with torch.no_grad(): dh.net[-1].weight.normal_()
    save_sft_checkpoint(tmp_path/"sft.pt", net); save_delta_checkpoint(tmp_path/"d.pt", net, dh)
    rng = np.random.default_rng(0)
    obs = {"front": rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8), "image_valid": np.ones((5, 1), bool),
           "state": rng.normal(size=(5, 4)).astype(np.float32)}
    x = torch.from_numpy(obs["front"]).permute(0, 3, 1, 2).float()/255
    with torch.no_grad(): z = net.encode({"front": x}); sft = net.head(z); d = dh(z, torch.from_numpy(obs["state"]))
    p_sft = WaypointPolicyTorch(checkpoint=str(tmp_path/"sft.pt"), device="cpu")
    p_d = WaypointPolicyTorch(checkpoint=str(tmp_path/"d.pt"), device="cpu")
    assert torch.allclose(p_sft({"front": obs["front"]}), sft, atol=1e-5)
    assert np.allclose(p_d.act(obs), (sft + d).numpy(), atol=1e-5)
    net.train()                                                                   # a caller left it in train mode
    assert torch.allclose(encode_obs(net, obs, ["front"]), z, atol=1e-5) and net.training

def test_user_backbone_goes_through_save_load_and_the_wrapper(tmp_path, pooled_mlp):
    torch.manual_seed(0)
    net = WaypointNet(_cfg("pooled_mlp"))
    save_sft_checkpoint(tmp_path/"mine.pt", net)
    p = WaypointPolicyTorch(checkpoint=str(tmp_path/"mine.pt"), device="cpu")
    assert isinstance(p.net.encoder, pooled_mlp)
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        want = net(({"front": torch.from_numpy(images).permute(0, 3, 1, 2).float()/255}))
    assert torch.allclose(p({"front": images}), want, atol=1e-6)

def test_user_backbone_in_a_fresh_process(tmp_path, pooled_mlp):
    save_sft_checkpoint(tmp_path/"mine.pt", WaypointNet(_cfg("pooled_mlp")))
    code = f"""
        import numpy as np, torch.nn as nn
        from waypoint_rl.policy import WaypointPolicyTorch, CheckpointError, register_backbone
        try: WaypointPolicyTorch(checkpoint={str(tmp_path/'mine.pt')!r}, device="cpu")
        except CheckpointError as e: print("REFUSED", e)
        class PooledMLP(nn.Module):
            def __init__(self, z_dim):
                super().__init__()
                self.pool = nn.AdaptiveAvgPool2d(8)
                self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(192, z_dim), nn.ReLU())
            def forward(self, x): return self.mlp(self.pool(x))
        register_backbone("pooled_mlp", lambda cfg: PooledMLP(cfg.z_dim))
        p = WaypointPolicyTorch(checkpoint={str(tmp_path/'mine.pt')!r}, device="cpu")
        print(tuple(p({{"front": np.zeros((2, 64, 64, 3), np.uint8)}}).shape))
        """
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=ENV,
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        f"REFUSED {tmp_path/'mine.pt'}: backbone 'pooled_mlp' is not registered (registered: cnn, resnet18); "
        "call register_backbone('pooled_mlp', build) before loading", "(2, 4, 2)"]

def test_tiny_residual_trained_on_a_resnet18_sft(tmp_path):
    from waypoint_rl.ppo_delta import train_ppo_delta
    torch.manual_seed(0)
    save_sft_checkpoint(tmp_path/"sft.pt", WaypointNet(WaypointNetConfig(arch="resnet18")).eval())
    train_ppo_delta(tmp_path/"sft.pt", tmp_path/"run", total_steps=128, num_envs=4, num_steps=16, checkpoint_every=0,
                    device="cpu", show_progress=False)
    ck = torch.load(tmp_path/"run"/"final.pt", weights_only=True)
    assert ck["kind"] == "delta" and ck["model_config"]["sft"]["arch"] == "resnet18"
    p = WaypointPolicyTorch(checkpoint=str(tmp_path/"run"/"final.pt"), device="cpu")
    env = ToyWaypointEnv(ToyWaypointConfig())
    obs, _ = env.reset(seed=0)
    batch = {k: np.asarray(v)[None] for k, v in obs.items()}
    a = p.act(batch)
    assert a.shape == (1, 8, 2) and np.isfinite(a).all()
    assert isinstance(p.net.encoder, ResNet18Encoder) and not p.net.training

def test_unknown_backbones_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match=r"^arch \(--arch\): unknown backbone 'vgg'; registered: cnn, resnet18"):
        WaypointNetConfig(arch="vgg")
    save_sft_checkpoint(tmp_path/"m.pt", WaypointNet(_cfg("cnn")))
    ck = torch.load(tmp_path/"m.pt", weights_only=True); ck["model_config"]["sft"]["arch"] = "vgg"
    torch.save(ck, tmp_path/"vgg.pt")
    with pytest.raises(CheckpointError, match=r"vgg.pt: backbone 'vgg' is not registered .*"
                                              r"call register_backbone\('vgg', build\) before loading$"):
        WaypointPolicyTorch(checkpoint=str(tmp_path/"vgg.pt"), device="cpu")
    with pytest.raises(UserError, match="name must be a non-empty string"): register_backbone("", nn.Identity)

def test_a_checkpoint_without_arch_loads_as_the_cnn(tmp_path):
    net = WaypointNet(_cfg("cnn"))
    save_sft_checkpoint(tmp_path/"m.pt", net)
    ck = torch.load(tmp_path/"m.pt", weights_only=True); del ck["model_config"]["sft"]["arch"]
    torch.save(ck, tmp_path/"old.pt")
    p = WaypointPolicyTorch(checkpoint=str(tmp_path/"old.pt"), device="cpu")
    assert p.net.cfg.arch == "cnn" and isinstance(p.net.encoder, CameraEncoder)

def test_default_cnn_keeps_its_parameter_names_and_random_init():
    "The network built with seed 0 has the names and (abs-summed) values it had before backbones could be chosen"
    torch.manual_seed(0)
    sd = WaypointNet().state_dict()
    want = {'camera_embed': 0.0, 'no_camera': 0.0, 'encoder.conv.0.weight': 41.75211950161611,
            'encoder.conv.0.bias': 1.848160671070218, 'encoder.conv.2.weight': 189.90020158901825,
            'encoder.conv.2.bias': 1.3183377203531563, 'encoder.conv.4.weight': 543.4716562023277,
            'encoder.conv.4.bias': 1.8564354823029134, 'encoder.conv.6.weight': 762.805637487666,
            'encoder.conv.6.bias': 1.1942309501755517, 'encoder.proj.0.weight': 2050.919540911913,
            'encoder.proj.0.bias': 2.126062784343958, 'waypoint_head.0.weight': 1451.2175239270732,
            'waypoint_head.0.bias': 11.041493714146782, 'waypoint_head.2.weight': 129.99679426848888,
            'waypoint_head.2.bias': 0.5069675296545029}
    assert list(sd) == list(want)
    for k, v in want.items(): assert sd[k].double().abs().sum().item() == pytest.approx(v, rel=1e-9, abs=1e-12), k

def test_wrl_sft_arch_resnet18_then_wrl_ppo(tmp_path):
    "The commands as a user runs them: a ResNet-18 SFT model, then a residual on it"
    from pathlib import Path
    from waypoint_rl.episodes import write_expert_episodes
    from waypoint_rl.env import ToyWaypointConfig
    bin_, env = Path(sys.executable).parent, dict(os.environ, OMP_NUM_THREADS="1")
    write_expert_episodes(tmp_path/"eps", 3, seed=0, config=ToyWaypointConfig(route_length=40.0), show_progress=False)
    r = subprocess.run([str(bin_/"wrl_sft"), "--episodes-glob", str(tmp_path/"eps"/"*.json"), "--out-dir",
                        str(tmp_path/"sft"), "--num-steps", "3", "--batch-size", "8", "--arch", "resnet18", "--quiet"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert load_checkpoint(tmp_path/"sft"/"model.pt")["model_config"]["sft"]["arch"] == "resnet18"
    r = subprocess.run([str(bin_/"wrl_ppo"), "--sft-model", str(tmp_path/"sft"/"model.pt"), "--out-dir",
                        str(tmp_path/"rl"), "--total-steps", "128", "--num-envs", "4", "--num-steps", "16"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and (tmp_path/"rl"/"final.pt").exists(), r.stderr
    bad = subprocess.run([str(bin_/"wrl_sft"), "--episodes-glob", str(tmp_path/"eps"/"*.json"), "--out-dir",
                          str(tmp_path/"x"), "--arch", "vgg"], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: arch (--arch): unknown backbone 'vgg'"), bad.stderr
