"""The package's ROS node executables: name -> ``module:NodeClass`` (the one list).

The CMake build writes a launcher per entry into lib/rynnvla_ros (for ``ros2 run`` / ``ros2 launch``), and
``rynnvla-bringup`` instantiates the same classes in one process. Keep this file free of imports: the build reads
it without the package's dependencies.
"""

NODES = {
    "camera": "rynnvla_ros.nodes.camera:CameraNode",
    "so100_controller": "rynnvla_ros.nodes.so100_controller:So100ControllerNode",
    "policy": "rynnvla_ros.nodes.policy:PolicyNode",
    "world_model": "rynnvla_ros.nodes.world_model:WorldModelNode",
    "libero_bridge": "rynnvla_ros.nodes.libero_bridge:LiberoBridgeNode",
    "recorder": "rynnvla_ros.nodes.recorder:RecorderNode",
    "so100_leader_teleop": "rynnvla_ros.nodes.teleop:So100LeaderTeleopNode",
    "so100_expert": "rynnvla_ros.nodes.expert:So100ExpertNode",
    "chunk_visualizer": "rynnvla_ros.nodes.chunk_visualizer:ChunkVisualizerNode",
    "foxglove_viewer": "rynnvla_ros.nodes.foxglove_viewer:FoxgloveViewerNode",
}
