"""Batched navigation episodes with panoramic actions: the core of the Gymnasium environments.

`NavigationBatch` runs one episode per slot. Each step an episode either moves to one of
its panoramic candidates or stops. It builds the observation arrays the environments
return and records each episode's trajectory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from envs.candidates import wrap_angle
from envs.episodes import Episode
from envs.features import VIEWS_PER_VIEWPOINT
from envs.navigable import (
    ELEVATION_INCREMENT,
    HEADING_COUNT,
    HEADING_INCREMENT,
    view_elevation,
    view_heading,
)
from envs.simulator import BatchSimulator, InvalidActionError
from envs.world import NavigationWorld, angle_features

Trajectory = list[tuple[str, float, float]]


class NavigationBatch:
    """A fixed number of episode slots stepped together.

    Actions are candidate indices in [0, max_candidates) or `stop_action` (=
    max_candidates). A slot whose episode has ended ignores its action until it restarts.
    """

    def __init__(self, world: NavigationWorld, num_slots: int, invalid_actions: str = "raise"):
        if invalid_actions not in ("raise", "ignore"):
            raise ValueError(f"invalid_actions must be 'raise' or 'ignore', got {invalid_actions!r}")
        self.invalid_actions = invalid_actions
        self.world = world
        self.settings = world.settings
        self.num_slots = num_slots
        self.max_candidates = self.settings.max_candidates
        self.stop_action = self.max_candidates
        self.sim = BatchSimulator(world.connectivity, tables=world.tables)
        length = self.settings.max_instruction_length
        self.episodes: list[Episode | None] = [None] * num_slots
        self.instruction = np.zeros((num_slots, length), dtype=np.int64)
        self.instruction_mask = np.zeros((num_slots, length), dtype=np.int8)
        self.ended = np.ones(num_slots, dtype=bool)
        self.trajectories: list[Trajectory] = [[] for _ in range(num_slots)]
        # Shortest-path distance to the goal from every viewpoint of the slot's scan.
        self._goal_distances = np.zeros((num_slots, 1))
        # Next viewpoint (scan index) on the shortest path to the goal from every viewpoint.
        self._goal_next_hops = np.zeros((num_slots, 1), dtype=np.int64)
        self._scan_offset = np.zeros(num_slots, dtype=np.int64)
        self._distance = np.zeros(num_slots)
        self._has_goal = np.zeros(num_slots, dtype=bool)
        self._view_angles = self._view_angle_table()

    def _view_angle_table(self) -> np.ndarray:
        # Angle features of the 36 views relative to each of the 12 agent headings.
        views = np.arange(VIEWS_PER_VIEWPOINT)
        agent = np.arange(HEADING_COUNT)[:, None] * HEADING_INCREMENT
        heading = wrap_angle(view_heading(views)[None, :] - agent)
        elevation = np.broadcast_to(view_elevation(views), heading.shape)
        return angle_features(heading, elevation, self.settings.angle_feature_size)  # [12, 36, A]

    # --- episodes -------------------------------------------------------------------

    def start(self, slots: Sequence[int], episodes: Sequence[Episode]) -> None:
        """Start `episodes` in `slots` at their start viewpoint and heading, looking level."""
        slots = np.asarray(slots, dtype=np.int64)
        for episode in episodes:
            self.world.prepare_scan(episode.scan)
        if self.sim.batch_size == 0:
            first = episodes[0]
            self.sim.new_episodes(
                [first.scan] * self.num_slots,
                [first.start] * self.num_slots,
                np.zeros(self.num_slots),
                np.zeros(self.num_slots),
            )
        self.sim.new_episodes(
            [e.scan for e in episodes],
            [e.start for e in episodes],
            [e.heading for e in episodes],
            np.zeros(len(episodes)),
            slots=slots,
        )
        largest_scan = max(len(self.world.connectivity[e.scan]) for e in episodes)
        if self._goal_distances.shape[1] < largest_scan:
            self._goal_distances = _widen(self._goal_distances, largest_scan)
            self._goal_next_hops = _widen(self._goal_next_hops, largest_scan)

        for slot, episode in zip(slots, episodes):
            self.episodes[slot] = episode
            self.instruction[slot] = self.world.encode_instruction(episode)
            self.instruction_mask[slot] = self.instruction[slot] != 0
            self._scan_offset[slot] = self.world.tables.offsets[episode.scan]
            self._has_goal[slot] = episode.has_reference
            if episode.has_reference:
                graph = self.world.connectivity[episode.scan]
                goal = graph.index(episode.goal)
                self._goal_distances[slot, : len(graph)] = graph.distances[:, goal]
                self._goal_next_hops[slot, : len(graph)] = graph.next_hops[goal]
        self.ended[slots] = False
        self._distance[slots] = self._distance_to_goal(slots)
        for slot in slots:
            self.trajectories[slot] = [self._pose(slot)]

    def _distance_to_goal(self, slots: np.ndarray) -> np.ndarray:
        distance = np.zeros(len(slots))
        with_goal = self._has_goal[slots]
        local = self.sim.viewpoint[slots[with_goal]] - self._scan_offset[slots[with_goal]]
        distance[with_goal] = self._goal_distances[slots[with_goal], local]
        return distance

    def _pose(self, slot: int) -> tuple[str, float, float]:
        return (
            self.world.tables.viewpoint_ids[self.sim.viewpoint[slot]],
            float(self.sim.heading_step[slot]) * HEADING_INCREMENT,
            float(self.sim.elevation_row[slot] - 1) * ELEVATION_INCREMENT,
        )

    # --- stepping -------------------------------------------------------------------

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply one action per slot; return (reward, terminated, invalid), each [num_slots].

        Slots that had already ended get reward 0 and stay ended. An action naming a
        candidate slot that the state does not have raises `InvalidActionError` when
        `invalid_actions` is "raise". With "ignore", the agent stays where it is with
        reward 0, and `invalid` marks the slot.
        """
        actions = np.asarray(actions, dtype=np.int64).reshape(self.num_slots)
        active = ~self.ended
        stopping = active & (actions == self.stop_action)
        moving = active & ~stopping
        counts = self.world.tables.candidates.count[self.sim.viewpoint]
        invalid = moving & ((actions < 0) | (actions >= counts))
        if invalid.any() and self.invalid_actions == "raise":
            slot = int(np.flatnonzero(invalid)[0])
            raise InvalidActionError(
                f"episode {self.episodes[slot].instr_id} (slot {slot}): expected a candidate index in "
                f"[0, {counts[slot]}) or STOP ({self.stop_action}), got {actions[slot]}"
            )
        moving &= ~invalid

        self.sim.make_candidate_actions(np.where(moving, actions, 0), moving)

        reward = np.zeros(self.num_slots)
        new_distance = self._distance_to_goal(np.arange(self.num_slots))
        reward[moving] = (self._distance - new_distance)[moving]
        success = new_distance < self.settings.success_distance
        stop_reward = np.where(success, self.settings.success_reward, -self.settings.success_reward)
        reward[stopping] = stop_reward[stopping]
        reward[~self._has_goal] = 0.0
        self._distance = new_distance

        for slot in np.flatnonzero(moving):
            self.trajectories[slot].append(self._pose(slot))
        self.ended |= stopping
        return reward, stopping, invalid

    def action_masks(self) -> np.ndarray:
        """Valid actions of every slot: int8 [num_slots, max_candidates + 1], STOP last."""
        masks = np.zeros((self.num_slots, self.max_candidates + 1), dtype=np.int8)
        masks[:, : self.max_candidates] = (
            np.arange(self.max_candidates)[None, :] < self.candidate_counts()[:, None]
        )
        masks[:, self.max_candidates] = 1
        return masks

    # --- observations ---------------------------------------------------------------

    def candidate_counts(self) -> np.ndarray:
        return self.world.tables.candidates.count[self.sim.viewpoint]

    def observe(self) -> dict[str, np.ndarray]:
        """Build the observation arrays of all slots."""
        sim = self.sim
        tables = self.world.tables
        viewpoint = sim.viewpoint
        heading = sim.heading_step * HEADING_INCREMENT
        elevation = view_elevation(sim.elevation_row * HEADING_COUNT)

        view_features = self.world.features.read_rows(self.world.feature_rows(viewpoint))  # [N, 36, D]

        candidates = tables.candidates
        count = candidates.count[viewpoint]
        if (count > self.max_candidates).any():
            slot = int(np.argmax(count))
            raise InvalidActionError(
                f"viewpoint {tables.viewpoint_ids[viewpoint[slot]]} has {count[slot]} candidates, more "
                f"than max_candidates={self.max_candidates}; raise max_candidates"
            )
        width = min(candidates.width, self.max_candidates)
        mask = np.zeros((self.num_slots, self.max_candidates), dtype=np.int8)
        mask[:, :width] = np.arange(width)[None, :] < count[:, None]
        slot, column = np.nonzero(mask)  # the real candidates, slot-major

        # Each candidate's feature is the feature of the view it is seen in.
        dim = view_features.shape[2]
        flat_views = view_features.reshape(-1, dim)
        view_index = candidates.view_index[viewpoint[slot], column]
        candidate_features = np.zeros((self.num_slots, self.max_candidates, dim), dtype=np.float32)
        candidate_features[slot, column] = flat_views[slot * VIEWS_PER_VIEWPOINT + view_index]

        relative_heading = wrap_angle(candidates.heading[viewpoint[slot], column] - heading[slot])
        size = self.settings.angle_feature_size
        candidate_angles = np.zeros((self.num_slots, self.max_candidates, size), dtype=np.float32)
        candidate_angles[slot, column] = angle_features(
            relative_heading, candidates.elevation[viewpoint[slot], column], size
        )

        return {
            "instruction": self.instruction.copy(),
            "instruction_mask": self.instruction_mask.copy(),
            "heading": heading.astype(np.float32)[:, None],
            "elevation": elevation.astype(np.float32)[:, None],
            "view_features": np.ascontiguousarray(view_features, dtype=np.float32),
            "view_angles": self._view_angles[sim.heading_step],
            "candidate_features": candidate_features,
            "candidate_angles": candidate_angles,
            "candidate_mask": mask,
        }

    # --- teacher and bookkeeping ------------------------------------------------------

    def teacher_actions(self) -> np.ndarray:
        """Return the shortest-path teacher's action of every slot: the candidate on the path, or STOP.

        Slots at their goal, without a reference path, or already ended get STOP.
        """
        actions = np.full(self.num_slots, self.stop_action, dtype=np.int64)
        slots = np.flatnonzero(~self.ended & self._has_goal)
        viewpoint = self.sim.viewpoint[slots]
        next_local = self._goal_next_hops[slots, viewpoint - self._scan_offset[slots]]
        targets = self.world.tables.candidates.target[viewpoint]  # [slots, width]
        on_path = targets == (next_local + self._scan_offset[slots])[:, None]
        walking = (next_local >= 0) & on_path.any(axis=1)
        actions[slots[walking]] = on_path[walking].argmax(axis=1)
        return actions

    def forward_candidates(self, heading_step: np.ndarray) -> np.ndarray:
        """Candidate that the low-level "forward" action reaches when looking level at `heading_step`.

        Forward moves to the first neighbour in the level view's navigable locations, the
        one closest to the view centre. Returns -1 where that view shows no neighbour.
        """
        table = self.world.tables.navigable
        key = (
            self.sim.viewpoint * VIEWS_PER_VIEWPOINT
            + HEADING_COUNT
            + np.asarray(heading_step) % HEADING_COUNT
        )
        has_forward = table.count[key] > 1
        target = table.target[key, 1]
        row = self.world.tables.candidates.target[self.sim.viewpoint]  # [N, width]
        match = row == target[:, None]
        return np.where(has_forward & match.any(axis=1), match.argmax(axis=1), -1)

    def episode_info(self, slot: int) -> dict[str, Any]:
        episode = self.episodes[slot]
        return {"instr_id": episode.instr_id, "trajectory": list(self.trajectories[slot])}


def _widen(array: np.ndarray, width: int) -> np.ndarray:
    wider = np.zeros((array.shape[0], width), dtype=array.dtype)
    wider[:, : array.shape[1]] = array
    return wider
