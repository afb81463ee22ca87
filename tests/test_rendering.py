"""Rendering views from skybox cube maps: geometry, sampling, and the simulator's own renders."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("PIL")

from PIL import Image  # noqa: E402

from connectivity import ConnectivityFormatError, DataNotFoundError, UnknownViewpointError  # noqa: E402
from envs.cube_kernel import render_views  # noqa: E402
from envs.rendering import (  # noqa: E402
    CubeMap,
    CubeMapRenderer,
    RenderInputError,
    SkyboxFormatError,
    discretized_angles,
    downsize_faces,
    load_skybox,
    pose_rotation,
    read_pose_rotation,
)

IDENTITY = np.eye(3)
# A level pose like Matterport's (skybox0 overhead, skybox5 underfoot): -R^T maps world
# up (0, 0, 1) to the cube map's +y face and world +y (heading 0) to its +z face.
LEVEL = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, -1.0, 0.0]])
FACE_COLOURS = torch.tensor(
    [[250, 10, 10], [10, 250, 10], [10, 10, 250], [250, 250, 10], [10, 250, 250], [250, 10, 250]],
    dtype=torch.uint8,
)  # [6, 3], one colour per skybox face

# For each skybox image k: the cube-map direction of its centre, and the directions in
# which its columns (s) and rows (t) grow. This inverts the OpenGL specification's cube-map
# face selection, with skybox images 2, 4, 0, 5, 1, 3 as the faces +x, -x, +y, -y, +z, -z.
FACE_AXES = {
    0: ((0, 1, 0), (1, 0, 0), (0, 0, 1)),  # +y
    1: ((0, 0, 1), (1, 0, 0), (0, -1, 0)),  # +z
    2: ((1, 0, 0), (0, 0, -1), (0, -1, 0)),  # +x
    3: ((0, 0, -1), (-1, 0, 0), (0, -1, 0)),  # -z
    4: ((-1, 0, 0), (0, 0, 1), (0, -1, 0)),  # -x
    5: ((0, -1, 0), (1, 0, 0), (0, 0, -1)),  # -y
}


# --- synthetic cube maps and the camera model, written from the geometry ----------------------


def solid_faces(size: int = 8) -> torch.Tensor:
    """Each face one colour of FACE_COLOURS: uint8 [6, 3, S, S]."""
    return FACE_COLOURS[:, :, None, None].expand(6, 3, size, size).contiguous()


def quadrant_faces(size: int = 8) -> torch.Tensor:
    """Solid faces, except skybox1, whose quadrants are red, green, blue, white (TL, TR, BL, BR)."""
    faces = solid_faces(size)
    half = size // 2
    quadrants = {(0, 0): (255, 0, 0), (0, 1): (0, 255, 0), (1, 0): (0, 0, 255), (1, 1): (255, 255, 255)}
    for (row, column), colour in quadrants.items():
        block = faces[1, :, row * half : (row + 1) * half, column * half : (column + 1) * half]
        block.copy_(torch.tensor(colour, dtype=torch.uint8)[:, None, None])
    return faces


def direction_colour(directions: np.ndarray) -> np.ndarray:
    """Colour coding a direction, smooth everywhere on the sphere: 127.5 (1 + unit vector)."""
    unit = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    return 127.5 * (1.0 + unit)


def direction_faces(size: int = 128) -> torch.Tensor:
    """Faces whose texels show `direction_colour` of their own centre's cube-map direction."""
    along = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    faces = []
    for k in range(6):
        centre, s_axis, t_axis = (np.array(axis, dtype=np.float64) for axis in FACE_AXES[k])
        directions = centre + along[None, :, None] * s_axis + along[:, None, None] * t_axis  # [t, s, 3]
        faces.append(np.rint(direction_colour(directions)).astype(np.uint8).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(faces))  # [6, 3, S, S]


def pixel_rays(heading: float, elevation: float, width: int, height: int, vfov_deg: float) -> np.ndarray:
    """World ray of each pixel centre: [H, W, 3]. Heading 0 looks along +y, turning right
    towards +x; positive elevation looks up; row 0 is the top of the image."""
    forward = np.array([math.sin(heading) * math.cos(elevation), math.cos(heading) * math.cos(elevation)])
    forward = np.append(forward, math.sin(elevation))
    right = np.array([math.cos(heading), -math.sin(heading), 0.0])
    up = np.cross(right, forward)
    tan_half = math.tan(math.radians(vfov_deg) / 2)
    across = ((np.arange(width) + 0.5) / width * 2 - 1) * tan_half * width / height
    down = ((np.arange(height) + 0.5) / height * 2 - 1) * tan_half
    return forward + across[None, :, None] * right - down[:, None, None] * up


