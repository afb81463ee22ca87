"""Tests of the view-feature stores (TSV, zeros) and of atomic file writes."""

from __future__ import annotations

import base64
import json
import os
import stat
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from connectivity import DataNotFoundError
from envs.features import (
    NO_FEATURES,
    VIEWS_PER_VIEWPOINT,
    FeatureFormatError,
    MissingViewpointError,
    NoVisualFeatures,
    TsvFeatureStore,
    encode_tsv_line,
    open_feature_store,
    write_tsv_features,
)
from envs.io import atomic_write, write_json_atomic

DIM = 5


def features(seed: int, dim: int = DIM) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((36, dim)).astype(np.float32)


def tsv_line(
    scan: str, viewpoint: str, payload: str, size: tuple[str, str, str] = ("640", "480", "60")
) -> str:
    """One TSV line written by hand, with `payload` in the features field."""
    return "\t".join((scan, viewpoint, *size, payload)) + "\n"


def encoded(array: np.ndarray) -> str:
    return base64.b64encode(np.asarray(array, dtype=np.float32).tobytes()).decode("ascii")


RECORDS = [("scanA", "vp1", features(1)), ("scanA", "vp2", features(2)), ("scanB", "vp1", features(3))]


@pytest.fixture
def tsv_path(tmp_path: Path) -> Path:
    path = tmp_path / "features.tsv"
    write_tsv_features(path, RECORDS)
    return path


# --- writing --------------------------------------------------------------------------


def test_write_returns_count(tmp_path: Path) -> None:
    assert write_tsv_features(tmp_path / "f.tsv", RECORDS) == 3


def test_write_one_line_per_viewpoint(tsv_path: Path) -> None:
    assert len(tsv_path.read_text().splitlines()) == 3


def test_encode_line_fields() -> None:
    line = encode_tsv_line("scanA", "vp1", features(1))
    assert line.endswith("\n")
    assert line.rstrip("\n").split("\t")[:5] == ["scanA", "vp1", "640", "480", "60"]


def test_encode_line_payload() -> None:
    # Decoded independently: base64 of the float32 bytes in view-index order.
    line = encode_tsv_line("scanA", "vp1", features(1))
    raw = base64.b64decode(line.rstrip("\n").split("\t")[5])
    decoded = np.frombuffer(raw, dtype=np.float32).reshape(36, DIM)
    assert np.array_equal(decoded, features(1))


def test_encode_line_camera() -> None:
    line = encode_tsv_line("s", "v", features(1), image_w=320, image_h=240, vfov=75.5)
    assert line.split("\t")[2:5] == ["320", "240", "75.5"]


def test_encode_line_casts_to_float32() -> None:
    line = encode_tsv_line("s", "v", np.ones((36, 2), dtype=np.float64))
    assert line.split("\t")[5].strip() == encoded(np.ones((36, 2)))


def test_encode_line_wrong_view_count() -> None:
    with pytest.raises(FeatureFormatError, match="s/v"):
        encode_tsv_line("s", "v", np.zeros((35, DIM)))


def test_encode_line_wrong_rank() -> None:
    with pytest.raises(FeatureFormatError):
        encode_tsv_line("s", "v", np.zeros(36))


# --- reading --------------------------------------------------------------------------


def test_read_round_trip(tsv_path: Path) -> None:
    store = TsvFeatureStore(tsv_path)
    for scan, viewpoint, array in RECORDS:
        assert np.array_equal(store.get(scan, viewpoint), array), (scan, viewpoint)


def test_read_dim(tsv_path: Path) -> None:
    assert TsvFeatureStore(tsv_path).dim == DIM


def test_read_dtype(tsv_path: Path) -> None:
    assert TsvFeatureStore(tsv_path).get("scanA", "vp1").dtype == np.float32


def test_read_len(tsv_path: Path) -> None:
    assert len(TsvFeatureStore(tsv_path)) == 3


