"""Demonstration bags -> LeRobot datasets (reads bags with ``rosbags``; never imports rclpy)."""
