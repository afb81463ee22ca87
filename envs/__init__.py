"""Simulator, tasks, feature stores and Gymnasium environments for VLN on Matterport3D.

Importing `envs` registers the Gymnasium ids "clipnav/R2R-v0" (panoramic actions) and
"clipnav/R2R-Egocentric-v0" (the low-level actions of the R2R paper).
"""

from envs.registration import R2R_EGOCENTRIC_ENV_ID, R2R_ENV_ID, register_environments

register_environments()

__all__ = ["R2R_EGOCENTRIC_ENV_ID", "R2R_ENV_ID", "register_environments"]
