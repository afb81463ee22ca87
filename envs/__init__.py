"""Simulator, tasks, feature stores and Gymnasium environments for VLN on Matterport3D.

Importing `envs` registers the Gymnasium id "clipnav/R2R-v0".
"""

from envs.registration import R2R_ENV_ID, register_environments

register_environments()

__all__ = ["R2R_ENV_ID", "register_environments"]