def expected_direction_image(
    rotation: np.ndarray, heading: float, elevation: float, width: int, height: int, vfov_deg: float
) -> np.ndarray:
    """What the simulator shows of `direction_faces`: the ray p samples the cube map along -R^T p."""
    rays = pixel_rays(heading, elevation, width, height, vfov_deg)  # [H, W, 3]
    return direction_colour(-rays @ rotation).transpose(2, 0, 1)  # [3, H, W]


def rotation_z(degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def random_rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def face_at(image: torch.Tensor, row: int, column: int) -> int:
    """Index of the FACE_COLOURS entry at a pixel of a [3, H, W] image, or -1."""
    matches = (image[:, row, column] == FACE_COLOURS).all(dim=1).nonzero()
    return int(matches[0]) if len(matches) else -1


# Both backends must pass every test of the geometry and of the simulator's renders.
BACKENDS = ("numba", "torch")


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def renderer(backend) -> CubeMapRenderer:
    """A small camera whose 20 degree view fits within one face when aimed at its centre."""
    return CubeMapRenderer(width=24, height=18, vfov_deg=20.0, backend=backend)


# --- where known directions land --------------------------------------------------------------

# Expected faces follow from the cube-map direction -R^T p of the world ray p; with the
# identity pose that is -p. test_matches_simulator_renders checks the rule on the
# simulator's own renders.
IDENTITY_CASES = [
    ("ahead", 0, 0, 5),
    ("right", 90, 0, 4),
    ("behind", 180, 0, 0),
    ("left", 270, 0, 2),
    ("up", 0, 90, 3),
    ("down", 0, -90, 1),
]
# With the level pose, turning right passes skybox 1, 2, 3, 4; skybox0 is overhead.
LEVEL_CASES = [
    ("ahead", 0, 0, 1),
    ("right", 90, 0, 2),
    ("behind", 180, 0, 3),
    ("left", 270, 0, 4),
    ("up", 0, 90, 0),
    ("down", 0, -90, 5),
]


@pytest.mark.parametrize(("name", "heading_deg", "elevation_deg", "face"), IDENTITY_CASES)
def test_identity_pose_direction_face(renderer, name, heading_deg, elevation_deg, face) -> None:
    image = renderer.render(
        solid_faces(), IDENTITY, [math.radians(heading_deg)], [math.radians(elevation_deg)]
    )
    assert face_at(image[0], 9, 12) == face, name
    assert (image[0] == FACE_COLOURS[face][:, None, None]).all(), name


@pytest.mark.parametrize(("name", "heading_deg", "elevation_deg", "face"), LEVEL_CASES)
def test_level_pose_direction_face(renderer, name, heading_deg, elevation_deg, face) -> None:
    image = renderer.render(solid_faces(), LEVEL, [math.radians(heading_deg)], [math.radians(elevation_deg)])
    assert face_at(image[0], 9, 12) == face, name
    assert (image[0] == FACE_COLOURS[face][:, None, None]).all(), name


def test_level_pose_face_upright(renderer) -> None:
    # Ahead of the level pose lies skybox1, seen upright and unmirrored: its top-left
    # quadrant (red) at the image's top-left, and so on.
    image = renderer.render(quadrant_faces(), LEVEL, [0.0], [0.0])[0]  # [3, 18, 24]
    assert image[:, 2, 2].tolist() == [255, 0, 0]
    assert image[:, 2, 21].tolist() == [0, 255, 0]
    assert image[:, 15, 2].tolist() == [0, 0, 255]
    assert image[:, 15, 21].tolist() == [255, 255, 255]


@pytest.mark.parametrize(
    ("rotation", "heading_deg", "elevation_deg"),
    [
        (IDENTITY, 0.0, 0.0),
        (IDENTITY, 45.0, 35.26),  # looks straight at a cube corner: three faces meet at the centre
        (LEVEL, 17.0, -41.0),
        (LEVEL, 312.5, 63.0),
        (random_rotation(1), 101.0, 12.0),
        (random_rotation(2), 222.0, -75.0),
    ],
)
def test_views_match_geometry(rotation, heading_deg, elevation_deg, backend) -> None:
    # Every pixel, seams included, shows the colour of its own cube-map direction. A wrong
    # face, a mirrored face or a gap at a seam would be off by tens of levels.
    renderer = CubeMapRenderer(width=80, height=60, vfov_deg=90.0, backend=backend)
    heading, elevation = math.radians(heading_deg), math.radians(elevation_deg)
    image = renderer.render(direction_faces(), rotation, [heading], [elevation])[0]  # [3, 60, 80]
    expected = expected_direction_image(rotation, heading, elevation, 80, 60, 90.0)
    difference = np.abs(image.numpy().astype(np.float64) - expected)
    assert difference.max() <= 1.5


def test_headings_between_steps_smooth(backend) -> None:
    # Turning by 1 degree moves the centre pixel's colour by a little (about 2 levels of
    # direction_colour per degree), never by a jump.
    renderer = CubeMapRenderer(width=8, height=6, vfov_deg=10.0, backend=backend)
    headings = np.radians(np.arange(0.0, 91.0, 1.0))
    images = renderer.render(direction_faces(), LEVEL, headings, np.zeros_like(headings))  # [91, 3, 6, 8]
    centre = images[:, :, 3, 4].to(torch.int32)  # [91, 3]
    steps = (centre[1:] - centre[:-1]).abs()
    assert int(steps.max()) <= 4


def test_pose_turned_about_z_shifts_headings(backend) -> None:
    # A pose turned 90 degrees about z (counterclockwise seen from above) shows at heading h
    # what the original pose shows at h + 90 degrees: three heading steps further right.
    renderer = CubeMapRenderer(width=40, height=30, vfov_deg=60.0, backend=backend)
    rotation = random_rotation(3)
    faces = direction_faces(64)
    original = renderer.render_discretized(faces, rotation).to(torch.int32)  # [36, 3, 30, 40]
    turned = renderer.render_discretized(faces, rotation_z(90.0) @ rotation).to(torch.int32)
    views = torch.arange(36)
    shifted = (views % 12 + 3) % 12 + 12 * (views // 12)
    assert int((turned - original[shifted]).abs().max()) <= 1


def test_seam_between_side_faces_continuous(backend) -> None:
    # Heading 45 degrees with the level pose looks at the edge between skybox1 and skybox2:
    # the left half shows skybox1, the right half skybox2, and no other colour appears.
    renderer = CubeMapRenderer(width=40, height=30, vfov_deg=60.0, backend=backend)
    image = renderer.render(solid_faces(), LEVEL, [math.radians(45.0)], [0.0])[0]
    assert all(face_at(image, row, column) == 1 for row in range(30) for column in range(20))
    assert all(face_at(image, row, column) == 2 for row in range(30) for column in range(20, 40))


def test_clamping_keeps_face_edge(backend) -> None:
    # A one-texel white border on skybox1 stays white up to the seam: clamping repeats the
    # edge texel and never blends in the neighbouring face.
    faces = solid_faces(16)
    faces[1, :, :, -1] = 255
    renderer = CubeMapRenderer(width=40, height=30, vfov_deg=60.0, backend=backend)
    image = renderer.render(faces, LEVEL, [math.radians(45.0)], [0.0])[0]
    assert (image[:, :, 19] == 255).all()


# --- shapes, batches, caching and inputs ------------------------------------------------------


def test_render_shape_and_dtype(renderer) -> None:
    image = renderer.render(solid_faces(), IDENTITY, [0.0, 1.0, 2.0], [0.0, 0.1, -0.1])
    assert image.shape == (3, 3, 18, 24)
    assert image.dtype == torch.uint8


def test_render_discretized_shape(backend) -> None:
    images = CubeMapRenderer(width=16, height=12, backend=backend).render_discretized(solid_faces(), LEVEL)
    assert images.shape == (36, 3, 12, 16)


def test_batch_equals_one_by_one(backend) -> None:
    renderer = CubeMapRenderer(width=32, height=24, vfov_deg=75.0, backend=backend)
    faces = torch.stack([direction_faces(32), quadrant_faces(32)])  # [2, 6, 3, 32, 32]
    rotations = np.stack([random_rotation(4), LEVEL])
    headings = np.array([[0.3, 1.9], [4.0, 0.0]])
    elevations = np.array([[0.2, -0.4], [0.0, 0.5]])
    batch = renderer.render(faces, rotations, headings, elevations)  # [2, 2, 3, 24, 32]
    assert batch.shape == (2, 2, 3, 24, 32)
    for b in range(2):
        single = renderer.render(faces[b], rotations[b], headings[b], elevations[b])
        assert torch.equal(batch[b], single)


def test_cached_plans_give_same_images() -> None:
    faces = direction_faces(32)
    cached = CubeMapRenderer(width=32, height=24, cache_views=72, backend="torch")
    uncached = CubeMapRenderer(width=32, height=24, cache_views=0, backend="torch")
    first = cached.render_discretized(faces, LEVEL)
    again = cached.render_discretized(faces, LEVEL)
    assert torch.equal(first, again)
    assert torch.equal(first, uncached.render_discretized(faces, LEVEL))


@pytest.mark.parametrize("face_size", [1, 3, 17, 64])
def test_backends_agree(face_size: int) -> None:
    # Random rotations and angles off the discretized grid, straight up and down included,
    # with a wide field of view that spans several faces: the compiled kernel and the
    # sparse product compute the same float32 arithmetic.
    generator = torch.Generator().manual_seed(face_size)
    faces = torch.randint(0, 256, (6, 3, face_size, face_size), dtype=torch.uint8, generator=generator)
    headings = [0.0, 0.37, 2.9, -1.2, 40.0, math.pi]
    elevations = [math.pi / 2, -0.8, 0.05, -math.pi / 2, 1.1, 0.0]
    images = {}
    for backend in BACKENDS:
        renderer = CubeMapRenderer(width=48, height=36, vfov_deg=100.0, backend=backend)
        images[backend] = torch.stack(
            [renderer.render(faces, random_rotation(seed), headings, elevations) for seed in range(3)]
        ).to(torch.int32)
    difference = (images["numba"] - images["torch"]).abs()
    assert int(difference.max()) <= 1
    assert float((difference > 0).float().mean()) < 1e-3


def test_cube_map_padding_repeats_edges() -> None:
    faces = torch.randint(0, 256, (6, 3, 5, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    texels = CubeMap.from_faces(faces).texels  # [6, 7, 7, 3]
    assert texels.shape == (6, 7, 7, 3)
    channels_last = faces.permute(0, 2, 3, 1)  # [6, 5, 5, 3]
    assert torch.equal(texels[:, 1:-1, 1:-1], channels_last)
    assert torch.equal(texels[:, 0, 1:-1], channels_last[:, 0])  # top border = first row
    assert torch.equal(texels[:, -1, 1:-1], channels_last[:, -1])
    assert torch.equal(texels[:, 1:-1, 0], channels_last[:, :, 0])  # left border = first column
    assert torch.equal(texels[:, 1:-1, -1], channels_last[:, :, -1])
    assert torch.equal(texels[:, 0, 0], channels_last[:, 0, 0])  # corners repeat the corner texel
    assert torch.equal(texels[:, -1, -1], channels_last[:, -1, -1])


def test_compiled_backend_from_threads() -> None:
    # Calls from several threads at once give the images of calls one after another.
    renderer = CubeMapRenderer(width=64, height=48, backend="numba")
    faces = renderer.prepare(direction_faces(32))
    headings = [[0.1 * k, 1.0 + k, 2.0 - k] for k in range(6)]
    expected = [renderer.render(faces, LEVEL, h, [0.0, 0.3, -0.3]) for h in headings]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda h: renderer.render(faces, LEVEL, h, [0.0, 0.3, -0.3]), headings))
    assert all(torch.equal(a, b) for a, b in zip(results, expected))


def fork_render(faces: torch.Tensor, queue) -> None:
    image = CubeMapRenderer(width=32, height=24, backend="numba").render(faces, LEVEL, [0.7], [0.2])
    queue.put(image.numpy())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_compiled_backend_in_forked_process() -> None:
    # A DataLoader worker forked after the parent rendered can render too.
    faces = direction_faces(16)
    expected = CubeMapRenderer(width=32, height=24, backend="numba").render(faces, LEVEL, [0.7], [0.2])
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=fork_render, args=(faces, queue))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    np.testing.assert_array_equal(queue.get(timeout=5), expected.numpy())


def fork_render_full_size(faces: torch.Tensor, queue) -> None:
    torch.set_num_threads(1)  # what PyTorch's DataLoader does in its workers
    queue.put(CubeMapRenderer().render_discretized(faces, LEVEL).numpy())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_worker_renders_full_size(data_dir: Path) -> None:
    # 36 views of 640x480 from 512-texel faces, in a worker forked after the parent
    # rendered them with all its threads.
    skyboxes = data_dir / "mattersim_reference" / "renders" / "skyboxes"
    faces = load_skybox(skyboxes, "17DRP5sb8fy", "10c252c90fa24ef3b698c6f54d984c5c")
    expected = CubeMapRenderer().render_discretized(faces, LEVEL)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=fork_render_full_size, args=(faces, queue))
    child.start()
    images = queue.get(timeout=60)
    child.join(60)
    if child.exitcode is None:
        child.kill()
    assert child.exitcode == 0
    np.testing.assert_array_equal(images, expected.numpy())


