"""Recording demonstrations into rosbag2 bags without ROS tooling (the ``recorder`` node's ROS-free core).

:mod:`.bag_writer` writes serialized (CDR) messages to one bag on a writer thread behind a bounded queue;
:mod:`.episode_recorder` turns start / stop / discard into one bag per episode with boundary and task messages that
``rynnvla-convert bags`` reads; :mod:`.ros2bag` runs ``ros2 bag record`` instead where a full ROS install has it.
"""
