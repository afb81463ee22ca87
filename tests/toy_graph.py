"""A six-viewpoint navigation graph whose distances are easy to work out by hand.

    f(0,4)      d(3,4) --3-- e(6,4)
      :           |           |
      :           4           4
      :           |           |
    a(0,0) --3-- b(3,0) --3-- c(6,0)

f is excluded, so its unobstructed link to a is no edge. Shortest-path distances:
a-b 3, a-c 6, a-d 7, a-e 10, b-c 3, b-d 4, b-e 7, c-d 7, c-e 4, d-e 3.
"""

from __future__ import annotations

TOY_POSITIONS = {"a": (0, 0), "b": (3, 0), "c": (6, 0), "d": (3, 4), "e": (6, 4), "f": (0, 4)}
TOY_LINKS = {("a", "b"), ("b", "c"), ("b", "d"), ("c", "e"), ("d", "e"), ("a", "f")}


def toy_entries(scale: float = 1.0) -> list[dict]:
    """Connectivity-file entries of the toy graph, positions multiplied by `scale`."""
    names = list(TOY_POSITIONS)
    entries = []
    for name in names:
        x, y = TOY_POSITIONS[name]
        entries.append(
            {
                "image_id": name,
                "pose": [1, 0, 0, x * scale, 0, 1, 0, y * scale, 0, 0, 1, 1.5, 0, 0, 0, 1],
                "included": name != "f",
                "unobstructed": [(name, other) in TOY_LINKS or (other, name) in TOY_LINKS for other in names],
                "height": 1.5,
            }
        )
    return entries