def test_compiled_backend_keeps_torch_threads() -> None:
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        CubeMapRenderer(width=8, height=6, backend="numba").render(solid_faces(), LEVEL, [0.0], [0.0])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


def render_in_loop(renderer: CubeMapRenderer, faces, stop) -> None:
    while not stop.is_set():
        renderer.render(faces, LEVEL, [0.1, 0.2], [0.0, 0.1])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_while_another_thread_renders() -> None:
    # A worker forked while a background thread renders (a prefetching loader, say) can
    # render too: the fork waits for the running call.
    renderer = CubeMapRenderer(width=64, height=48, backend="numba")
    faces = direction_faces(16)
    expected = CubeMapRenderer(width=32, height=24, backend="numba").render(faces, LEVEL, [0.7], [0.2])
    stop = threading.Event()
    background = threading.Thread(target=render_in_loop, args=(renderer, faces, stop))
    background.start()
    context = multiprocessing.get_context("fork")
    try:
        for _ in range(3):
            queue = context.Queue()
            child = context.Process(target=fork_render, args=(faces, queue))
            child.start()
            child.join(60)
            if child.exitcode is None:
                child.kill()
            assert child.exitcode == 0
            np.testing.assert_array_equal(queue.get(timeout=5), expected.numpy())
    finally:
        stop.set()
        background.join()


