"""The egocentric low-level action space of the R2R paper, and its shortest-path teacher.

Anderson et al. 2018, "Vision-and-Language Navigation: Interpreting visually-grounded
navigation instructions in real environments" (CVPR), and the code released with it
(Matterport3D Simulator repository, tasks/R2R/agent.py) give the agent six actions: turn
left or right, look up or down, each by 30 degrees, move forward, and stop. Forward moves
to `navigable_locations[1]`, the neighbour closest to the centre of the current view,
and keeps heading and elevation. Each action is one Matterport3D Simulator `makeAction`
call: `LOCATION_INDEX`, `HEADING_SIGN` and `ELEVATION_SIGN` give its arguments.

A neighbour can be reached by forward only from a view in which it is
`navigable_locations[1]`. On the 90 Matterport3D graphs, 1,279 of the 42,936 directed
edges (3.0 %, in 84 scans) never are: in each view that shows such a neighbour, another
one lies nearer the view centre. Every pair of viewpoints that the graph connects stays
connected through forward moves alone. `egocentric_next_hops` therefore routes the
teacher around those edges, along the shortest route of the graph of forward-reachable
edges. On R2R this changes the teacher's path on 6.3 % of the train episodes (6.5 % of
val_seen, 3.2 % of val_unseen), adding 0.38 m on average and 4.0 m at most.
tests/test_egocentric.py checks the edge counts on the real graphs.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from connectivity import ScanGraph
from envs.navigable import HEADING_COUNT, VIEW_COUNT

LEFT, RIGHT, UP, DOWN, FORWARD, STOP = range(6)
ACTION_NAMES = ("left", "right", "up", "down", "forward", "stop")
ACTION_COUNT = len(ACTION_NAMES)

# makeAction arguments of each action: navigable location index, heading and elevation
# change. Only the sign of an angle counts, so +-1 turns one 30 degree step. STOP issues
# no simulator call and its entries are unused.
LOCATION_INDEX = np.array([0, 0, 0, 0, 1, 0], dtype=np.int64)
HEADING_SIGN = np.array([-1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
ELEVATION_SIGN = np.array([0.0, 0.0, 1.0, -1.0, 0.0, 0.0])

NO_HOP = -9999  # the value ScanGraph.next_hops uses at the goal and for unreachable goals


def forward_reachable(graph: ScanGraph, slot_one: np.ndarray) -> np.ndarray:
    """Mark the edges that a forward move can take: [viewpoints, viewpoints] bool.

    `slot_one` [viewpoints, 36] contains the scan index of `navigable_locations[1]` of every
    view of every viewpoint, -1 where the view shows no neighbour. Rows of excluded
    viewpoints stay empty, because no episode starts or arrives there.
    """
    count = len(graph)
    here = np.repeat(np.arange(count), VIEW_COUNT)
    there = slot_one.reshape(-1)
    keep = (there >= 0) & graph.included[here]
    reachable = np.zeros((count, count), dtype=bool)
    reachable[here[keep], there[keep]] = True
    return reachable


def egocentric_next_hops(graph: ScanGraph, slot_one: np.ndarray) -> np.ndarray:
    """Return the teacher's next viewpoint towards every goal: `hops[goal, here]`, [viewpoints]^2.

    The hop is the graph's own shortest-path hop (`graph.next_hops`) wherever a forward
    move can take it and it lies on a shortest route of the forward-reachable graph, so
    the teacher retraces the panoramic teacher's path whenever it can. Elsewhere the hop
    is the next viewpoint of the shortest route in the forward-reachable graph. Both
    choices lower the forward-reachable distance to the goal, so the teacher never loops.
    `NO_HOP` marks the goal itself and goals that forward moves cannot reach.
    """
    reachable = forward_reachable(graph, slot_one)
    lengths = graph.edge_lengths
    rows, columns = np.nonzero(reachable)
    forward_graph = csr_matrix((lengths[rows, columns], (rows, columns)), shape=reachable.shape)
    # Dijkstra from each goal over the reversed edges: distance[goal, here] is the route
    # length from here to the goal, and predecessor[goal, here] the first step on it.
    distance, predecessor = dijkstra(forward_graph.T, directed=True, return_predecessors=True)

    graph_hops = graph.next_hops  # [goal, here]
    here = np.arange(len(graph))[None, :]
    has_hop = graph_hops >= 0
    hop = np.where(has_hop, graph_hops, 0)
    goal = np.arange(len(graph))[:, None]
    via_hop = distance[goal, hop] + lengths[here, hop]
    tolerance = 1e-9 * (1.0 + distance)
    usable = has_hop & reachable[here, hop] & np.isfinite(distance) & (via_hop <= distance + tolerance)
    return np.where(usable, graph_hops, predecessor).astype(np.int64)


def turn_counts(heading_step: np.ndarray, elevation_row: np.ndarray) -> np.ndarray:
    """Count the turns from each state to each of the 36 views: int64 [N, 36].

    A turn is one left, right, up or down action, so the count is the circular heading
    distance in 30 degree steps plus the elevation rows between.
    """
    views = np.arange(VIEW_COUNT)
    heading_gap = (views[None, :] % HEADING_COUNT - heading_step[:, None]) % HEADING_COUNT
    heading_turns = np.minimum(heading_gap, HEADING_COUNT - heading_gap)
    elevation_turns = np.abs(views[None, :] // HEADING_COUNT - elevation_row[:, None])
    return heading_turns + elevation_turns


def teacher_turn_actions(
    heading_step: np.ndarray, elevation_row: np.ndarray, slot_one: np.ndarray, next_viewpoint: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return the action that brings each state one turn closer to forward onto `next_viewpoint`.

    `slot_one` [N, 36] contains `navigable_locations[1]` of each view of the current viewpoint.
    The target is the view, among those whose slot 1 is `next_viewpoint`, that is fewest
    turns away (the lowest view index on ties). The action is FORWARD in that view, else a
    heading turn towards it (right when both ways are 6 steps), else an elevation turn.
    Returns (actions [N], found [N] bool), where `found` is False if no view shows
    `next_viewpoint` at slot 1. Those actions are STOP.
    """
    shows = slot_one == next_viewpoint[:, None]  # [N, 36]
    cost = np.where(shows, turn_counts(heading_step, elevation_row), np.iinfo(np.int64).max)
    target = cost.argmin(axis=1)
    found = shows.any(axis=1)

    heading_gap = (target % HEADING_COUNT - heading_step) % HEADING_COUNT
    row_gap = target // HEADING_COUNT - elevation_row
    actions = np.full(len(target), FORWARD, dtype=np.int64)
    actions = np.where(row_gap > 0, UP, actions)
    actions = np.where(row_gap < 0, DOWN, actions)
    actions = np.where(heading_gap > HEADING_COUNT // 2, LEFT, actions)
    actions = np.where((heading_gap > 0) & (heading_gap <= HEADING_COUNT // 2), RIGHT, actions)
    return np.where(found, actions, STOP), found
