"""Simulator, tasks, feature stores and Gymnasium environments for VLN on Matterport3D."""
