"""Batched navigation episodes: the core of the Gymnasium environments.

`NavigationBatch` runs one episode per slot, in one of two action spaces. With panoramic
actions an episode either moves to one of its panoramic candidates or stops. With the
egocentric actions of the R2R paper (`envs.egocentric`) it turns, looks up or down,
moves forward or stops. The batch builds the observation arrays the environments return,
gives the teacher's actions and records each episode's trajectory. The teacher
(`EnvSettings.teacher`) follows the shortest path to the goal (R2R) or retraces the
reference path (RxR, whose paths are not shortest paths). `teacher_actions` defines both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from envs import egocentric
from envs.candidates import wrap_angle
from envs.episodes import Episode
from envs.features import VIEWS_PER_VIEWPOINT
from envs.metrics import UNREACHABLE_DISTANCE, collapse_repeats
from envs.navigable import (
    ELEVATION_INCREMENT,
    HEADING_COUNT,
    HEADING_INCREMENT,
    VIEW_COUNT,
    view_elevation,
    view_heading,
)
from envs.simulator import BatchSimulator, InvalidActionError
from envs.world import NavigationWorld, angle_features

Trajectory = list[tuple[str, float, float]]

ACTION_SPACES = ("panoramic", "egocentric")


class NavigationBatch:
    """A fixed number of episode slots stepped together.

    With `action_space="panoramic"`, actions are candidate indices in [0, max_candidates)
    or `stop_action` (= max_candidates). With "egocentric", actions are the six low-level
    actions of `envs.egocentric` (0 left, 1 right, 2 up, 3 down, 4 forward, 5 stop), and
    `stop_action` is 5. A slot whose episode has ended ignores its action until it restarts.
    """

    def __init__(
        self,
        world: NavigationWorld,
        num_slots: int,
        invalid_actions: str = "raise",
        action_space: str = "panoramic",
    ):
        if invalid_actions not in ("raise", "ignore"):
            raise ValueError(f"invalid_actions must be 'raise' or 'ignore', got {invalid_actions!r}")
        if action_space not in ACTION_SPACES:
            raise ValueError(f"action_space must be 'panoramic' or 'egocentric', got {action_space!r}")

        self.invalid_actions = invalid_actions
        self.action_space_name = action_space
        self.egocentric = action_space == "egocentric"
        self.world = world
        self.settings = world.settings
        self.num_slots = num_slots
        self.max_candidates = self.settings.max_candidates
        self.stop_action = egocentric.STOP if self.egocentric else self.max_candidates
        self.num_actions = egocentric.ACTION_COUNT if self.egocentric else self.max_candidates + 1
        self.sim = BatchSimulator(world.connectivity, tables=world.tables)
        length = self.settings.max_instruction_length
        self.episodes: list[Episode | None] = [None] * num_slots
        self.instruction = np.zeros((num_slots, length), dtype=np.int64)
        self.instruction_mask = np.zeros((num_slots, length), dtype=np.int8)
        self.ended = np.ones(num_slots, dtype=bool)
        self.trajectories: list[Trajectory] = [[] for _ in range(num_slots)]
        # Shortest-path distance to the goal from every viewpoint of the slot's scan.
        self._goal_distances = np.zeros((num_slots, 1))
        # Next viewpoint (scan index) on the teacher's path to the goal from every viewpoint:
        # the graph's shortest path, or for egocentric actions `egocentric_next_hops`.
        self._goal_next_hops = np.zeros((num_slots, 1), dtype=np.int64)
        self._egocentric_hops: dict[str, np.ndarray] = {}  # by scan, [goal, here]
        self._scan_offset = np.zeros(num_slots, dtype=np.int64)
        # The reference-path teacher's state: each slot's reference path as scan indices
        # without consecutive repeats, padded with -1, its length, and the progress index.
        self.reference_teacher = self.settings.teacher == "reference"
        self._reference = np.full((num_slots, 1), -1, dtype=np.int64)
        self._reference_length = np.zeros(num_slots, dtype=np.int64)
        self._progress = np.zeros(num_slots, dtype=np.int64)
        self._distance = np.zeros(num_slots)
        self._has_goal = np.zeros(num_slots, dtype=bool)
        # The nDTW reward's state: the distance from every viewpoint of the scan to each
        # reference viewpoint, and DTW(reference[:i + 1], trajectory) for each i.
        self.ndtw_reward = self.settings.reward == "ndtw"
        self._reference_costs = np.zeros((num_slots, 1, 1))
        self._dtw = np.zeros((num_slots, 1))
        self._ndtw = np.zeros(num_slots)
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
                hops = self._scan_egocentric_hops(episode.scan) if self.egocentric else graph.next_hops
                self._goal_next_hops[slot, : len(graph)] = hops[goal]
                if self.reference_teacher or self.ndtw_reward:
                    reference = [graph.index(v) for v in collapse_repeats(episode.path)]
                    self._set_reference(slot, reference)
                if self.ndtw_reward:
                    self._set_reference_costs(slot, graph.distances[:, reference])
        self.ended[slots] = False
        self._distance[slots] = self._distance_to_goal(slots)
        if self.ndtw_reward:
            self._start_dtw(slots[self._has_goal[slots]])
        for slot in slots:
            self.trajectories[slot] = [self._pose(slot)]

    def _set_reference(self, slot: int, reference: list[int]) -> None:
        if self._reference.shape[1] < len(reference):
            wider = np.full((self.num_slots, len(reference)), -1, dtype=np.int64)
            wider[:, : self._reference.shape[1]] = self._reference
            self._reference = wider
        self._reference[slot] = -1
        self._reference[slot, : len(reference)] = reference
        self._reference_length[slot] = len(reference)
        self._progress[slot] = 0

    def _set_reference_costs(self, slot: int, costs: np.ndarray) -> None:
        """Store the distances [scan viewpoints, reference length] from the scan to the reference."""
        viewpoints, length = costs.shape
        if self._reference_costs.shape[1] < viewpoints or self._reference_costs.shape[2] < length:
            wider = np.zeros(
                (
                    self.num_slots,
                    max(viewpoints, self._reference_costs.shape[1]),
                    max(length, self._reference_costs.shape[2]),
                )
            )
            current = self._reference_costs.shape
            wider[:, : current[1], : current[2]] = self._reference_costs
            self._reference_costs = wider
            self._dtw = _widen(self._dtw, wider.shape[2])
        self._reference_costs[slot] = 0.0
        # An unreachable viewpoint costs a large finite distance, as in the metrics.
        self._reference_costs[slot, :viewpoints, :length] = np.minimum(costs, UNREACHABLE_DISTANCE)

    def _trajectory_costs(self, slots: np.ndarray) -> np.ndarray:
        """Distances from each slot's viewpoint to its reference viewpoints: [slots, width]."""
        local = self.sim.viewpoint[slots] - self._scan_offset[slots]
        return self._reference_costs[slots, local]

    def _start_dtw(self, slots: np.ndarray) -> None:
        """Set the DTW and nDTW of trajectories that contain only their start viewpoint."""
        # With one trajectory viewpoint, DTW(reference[:i + 1]) sums its distance to each.
        self._dtw[slots] = np.cumsum(self._trajectory_costs(slots), axis=1)
        self._ndtw[slots] = self._current_ndtw(slots)

    def _extend_dtw(self, slots: np.ndarray) -> np.ndarray:
        """Add each slot's new viewpoint to its trajectory; return the nDTW gained [slots]."""
        costs = self._trajectory_costs(slots)  # [k, width]
        previous = self._dtw[slots]  # DTW with the trajectory before this viewpoint
        extended = np.empty_like(previous)
        # DTW[i, t] = cost[i] + min(DTW[i - 1, t - 1], DTW[i, t - 1], DTW[i - 1, t])
        extended[:, 0] = costs[:, 0] + previous[:, 0]
        for i in range(1, extended.shape[1]):
            best = np.minimum(np.minimum(previous[:, i - 1], previous[:, i]), extended[:, i - 1])
            extended[:, i] = costs[:, i] + best
        self._dtw[slots] = extended
        before = self._ndtw[slots]
        self._ndtw[slots] = self._current_ndtw(slots)
        return self._ndtw[slots] - before

    def _current_ndtw(self, slots: np.ndarray) -> np.ndarray:
        """nDTW of each slot's trajectory so far: exp(-DTW / (reference length * success distance))."""
        length = self._reference_length[slots]
        distance = self._dtw[slots, length - 1]
        return np.exp(-distance / (length * self.settings.success_distance))

    def _scan_egocentric_hops(self, scan: str) -> np.ndarray:
        hops = self._egocentric_hops.get(scan)
        if hops is None:
            graph = self.world.connectivity[scan]
            offset = self.world.tables.offsets[scan]
            rows = np.arange(offset * VIEW_COUNT, (offset + len(graph)) * VIEW_COUNT)
            slot_one = self._slot_one(rows)
            local = np.where(slot_one >= 0, slot_one - offset, -1).reshape(len(graph), VIEW_COUNT)
            hops = self._egocentric_hops[scan] = egocentric.egocentric_next_hops(graph, local)
        return hops

    def _slot_one(self, rows: np.ndarray) -> np.ndarray:
        """Global index of `navigable_locations[1]` in navigable-table `rows`, -1 where a view shows none."""
        table = self.world.tables.navigable
        if table.width < 2:
            return np.full(rows.shape, -1, dtype=np.int64)
        return table.target[rows, 1].astype(np.int64)

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

        Slots that had already ended get reward 0 and stay ended. An invalid action (a
        candidate slot that the state does not have, or an egocentric forward where the
        view shows no neighbour) raises `InvalidActionError` when `invalid_actions` is
        "raise". With "ignore", the agent stays where it is with reward 0, and `invalid`
        marks the slot. Turns in place give reward 0.
        """
        actions = np.asarray(actions, dtype=np.int64).reshape(self.num_slots)
        active = ~self.ended
        stopping = active & (actions == self.stop_action)
        acting = active & ~stopping
        invalid = acting & ~self._valid_actions(actions)
        if invalid.any() and self.invalid_actions == "raise":
            slot = int(np.flatnonzero(invalid)[0])
            raise InvalidActionError(self._invalid_action_message(slot, int(actions[slot])))
        acting &= ~invalid

        before = self.sim.viewpoint.copy()
        if self.egocentric:
            self._make_egocentric_actions(actions, acting)
        else:
            self.sim.make_candidate_actions(np.where(acting, actions, 0), acting)
        if self.reference_teacher:
            self._advance_progress(np.flatnonzero(acting & (self.sim.viewpoint != before)))

        reward = np.zeros(self.num_slots)
        new_distance = self._distance_to_goal(np.arange(self.num_slots))
        if self.ndtw_reward:
            # A turn in place leaves the trajectory, and so its nDTW, unchanged.
            moved = np.flatnonzero(acting & (self.sim.viewpoint != before) & self._has_goal)
            reward[moved] = self._extend_dtw(moved)
        else:
            reward[acting] = (self._distance - new_distance)[acting]
        success = new_distance < self.settings.success_distance
        stop_reward = np.where(success, self.settings.success_reward, -self.settings.success_reward)
        reward[stopping] = stop_reward[stopping]
        reward[~self._has_goal] = 0.0
        self._distance = new_distance

        for slot in np.flatnonzero(acting):
            self.trajectories[slot].append(self._pose(slot))
        self.ended |= stopping
        return reward, stopping, invalid

    def _valid_actions(self, actions: np.ndarray) -> np.ndarray:
        if self.egocentric:
            in_range = (actions >= 0) & (actions < egocentric.ACTION_COUNT)
            return in_range & ((actions != egocentric.FORWARD) | self._forward_possible())
        counts = self.candidate_counts()
        return (actions >= 0) & (actions < counts)

    def _invalid_action_message(self, slot: int, action: int) -> str:
        where = f"episode {self.episodes[slot].instr_id} (slot {slot})"
        if not self.egocentric:
            count = self.candidate_counts()[slot]
            return f"{where}: expected a candidate index in [0, {count}) or STOP ({self.stop_action}), got {action}"
        if action == egocentric.FORWARD:
            viewpoint = self.world.tables.viewpoint_ids[self.sim.viewpoint[slot]]
            return (
                f"{where}: forward is invalid because view {self.sim.view_index[slot]} of viewpoint "
                f"{viewpoint} shows no navigable neighbour; turn or look elsewhere first"
            )
        names = ", ".join(f"{i} {name}" for i, name in enumerate(egocentric.ACTION_NAMES))
        return f"{where}: expected an egocentric action in [0, {egocentric.ACTION_COUNT}) ({names}), got {action}"

    def _forward_possible(self) -> np.ndarray:
        """Return, for each slot, whether its current view shows a neighbour that forward can reach: bool [num_slots]."""
        return self.world.tables.navigable.count[self.sim.state_key] > 1

    def _make_egocentric_actions(self, actions: np.ndarray, acting: np.ndarray) -> None:
        # Idle slots issue makeAction(0, 0, 0), which leaves them where they are.
        chosen = np.where(acting, actions, egocentric.STOP)
        steps = self.sim.step.copy()
        self.sim.make_actions(
            egocentric.LOCATION_INDEX[chosen],
            egocentric.HEADING_SIGN[chosen],
            egocentric.ELEVATION_SIGN[chosen],
        )
        # make_actions counts a step for every episode, the idle ones included.
        self.sim.step = np.where(acting, self.sim.step, steps)

    def action_masks(self) -> np.ndarray:
        """Valid actions of every slot: int8 [num_slots, num_actions], STOP last.

        Egocentric masks mark forward invalid where the view shows no neighbour. Up and down
        stay valid at the elevation limits, where the simulator clamps them to a turn in place.
        """
        if self.egocentric:
            masks = np.ones((self.num_slots, egocentric.ACTION_COUNT), dtype=np.int8)
            masks[:, egocentric.FORWARD] = self._forward_possible()
            return masks
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

        observation = {
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
        if self.egocentric:
            observation["view_index"] = sim.view_index.astype(np.int64)[:, None]
            observation["forward_mask"] = self._forward_possible().astype(np.int8)[:, None]
        return observation

    # --- teacher and bookkeeping ------------------------------------------------------

    def teacher_actions(self) -> np.ndarray:
        """Return the teacher's action of every slot.

        Each slot's teacher picks the next viewpoint, and the action moves there. With
        panoramic actions it is the candidate that is that viewpoint. With egocentric
        actions it is a turn towards the nearest view (fewest turns) whose
        `navigable_locations[1]` is that viewpoint, or FORWARD once in that view. Slots
        without a next viewpoint, without a reference path, or already ended get STOP.

        With `teacher="shortest"` the next viewpoint is the next one on the shortest path
        to the goal (egocentric: on the route of `egocentric.egocentric_next_hops`), and
        there is none at the goal.

        With `teacher="reference"` the teacher retraces the reference path R[0..n] (with
        consecutive repeats removed) in order. Its progress p, 0 at the start, counts the
        reference viewpoints reached in order: p grows by one each time the agent arrives
        at R[p + 1], and at no other viewpoint, so a later part of the path that the agent
        crosses early does not count. The teacher aims at T = R[min(p + 1, n)], the first
        reference viewpoint not yet reached, or the path's end once it has been reached,
        and stops when the agent stands at T (that is, at R[n] with p = n). It moves to T
        directly when one action can reach T, which retraces every edge of the path.
        Otherwise, after a detour or a skip ahead, it moves along the shortest path to T
        (egocentric: along `egocentric.egocentric_next_hops`, which avoids edges that
        forward cannot take). So after leaving the path the teacher returns to the first
        reference viewpoint not yet reached and retraces the rest of the path from there.
        """
        if self.egocentric:
            return self._egocentric_teacher_actions()
        actions = np.full(self.num_slots, self.stop_action, dtype=np.int64)
        slots = np.flatnonzero(~self.ended & self._has_goal)
        viewpoint = self.sim.viewpoint[slots]
        next_local = self._teacher_next_viewpoints(slots)
        targets = self.world.tables.candidates.target[viewpoint]  # [slots, width]
        on_path = targets == (next_local + self._scan_offset[slots])[:, None]
        walking = (next_local >= 0) & on_path.any(axis=1)
        actions[slots[walking]] = on_path[walking].argmax(axis=1)
        return actions

    def _egocentric_teacher_actions(self) -> np.ndarray:
        actions = np.full(self.num_slots, egocentric.STOP, dtype=np.int64)
        slots = np.flatnonzero(~self.ended & self._has_goal)
        viewpoint = self.sim.viewpoint[slots]
        offset = self._scan_offset[slots]
        next_local = self._teacher_next_viewpoints(slots)
        slot_one = self._slot_one(viewpoint[:, None] * VIEW_COUNT + np.arange(VIEW_COUNT))  # [slots, 36]
        turns, found = egocentric.teacher_turn_actions(
            self.sim.heading_step[slots], self.sim.elevation_row[slots], slot_one, next_local + offset
        )
        walking = (next_local >= 0) & found
        actions[slots[walking]] = turns[walking]
        return actions

    def _teacher_next_viewpoints(self, slots: np.ndarray) -> np.ndarray:
        """Return the scan index of the teacher's next viewpoint for each of `slots`, negative for none."""
        local = self.sim.viewpoint[slots] - self._scan_offset[slots]
        if not self.reference_teacher:
            return self._goal_next_hops[slots, local]

        last = self._reference_length[slots] - 1
        target = self._reference[slots, np.minimum(self._progress[slots] + 1, last)]  # [slots]
        next_local = np.where(local == target, egocentric.NO_HOP, target)

        # Targets that one action cannot reach are approached along the teacher's route.
        viewpoint = self.sim.viewpoint[slots]
        global_target = (target + self._scan_offset[slots])[:, None]
        if self.egocentric:
            slot_one = self._slot_one(viewpoint[:, None] * VIEW_COUNT + np.arange(VIEW_COUNT))  # [slots, 36]
            direct = (slot_one == global_target).any(axis=1)
        else:
            direct = (self.world.tables.candidates.target[viewpoint] == global_target).any(axis=1)
        for i in np.flatnonzero(~direct & (local != target)):
            scan = self.episodes[slots[i]].scan
            hops = (
                self._scan_egocentric_hops(scan)
                if self.egocentric
                else self.world.connectivity[scan].next_hops
            )
            next_local[i] = hops[target[i], local[i]]
        return next_local

    def _advance_progress(self, slots: np.ndarray) -> None:
        """Count the next reference viewpoint as reached for those of `slots` that just arrived there."""
        if len(slots) == 0:
            return
        here = self.sim.viewpoint[slots] - self._scan_offset[slots]
        progress = self._progress[slots]
        following = progress + 1 < self._reference_length[slots]
        upcoming = self._reference[slots, np.minimum(progress + 1, self._reference.shape[1] - 1)]
        self._progress[slots] += following & (here == upcoming)

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
