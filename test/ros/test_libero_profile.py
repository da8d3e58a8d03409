"""The libero profile: arguments resolve to the graph the harness and `ros2 launch` start, and every input of the
policy and world model is an output of the bridge (or of the policy)."""

from __future__ import annotations

import pytest

from rynnvla_ros import topics
from rynnvla_ros.profiles import get_profile


def _remaps(profile, name: str) -> dict[str, str]:
    return dict(next(n for n in profile.nodes if n.name == name).remappings)


def test_arguments_resolve_trigger_and_policy():
    profile = get_profile("libero")
    values = profile.resolve({})
    assert (values["suite"], values["lockstep"], values["trigger"], values["policy"]) == (
        "libero_goal", "true", "request", "false",
    )  # fmt: skip
    assert [n.name for n in profile.active_nodes(values)] == ["libero_bridge"]
    values = profile.resolve({"checkpoint": "/ck", "lockstep": "false", "world_model": "true"})
    assert (values["trigger"], values["policy"]) == ("frame", "true")
    assert [n.name for n in profile.active_nodes(values)] == ["libero_bridge", "policy", "world_model"]
    assert profile.resolve({"official_checkpoint": "/ck", "trigger": "frame"})["trigger"] == "frame"
    with pytest.raises(ValueError, match="mode:=fast"):
        profile.resolve({"mode": "fast"})


def test_the_graph_is_wired_bridge_to_policy_and_back():
    profile = get_profile("libero")
    bridge, policy, world = (_remaps(profile, n) for n in ("libero_bridge", "policy", "world_model"))
    assert policy["joint_states"] == bridge["state"] == topics.LIBERO_STATE
    for key in ("front/image_raw", "wrist/image_raw", "task", "chunk_request"):
        assert policy[key] == bridge[key], key
    assert policy["action_chunk"] == bridge["action_chunk"] == world["action_chunk"] == topics.ACTION_CHUNK
    assert world["joint_states"] == topics.LIBERO_STATE and world["front/image_raw"] == bridge["front/image_raw"]
    assert bridge["episode_status"] == topics.LIBERO_EPISODE_STATUS
    params = dict(next(n for n in profile.nodes if n.name == "libero_bridge").params)
    assert {"suite", "task_id", "init_state", "seed", "lockstep", "replan_steps"} <= set(params)