def test_render_into_given_output(renderer) -> None:
    faces = direction_faces(16)
    out = torch.zeros((2, 3, 18, 24), dtype=torch.uint8)
    result = renderer.render(faces, LEVEL, [0.5, 2.0], [0.2, -0.3], out=out)
    assert result is out
    assert torch.equal(out, renderer.render(faces, LEVEL, [0.5, 2.0], [0.2, -0.3]))


def test_render_rejects_wrong_output(renderer) -> None:
    out = torch.zeros((2, 3, 24, 18), dtype=torch.uint8)
    with pytest.raises(RenderInputError, match="out must be uint8"):
        renderer.render(solid_faces(), LEVEL, [0.5, 2.0], [0.2, -0.3], out=out)


def test_prepared_cube_map_same_as_faces(renderer) -> None:
    faces = direction_faces(16)
    prepared = renderer.prepare(faces)
    assert isinstance(prepared, CubeMap)
    assert torch.equal(
        renderer.render(prepared, LEVEL, [0.5], [0.2]), renderer.render(faces, LEVEL, [0.5], [0.2])
    )


def test_discretized_angles_view_index() -> None:
    headings, elevations = discretized_angles()
    assert math.isclose(headings[13], math.radians(30))
    assert math.isclose(elevations[13], 0.0)
    assert math.isclose(elevations[0], math.radians(-30))
    assert math.isclose(headings[35], math.radians(330))
    assert math.isclose(elevations[35], math.radians(30))