def test_read_keys(tsv_path: Path) -> None:
    assert list(TsvFeatureStore(tsv_path).keys()) == [("scanA", "vp1"), ("scanA", "vp2"), ("scanB", "vp1")]


def test_read_contains(tsv_path: Path) -> None:
    store = TsvFeatureStore(tsv_path)
    assert ("scanB", "vp1") in store
    assert ("scanB", "vp2") not in store
    assert "scanB" not in store


def test_read_metadata(tsv_path: Path) -> None:
    metadata = TsvFeatureStore(tsv_path).metadata
    assert (metadata["image_w"], metadata["image_h"], metadata["vfov"]) == (640, 480, 60.0)


def test_read_rows_batch(tsv_path: Path) -> None:
    store = TsvFeatureStore(tsv_path)
    rows = store.lookup_many([("scanB", "vp1"), ("scanA", "vp1")])
    batch = store.read_rows(rows)
    assert batch.shape == (2, 36, DIM)
    assert np.array_equal(batch[0], RECORDS[2][2])


def test_read_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "f.tsv"
    path.write_text("\n" + tsv_line("s", "v", encoded(features(1))) + "\n\n")
    assert len(TsvFeatureStore(path)) == 1


def test_read_windows_line_ends(tmp_path: Path) -> None:
    path = tmp_path / "f.tsv"
    path.write_bytes(tsv_line("s", "v", encoded(features(1))).replace("\n", "\r\n").encode())
    assert np.array_equal(TsvFeatureStore(path).get("s", "v"), features(1))


def test_read_explicit_dim(tsv_path: Path) -> None:
    assert TsvFeatureStore(tsv_path, dim=DIM).dim == DIM


@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.just(36), st.integers(1, 6)),
        elements=st.floats(allow_nan=False, allow_infinity=False, width=32),
    )
)
def test_read_round_trip_any_values(array: np.ndarray) -> None:
    # Bit patterns of every finite value survive (NaN and infinities are rejected).
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.tsv"
        write_tsv_features(path, [("s", "v", array)])
        assert TsvFeatureStore(path).get("s", "v").tobytes() == array.tobytes()


# --- malformed files ------------------------------------------------------------------


