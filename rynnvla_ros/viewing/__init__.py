"""ROS-free cores of the viewing nodes: link transforms of the arm, the planned chunk as a gripper path, Foxglove
messages (``chunk_visualizer``, ``foxglove_viewer``)."""