@pytest.mark.parametrize(
    ("faces", "rotation", "headings", "error"),
    [
        (solid_faces().float(), IDENTITY, [0.0], TypeError),
        (solid_faces()[:5], IDENTITY, [0.0], RenderInputError),
        (solid_faces(), np.eye(4), [0.0], RenderInputError),
        (solid_faces(), np.full((3, 3), math.inf), [0.0], RenderInputError),
        (solid_faces(), IDENTITY, [math.nan], RenderInputError),
        (solid_faces(), IDENTITY, [], RenderInputError),
    ],
)
def test_render_rejects_bad_input(renderer, faces, rotation, headings, error) -> None:
    with pytest.raises(error):
        renderer.render(faces, rotation, headings, [0.0] * len(headings))


@pytest.mark.parametrize(
    "rotation",
    [
        np.zeros((3, 3)),
        np.eye(3) * 1e-50,  # zero in float32
        np.eye(3) * 1e39,  # beyond float32
        np.eye(3) * 2.0,
        -LEVEL,  # determinant -1: a mirror image
    ],
)
def test_render_rejects_non_rotation(renderer, rotation) -> None:
    with pytest.raises(RenderInputError, match="must be a rotation matrix"):
        renderer.render(solid_faces(), rotation, [0.3], [0.1])


def test_render_rejects_non_tensor_output(renderer) -> None:
    with pytest.raises(RenderInputError, match="torch tensor"):
        renderer.render(solid_faces(), LEVEL, [0.5], [0.2], out=np.zeros((1, 3, 18, 24), dtype=np.uint8))


@pytest.mark.parametrize(
    ("texels", "face_size"),
    [
        (torch.zeros((1, 1002, 1002, 3), dtype=torch.uint8), 1000),  # one face
        (torch.zeros((6, 10, 10, 3), dtype=torch.uint8), 16),  # face size of other texels
        (torch.zeros((6, 10, 12, 3), dtype=torch.uint8), 8),  # not square
        (torch.zeros((6, 10, 10, 3)), 8),  # float
        (torch.zeros((6, 3, 10, 10), dtype=torch.uint8), 8),  # channels first
    ],
)
def test_cube_map_rejects_bad_texels(texels, face_size) -> None:
    with pytest.raises(RenderInputError, match="CubeMap texels"):
        CubeMap(texels=texels, face_size=face_size)


