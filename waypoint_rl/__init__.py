__version__ = "0.1.0"
__all__ = []

# %% ../nbs/00_env.ipynb #dfe97598
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #f3062961
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #21a7e404
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #77efe901
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #5fb9fc22
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #abb0523c
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #f2e5fc97
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #4931bbf6
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #4769b172
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #5d2f2234
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #475aec91
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #c76ede79
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #17b34639
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #72d4546d
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #1e2ce828
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #200a3298
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #0e94d0a8
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #7c6dce9b
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #c6916447
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #beb65043
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #6ca5f47f
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #c8b0af71
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #ab5dff9a
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #1c5181a3
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #fce33511
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #791c4e50
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #8fe07413
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)

# %% ../nbs/00_env.ipynb #d58a086a
import gymnasium as _gym
if 'waypoint_rl/ToyWaypoint-v0' not in _gym.registry:
    _gym.register(id='waypoint_rl/ToyWaypoint-v0', entry_point='waypoint_rl.env:ToyWaypointEnv',
                  vector_entry_point='waypoint_rl.env:ToyWaypointVecEnv', disable_env_checker=False)