"""`ros2 launch rynnvla_ros libero.launch.py [name:=value ...]`: the 'libero' profile of rynnvla_ros/profiles.py.

`ros2 launch rynnvla_ros libero.launch.py --show-args` (or `rynnvla-bringup libero --help`) lists the arguments.
"""

from rynnvla_ros.launch_builder import launch_description


def generate_launch_description():
    return launch_description("libero")