def test_kernel_rejects_mismatched_arrays() -> None:
    texels = np.zeros((6, 6, 6, 3), dtype=np.uint8)
    along_row = np.zeros((2, 3, 8), dtype=np.float32)
    along_column = np.zeros((2, 3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=r"out must have shape \[2, 3, 4, 8\]"):
        render_views(texels, along_row, along_column, np.zeros((1, 3, 4, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="along_row must be a C-contiguous float32"):
        render_views(
            texels, along_row.astype(np.float64), along_column, np.zeros((2, 3, 4, 8), dtype=np.uint8)
        )
    with pytest.raises(ValueError, match="texels must have shape"):
        render_views(texels[:5], along_row, along_column, np.zeros((2, 3, 4, 8), dtype=np.uint8))


def test_compiled_backend_keeps_numba_threads() -> None:
    import numba

    before = numba.get_num_threads()
    CubeMapRenderer(width=8, height=6, backend="numba").render(solid_faces(), LEVEL, [0.0], [0.0])
    assert numba.get_num_threads() == before


def test_kept_plan_holds_its_own_rows() -> None:
    # A kept plan's arrays hold its own 4 entries per pixel, not the chunk it was built in.
    renderer = CubeMapRenderer(width=16, height=12, cache_views=1, backend="torch")
    renderer.render(solid_faces(), LEVEL, [0.1, 0.2, 0.3, 0.4], [0.0] * 4)
    (plan,) = renderer._plans.values()
    assert plan.values().untyped_storage().nbytes() == 16 * 12 * 4 * 4  # float32 weights
    assert plan.col_indices().untyped_storage().nbytes() == 16 * 12 * 4 * 4  # int32 indices


def test_kernel_compiles_without_cache(monkeypatch, caplog) -> None:
    # Where Numba finds no writable cache folder, the kernel compiles without caching.
    import importlib.util

    import numba

    from envs import cube_kernel

    real_njit = numba.njit

    def njit_without_cache_folder(*args, **kwargs):
        if kwargs.get("cache"):
            raise RuntimeError("cannot cache function '_render_views': no locator available")
        return real_njit(*args, **kwargs)

    monkeypatch.setattr(numba, "njit", njit_without_cache_folder)
    spec = importlib.util.spec_from_file_location("cube_kernel_uncached", cube_kernel.__file__)
    uncached = importlib.util.module_from_spec(spec)
    with caplog.at_level("WARNING"):
        spec.loader.exec_module(uncached)
    assert "compiled without a cache" in caplog.text

    renderer = CubeMapRenderer(width=16, height=12, backend="numba")
    cube_map = renderer.prepare(direction_faces(16))
    expected = renderer.render(cube_map, LEVEL, [0.4], [0.1])[0]
    along_row, along_column = renderer._ray_terms(LEVEL, np.array([0.4]), np.array([0.1]))
    out = np.zeros((1, 3, 12, 16), dtype=np.uint8)
    uncached.render_views(cube_map.texels.numpy(), along_row.numpy(), along_column.numpy(), out)
    np.testing.assert_array_equal(out[0], expected.numpy())


def test_renderer_rejects_bad_settings() -> None:
    with pytest.raises(RenderInputError, match="vfov_deg"):
        CubeMapRenderer(vfov_deg=180.0)
    with pytest.raises(RenderInputError, match="vfov_deg"):
        CubeMapRenderer(vfov_deg="60")
    with pytest.raises(RenderInputError, match="width must be an integer"):
        CubeMapRenderer(width=1.5)
    with pytest.raises(RenderInputError, match="cache_views must be an integer"):
        CubeMapRenderer(cache_views=None)
    with pytest.raises(RenderInputError, match="backend must be"):
        CubeMapRenderer(backend="opengl")
    with pytest.raises(RenderInputError, match="CPU only"):
        CubeMapRenderer(device="cuda", backend="numba")


def test_auto_backend_by_device() -> None:
    # Only the settings are checked here; nothing is allocated on the device.
    assert CubeMapRenderer().backend == "numba"
    assert CubeMapRenderer(device="cuda").backend == "torch"
    assert CubeMapRenderer(backend="torch").backend == "torch"


# --- reading skyboxes and poses ---------------------------------------------------------------


def write_strip(folder: Path, viewpoint: str, faces: torch.Tensor) -> None:
    strip = faces.permute(2, 0, 3, 1).reshape(faces.shape[-1], -1, 3).numpy()  # [S, 6 * S, 3]
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(strip).save(folder / f"{viewpoint}_skybox_small.jpg", format="PNG")


def test_load_skybox_strip_layout(tmp_path: Path) -> None:
    faces = quadrant_faces(8)
    write_strip(tmp_path / "scan" / "matterport_skybox_images", "vp", faces)
    assert torch.equal(load_skybox(tmp_path, "scan", "vp"), faces)


def test_load_skybox_separate_faces(tmp_path: Path) -> None:
    faces = quadrant_faces(8)
    folder = tmp_path / "scan"
    folder.mkdir()
    for k in range(6):
        Image.fromarray(faces[k].permute(1, 2, 0).numpy()).save(
            folder / f"vp_skybox{k}_sami.jpg", format="PNG"
        )
    assert torch.equal(load_skybox(tmp_path, "scan", "vp"), faces)


def test_load_skybox_missing_names_files(tmp_path: Path) -> None:
    (tmp_path / "scan").mkdir()
    with pytest.raises(DataNotFoundError, match="vp_skybox_small.jpg"):
        load_skybox(tmp_path, "scan", "vp")


def test_load_skybox_rejects_bad_strip(tmp_path: Path) -> None:
    folder = tmp_path / "scan"
    folder.mkdir()
    Image.new("RGB", (40, 8)).save(folder / "vp_skybox_small.jpg", format="PNG")
    with pytest.raises(SkyboxFormatError, match="6 times its height"):
        load_skybox(tmp_path, "scan", "vp")


def test_downsize_faces_averages_blocks() -> None:
    faces = torch.zeros((6, 3, 4, 4), dtype=torch.uint8)
    faces[0, 0, :2, :2] = torch.tensor([[0, 1], [2, 3]], dtype=torch.uint8)  # mean 1.5 rounds up to 2
    faces[0, 1, :2, :2] = torch.tensor([[0, 0], [0, 1]], dtype=torch.uint8)  # mean 0.25 rounds to 0
    faces[0, 2, 2:, 2:] = 255
    small = downsize_faces(faces, 2)
    assert small.shape == (6, 3, 2, 2)
    assert small[0, 0].tolist() == [[2, 0], [0, 0]]
    assert small[0, 1].tolist() == [[0, 0], [0, 0]]
    assert small[0, 2].tolist() == [[0, 0], [0, 255]]


def test_load_skybox_shrinks_large_faces(tmp_path: Path) -> None:
    # Faces of 16 texels whose 2x2 blocks repeat one value shrink back to the 8-texel faces.
    faces = direction_faces(8)
    folder = tmp_path / "scan" / "matterport_skybox_images"
    folder.mkdir(parents=True)
    large = faces.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # [6, 3, 16, 16]
    for k in range(6):
        Image.fromarray(large[k].permute(1, 2, 0).numpy()).save(
            folder / f"vp_skybox{k}_sami.jpg", format="PNG"
        )
    assert load_skybox(tmp_path, "scan", "vp").shape == (6, 3, 16, 16)
    assert torch.equal(load_skybox(tmp_path, "scan", "vp", face_size=8), faces)
    assert torch.equal(load_skybox(tmp_path, "scan", "vp", face_size=32), large)  # never enlarged


def test_pose_rotation_reads_row_major() -> None:
    pose = [0, -1, 0, 5, 1, 0, 0, 6, 0, 0, 1, 7, 0, 0, 0, 1]
    expected = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert np.array_equal(pose_rotation(pose), expected)


@pytest.mark.parametrize(
    "pose",
    [
        [1, 0, 0, 0] * 3 + [0, 0, 0],  # 15 numbers
        [2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1],  # scaled
        [-1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1],  # mirrored
        [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1],  # bad last row
    ],
)
def test_pose_rotation_rejects_malformed(pose) -> None:
    with pytest.raises(ConnectivityFormatError):
        pose_rotation(pose)


def test_pose_rotation_reads_rows_of_four() -> None:
    pose = [0, -1, 0, 5, 1, 0, 0, 6, 0, 0, 1, 7, 0, 0, 0, 1]
    nested = [pose[0:4], pose[4:8], pose[8:12], pose[12:16]]
    assert np.array_equal(pose_rotation(nested), pose_rotation(pose))


def test_read_pose_rotation_rejects_bad_files(tmp_path: Path) -> None:
    binary = tmp_path / "binary_connectivity.json"
    binary.write_bytes(b"\xff\xfe\x00[")
    with pytest.raises(ConnectivityFormatError, match="invalid JSON"):
        read_pose_rotation(binary, "abc")
    numeric = tmp_path / "numeric_connectivity.json"
    numeric.write_text(json.dumps([{"image_id": 5, "pose": np.eye(4).ravel().tolist()}]))
    with pytest.raises(ConnectivityFormatError, match="string image_id, got 5"):
        read_pose_rotation(numeric, "5")


def test_load_skybox_rejects_16_bit_images(tmp_path: Path) -> None:
    folder = tmp_path / "scan"
    folder.mkdir()
    Image.fromarray(np.full((8, 48), 40000, dtype=np.uint16)).save(
        folder / "vp_skybox_small.jpg", format="PNG"
    )
    with pytest.raises(SkyboxFormatError, match="8-bit"):
        load_skybox(tmp_path, "scan", "vp")


def test_read_pose_rotation_unknown_viewpoint(tmp_path: Path) -> None:
    path = tmp_path / "scan_connectivity.json"
    path.write_text(json.dumps([{"image_id": "abc", "pose": np.eye(4).ravel().tolist()}]))
    with pytest.raises(UnknownViewpointError, match="abd"):
        read_pose_rotation(path, "abd")


# --- the simulator's own renders --------------------------------------------------------------

REFERENCE_VIEWPOINTS = [
    ("synthIdentity", "0" * 32, "mattersim_reference/renders/synthIdentity_connectivity.json"),
    ("17DRP5sb8fy", "10c252c90fa24ef3b698c6f54d984c5c", "connectivity/17DRP5sb8fy_connectivity.json"),
]


def reference_views(data_dir: Path, scan: str, viewpoint: str) -> tuple[list[int], torch.Tensor]:
    folder = data_dir / "mattersim_reference" / "renders" / "views" / f"{scan}_{viewpoint}"
    listing = json.loads((folder / "views.json").read_text())["views"]
    images = [np.array(Image.open(folder / view["file"]).convert("RGB")) for view in listing]
    return [view["viewIndex"] for view in listing], torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)


def near_seam(face_map: torch.Tensor) -> torch.Tensor:
    """Pixels with a pixel of another face within one pixel: bool [V, H, W] from [V, 3, H, W]."""
    code = face_map.to(torch.int32)
    code = (code[:, 0] * 65536 + code[:, 1] * 256 + code[:, 2]).float()[:, None]  # [V, 1, H, W]
    highest = torch.nn.functional.max_pool2d(code, 3, stride=1, padding=1)
    lowest = -torch.nn.functional.max_pool2d(-code, 3, stride=1, padding=1)
    return (highest != lowest)[:, 0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("scan", "viewpoint", "pose_file"), REFERENCE_VIEWPOINTS)
def test_matches_simulator_renders(
    data_dir: Path, scan: str, viewpoint: str, pose_file: str, backend: str
) -> None:
    skyboxes = data_dir / "mattersim_reference" / "renders" / "skyboxes"
    faces = load_skybox(skyboxes, scan, viewpoint)
    rotation = read_pose_rotation(data_dir / pose_file, viewpoint)
    view_index, reference = reference_views(data_dir, scan, viewpoint)  # [36, 3, 480, 640]
    renderer = CubeMapRenderer(cache_views=36, backend=backend)

    ours = renderer.render_discretized(faces, rotation)[view_index]
    difference = (ours.to(torch.int32) - reference.to(torch.int32)).abs().amax(dim=1)  # [36, 480, 640]
    beyond = difference > 2
    seams = near_seam(renderer.render_discretized(solid_faces(faces.shape[-1]), rotation)[view_index])

    # Off by more than 2 levels: at most 0.01 % of a view (31 pixels), all next to a seam
    # between faces, where OpenGL may take either face.
    assert int(beyond.sum(dim=(1, 2)).max()) <= 31
    assert not (beyond & ~seams).any()
    assert int(difference[~seams].max()) <= 2


@pytest.mark.parametrize(
    ("scan", "viewpoint"), [(scan, viewpoint) for scan, viewpoint, _ in REFERENCE_VIEWPOINTS]
)
def test_skybox_layouts_identical(data_dir: Path, tmp_path: Path, scan: str, viewpoint: str) -> None:
    skyboxes = data_dir / "mattersim_reference" / "renders" / "skyboxes"
    strip = load_skybox(skyboxes, scan, viewpoint, source="strip")
    assert torch.equal(load_skybox(skyboxes, scan, viewpoint, source="faces"), strip)

    # The Matterport3D download keeps the images in <scan>/matterport_skybox_images/.
    download = tmp_path / scan / "matterport_skybox_images"
    download.mkdir(parents=True)
    for k in range(6):
        name = f"{viewpoint}_skybox{k}_sami.jpg"
        shutil.copyfile(skyboxes / scan / name, download / name)
    assert torch.equal(load_skybox(tmp_path, scan, viewpoint), strip)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_bench_render_without_cuda_exits_2(data_dir: Path, capsys) -> None:
    from scripts import bench_render

    assert bench_render.main(["--data-dir", str(data_dir), "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_bench_render_bad_device_exits_2(data_dir: Path, capsys) -> None:
    from scripts import bench_render

    assert bench_render.main(["--data-dir", str(data_dir), "--device", "bogus"]) == 2
    assert "not a torch device" in capsys.readouterr().err


def test_torch_backend_rejects_huge_faces() -> None:
    # 6 faces of 18,918 + 2 texels a side exceed the int32 texel indices of the plans.
    renderer = CubeMapRenderer(width=4, height=3, backend="torch")
    with pytest.raises(RenderInputError, match="too large for the torch backend"):
        renderer._build_plans(LEVEL, np.array([0.0]), np.array([0.0]), 18_918)


def test_bench_extract_without_reference_data_exits_2(tmp_path: Path, capsys) -> None:
    from scripts import bench_extract

    (tmp_path / "connectivity").mkdir()
    assert bench_extract.main(["--data-dir", str(tmp_path), "--viewpoints", "1"]) == 2
    assert "mattersim_reference" in capsys.readouterr().err


def test_bench_render_prints_rates(data_dir: Path, capsys) -> None:
    from scripts import bench_render

    assert bench_render.main(["--data-dir", str(data_dir), "--repeats", "1", "--batch", "1"]) == 0
    printed = capsys.readouterr().out
    for case in ("numba: 1 viewpoint, output reused:", "torch: 1 viewpoint, plans kept, output reused:"):
        assert case in printed
    assert "plans built in the call" in printed
    assert "views/s" in printed