def write_lines(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "bad.tsv"
    path.write_text("".join(lines))
    return path


def assert_names_line(error: pytest.ExceptionInfo, path: Path, line: int) -> None:
    assert str(path) in str(error.value)
    assert f"line {line}" in str(error.value)


def test_truncated_line(tmp_path: Path) -> None:
    good = tsv_line("s", "v1", encoded(features(1)))
    path = write_lines(tmp_path, good, "s\tv2\t640\t480\n")
    with pytest.raises(FeatureFormatError) as raised:
        TsvFeatureStore(path)
    assert_names_line(raised, path, 2)


def test_extra_field(tmp_path: Path) -> None:
    path = write_lines(tmp_path, tsv_line("s", "v", encoded(features(1))).replace("\n", "\textra\n"))
    with pytest.raises(FeatureFormatError) as raised:
        TsvFeatureStore(path)
    assert_names_line(raised, path, 1)


def test_invalid_base64(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path,
        tsv_line("s", "v1", encoded(features(1))),
        tsv_line("s", "v2", encoded(features(2))),
        tsv_line("s", "v3", "not*base64!"),
    )
    with pytest.raises(FeatureFormatError, match="base64") as raised:
        TsvFeatureStore(path)
    assert_names_line(raised, path, 3)


def test_cut_base64(tmp_path: Path) -> None:
    # A payload cut off mid-way loses its padding.
    path = write_lines(tmp_path, tsv_line("s", "v", encoded(features(1))[:-3]))
    with pytest.raises(FeatureFormatError) as raised:
        TsvFeatureStore(path)
    assert_names_line(raised, path, 1)


def test_byte_count_not_views(tmp_path: Path) -> None:
    # 100 bytes is not a multiple of 36 views x 4 bytes.
    path = write_lines(tmp_path, tsv_line("s", "v", base64.b64encode(bytes(100)).decode()))
    with pytest.raises(FeatureFormatError, match="100 bytes") as raised:
        TsvFeatureStore(path)
    assert_names_line(raised, path, 1)


def test_wrong_explicit_dim(tsv_path: Path) -> None:
    with pytest.raises(FeatureFormatError, match="expected feature dimension 7, got 5") as raised:
        TsvFeatureStore(tsv_path, dim=7)
    assert_names_line(raised, tsv_path, 1)


def test_mixed_dims(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path, tsv_line("s", "v1", encoded(features(1, 4))), tsv_line("s", "v2", encoded(features(2, 6)))
    )
    with pytest.raises(FeatureFormatError, match="dimension 4, got 6") as raised:
        TsvFeatureStore(path)
    assert_names_line(raised, path, 2)


def test_empty_file(tmp_path: Path) -> None:
    path = write_lines(tmp_path, "\n")
    with pytest.raises(FeatureFormatError, match="no feature lines"):
        TsvFeatureStore(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="absent.tsv"):
        TsvFeatureStore(tmp_path / "absent.tsv")


def test_missing_viewpoint(tsv_path: Path) -> None:
    with pytest.raises(MissingViewpointError) as raised:
        TsvFeatureStore(tsv_path).get("scanB", "vp9")
    assert "'scanB'" in str(raised.value)
    assert "'vp9'" in str(raised.value)


def test_missing_viewpoint_is_lookup_error(tsv_path: Path) -> None:
    with pytest.raises(LookupError):
        TsvFeatureStore(tsv_path).lookup("scanC", "vp1")


def test_empty_payload(tmp_path: Path) -> None:
    path = write_lines(tmp_path, tsv_line("s", "v", ""))
    with pytest.raises(FeatureFormatError):
        TsvFeatureStore(path)


def test_invalid_image_width(tmp_path: Path) -> None:
    path = write_lines(tmp_path, tsv_line("s", "v", encoded(features(1)), ("wide", "480", "60")))
    with pytest.raises(FeatureFormatError) as raised:
        TsvFeatureStore(path)
    assert_names_line(raised, path, 1)


def test_invalid_vfov_later_line(tmp_path: Path) -> None:
    good = tsv_line("s", "v1", encoded(features(1)))
    bad = tsv_line("s", "v2", encoded(features(2)), ("640", "480", "sixty"))
    path = write_lines(tmp_path, good, bad)
    with pytest.raises(FeatureFormatError) as raised:
        TsvFeatureStore(path)
    assert_names_line(raised, path, 2)


def test_non_ascii_byte(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_bytes(tsv_line("sc\u00e9n", "v", encoded(features(1))).encode("utf-8"))
    with pytest.raises(FeatureFormatError) as raised:
        TsvFeatureStore(path)
    assert_names_line(raised, path, 1)


def test_duplicate_key(tmp_path: Path) -> None:
    line = tsv_line("scanA", "vp7", encoded(features(1)))
    path = write_lines(tmp_path, line, line)
    with pytest.raises(FeatureFormatError) as raised:
        TsvFeatureStore(path)
    assert_names_line(raised, path, 2)
    assert "'vp7'" in str(raised.value)


# --- zeros and open_feature_store -----------------------------------------------------


def test_zeros_shape() -> None:
    assert NoVisualFeatures(7).get("any", "thing").shape == (VIEWS_PER_VIEWPOINT, 7)


def test_zeros_values() -> None:
    assert not NoVisualFeatures(7).get("any", "thing").any()


def test_zeros_dtype() -> None:
    assert NoVisualFeatures(7).get("any", "thing").dtype == np.float32


def test_zeros_read_rows() -> None:
    store = NoVisualFeatures(3)
    rows = store.lookup_many([("a", "b"), ("c", "d")])
    assert store.read_rows(rows).shape == (2, 36, 3)


def test_zeros_contains_anything() -> None:
    assert ("unknown", "viewpoint") in NoVisualFeatures(4)


def test_zeros_default_dim() -> None:
    assert NoVisualFeatures().dim == 512


def test_zeros_invalid_dim() -> None:
    with pytest.raises(ValueError, match="got 0"):
        NoVisualFeatures(0)


def test_open_none_string() -> None:
    store = open_feature_store(NO_FEATURES, dim=9)
    assert isinstance(store, NoVisualFeatures)
    assert store.dim == 9


def test_open_none_literal() -> None:
    assert open_feature_store("none").dim == 512


def test_open_python_none() -> None:
    assert isinstance(open_feature_store(None), NoVisualFeatures)


def test_open_tsv(tsv_path: Path) -> None:
    store = open_feature_store(tsv_path)
    assert np.array_equal(store.get("scanA", "vp2"), features(2))


def test_open_missing_tsv(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError):
        open_feature_store(tmp_path / "absent.tsv")


def test_open_missing_other(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="absent.bin"):
        open_feature_store(tmp_path / "absent.bin")


# --- atomic writes --------------------------------------------------------------------


def test_atomic_write_creates(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    with atomic_write(path) as out:
        out.write("hello")
    assert path.read_text() == "hello"


def test_atomic_write_replaces(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old")
    with atomic_write(path) as out:
        out.write("new")
    assert path.read_text() == "new"


def test_atomic_write_binary(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    with atomic_write(path, "wb") as out:
        out.write(b"\x00\xff")
    assert path.read_bytes() == b"\x00\xff"


def test_atomic_write_utf8(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    with atomic_write(path) as out:
        out.write("दाएँ")
    assert path.read_bytes() == "दाएँ".encode()


def test_atomic_write_makes_parent(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "out.txt"
    with atomic_write(path) as out:
        out.write("x")
    assert path.read_text() == "x"


def test_atomic_write_error_keeps_old(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(path) as out:
        out.write("partial")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old"


def test_atomic_write_error_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(path) as out:
        out.write("partial")
        raise RuntimeError("interrupted")
    assert sorted(os.listdir(tmp_path)) == ["out.txt"]


def test_atomic_write_error_no_new_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_write(tmp_path / "out.txt"):
        raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []


def test_atomic_write_success_leaves_no_temp(tmp_path: Path) -> None:
    with atomic_write(tmp_path / "out.txt") as out:
        out.write("x")
    assert os.listdir(tmp_path) == ["out.txt"]


def test_tsv_write_error_keeps_old(tmp_path: Path) -> None:
    path = tmp_path / "f.tsv"
    write_tsv_features(path, RECORDS[:1])
    before = path.read_bytes()
    bad = [RECORDS[1], ("s", "v", np.zeros((3, 3)))]
    with pytest.raises(FeatureFormatError):
        write_tsv_features(path, bad)
    assert path.read_bytes() == before


def test_write_json_atomic(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    write_json_atomic(path, {"a": [1, 2]}, indent=2)
    assert json.loads(path.read_text()) == {"a": [1, 2]}


def test_write_json_newline(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    write_json_atomic(path, [1])
    assert path.read_text() == "[1]\n"


def test_atomic_write_mode_follows_umask(tmp_path: Path) -> None:
    # The temporary file starts as owner-only; the written file gets 0666 minus the umask.
    umask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "out.txt") as out:
            out.write("x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / "out.txt").st_mode) == 0o644


def test_tsv_nan_rejected(tmp_path: Path) -> None:
    array = np.zeros((36, 4), dtype=np.float32)
    array[3, 1] = np.nan
    path = tmp_path / "nan.tsv"
    path.write_text(encode_tsv_line("scan", "vp", array))
    with pytest.raises(FeatureFormatError, match="line 1: the features hold NaN"):
        TsvFeatureStore(path)
