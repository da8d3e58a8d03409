"""Launch files and profiles: valid Python, and everything they name exists in the installed package."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rynnvla_ros.bringup import main as bringup_main
from rynnvla_ros.bringup import parse_overrides, share_dir
from rynnvla_ros.executables import NODES
from rynnvla_ros.profiles import PACKAGE, PROFILES, get_profile

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))


def _profile_of(launch_file: Path) -> str:
    tree = ast.parse(launch_file.read_text(), filename=str(launch_file))
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in funcs, f"{launch_file.name} has no generate_launch_description()"
    calls = [
        n for n in ast.walk(funcs["generate_launch_description"])
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "launch_description"
    ]  # fmt: skip
    assert len(calls) == 1 and isinstance(calls[0].args[0], ast.Constant)
    return calls[0].args[0].value


def test_every_profile_has_a_launch_file_and_back():
    assert LAUNCH_FILES
    assert {_profile_of(f) for f in LAUNCH_FILES} == set(PROFILES)
    assert {f.name for f in LAUNCH_FILES} == {f"{p}.launch.py" for p in PROFILES}


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_is_installed(launch_file):
    installed = share_dir() / "launch" / launch_file.name
    assert installed.is_file() and installed.read_text() == launch_file.read_text()


@pytest.mark.parametrize("profile", PROFILES.values(), ids=lambda p: p.name)
def test_profile_names_only_existing_things(profile):
    prefix = share_dir().parents[1]
    args = {a.name for a in profile.args}
    assert len(args) == len(profile.args), "duplicate argument"
    assert len({n.name for n in profile.nodes}) == len(profile.nodes), "duplicate node name"
    for a in profile.args:
        a.convert(a.default)  # defaults are valid values
    for node in profile.nodes:
        if node.package != PACKAGE:  # rviz2, robot_state_publisher: from the ROS install
            assert node.when is not None, f"{node.name} of {node.package} must be optional"
            continue
        assert node.executable in NODES
        assert (prefix / "lib" / "rynnvla_ros" / node.executable).is_file()
        if node.params_file:
            params = yaml.safe_load((share_dir() / "config" / node.params_file).read_text())
            assert node.name in params, f"{node.params_file} has no section for {node.name}"
        for _, arg in node.params:
            assert arg in args
        if node.when is not None:
            assert node.when.arg in args
            choices = profile.arg(node.when.arg).choices
            assert not choices or set(node.when.values) <= set(choices)


def test_every_executable_is_installed_and_importable():
    from rynnvla_ros.node_runner import node_class

    prefix = share_dir().parents[1]
    for name in NODES:
        assert (prefix / "lib" / "rynnvla_ros" / name).is_file()
        assert node_class(name) is not None


def test_bringup_help_lists_the_arguments():
    exe = Path(sys.executable).parent / "rynnvla-bringup"
    out = subprocess.run([exe, "so100", "--help"], capture_output=True, text=True, check=True).stdout
    for a in get_profile("so100").args:
        assert f"{a.name}:={a.default}" in out


def test_bringup_rejects_unknown_profiles_and_arguments(capsys):
    assert bringup_main(["nope"]) == 2
    assert bringup_main(["so100", "bogus:=1"]) == 2
    assert bringup_main(["so100", "hardware:=moon"]) == 2
    err = capsys.readouterr().err
    assert "no profile 'nope'" in err and "no argument(s) bogus" in err and "hardware:=moon is not one of" in err
    with pytest.raises(ValueError):
        parse_overrides(["hardware=real"])
