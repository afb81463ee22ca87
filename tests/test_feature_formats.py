"""Tests of the HDF5 and clipnav feature formats, conversion, zero fill, writing and the CLIs."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from connectivity import ClipnavError, DataNotFoundError
from envs.features import (
    ClipnavFeatureStore,
    ClipnavStoreWriter,
    FeatureFormatError,
    FeatureMismatchError,
    FeatureStoreExistsError,
    Hdf5FeatureStore,
    InMemoryFeatureStore,
    MissingViewpointError,
    NoVisualFeatures,
    TsvFeatureStore,
    check_compatible,
    clipnav_writer,
    convert_features,
    detect_format,
    feature_metadata,
    merge_stores,
    open_feature_store,
    open_store_writer,
    parse_shard,
    shard_keys,
    write_hdf5_features,
    write_tsv_features,
)
from scripts import bench_features, inspect_features
from scripts import convert_features as convert_cli

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DIM = 6
KEYS = [("scanA", f"vp{i}") for i in range(5)] + [("scanB", f"vp{i}") for i in range(4)]


def features(seed: int, dim: int = DIM, count: int | None = None) -> np.ndarray:
    """Random float32 features [36, dim], or [count, 36, dim] when count is given."""
    shape = (36, dim) if count is None else (count, 36, dim)
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


ARRAY = features(0, count=len(KEYS))  # [9, 36, DIM], row i belongs to KEYS[i]


def records(array: np.ndarray = ARRAY, keys: list[tuple[str, str]] = KEYS):
    return [(scan, viewpoint, array[i]) for i, (scan, viewpoint) in enumerate(keys)]


def read_all(store, keys: list[tuple[str, str]] = KEYS) -> np.ndarray:
    return store.read_rows(store.lookup_many(keys))


def write_clipnav(
    path: Path, array: np.ndarray = ARRAY, keys=KEYS, dtype: str = "float32", metadata=None
) -> Path:
    writer = ClipnavStoreWriter.create(path, keys, array.shape[2], dtype, metadata)
    writer.write(np.arange(len(keys)), array)
    return writer.finish()


def warnings_in(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno == logging.WARNING]


@pytest.fixture
def tsv_path(tmp_path: Path) -> Path:
    path = tmp_path / "views.tsv"
    write_tsv_features(path, records())
    return path


@pytest.fixture
def hdf5_path(tmp_path: Path) -> Path:
    path = tmp_path / "views.hdf5"
    write_hdf5_features(path, records())
    return path


@pytest.fixture
def clipnav_path(tmp_path: Path) -> Path:
    return write_clipnav(tmp_path / "views.clipnav", metadata={"encoder": "ViT-B/32", "pretrained": "openai"})


# --- round trips ----------------------------------------------------------------------


def test_tsv_to_hdf5_exact(tsv_path: Path, tmp_path: Path) -> None:
    out = convert_features(tsv_path, tmp_path / "out.h5")
    assert np.array_equal(read_all(Hdf5FeatureStore(out)), ARRAY)


def test_hdf5_to_clipnav_exact(hdf5_path: Path, tmp_path: Path) -> None:
    out = convert_features(hdf5_path, tmp_path / "out.clipnav", dtype="float32")
    assert np.array_equal(read_all(ClipnavFeatureStore(out)), ARRAY)


def test_clipnav_to_tsv_exact(clipnav_path: Path, tmp_path: Path) -> None:
    out = convert_features(clipnav_path, tmp_path / "out.tsv")
    assert np.array_equal(read_all(TsvFeatureStore(out)), ARRAY)


def test_clipnav_to_hdf5_exact(clipnav_path: Path, tmp_path: Path) -> None:
    out = convert_features(clipnav_path, tmp_path / "out.h5")
    assert np.array_equal(read_all(Hdf5FeatureStore(out)), ARRAY)


def test_round_trip_keys(tsv_path: Path, tmp_path: Path) -> None:
    out = convert_features(convert_features(tsv_path, tmp_path / "a.h5"), tmp_path / "b.clipnav")
    assert sorted(ClipnavFeatureStore(out).keys()) == sorted(KEYS)


@settings(max_examples=25, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 3), st.just(36), st.integers(1, 4)),
        elements=st.floats(allow_nan=False, allow_infinity=False, width=32),
    )
)
def test_round_trip_any_values(array: np.ndarray) -> None:
    # Bit patterns of finite values survive TSV -> HDF5 -> clipnav float32 (TSV rejects NaN).
    keys = [("s", f"v{i}") for i in range(len(array))]
    with tempfile.TemporaryDirectory() as folder:
        tsv = Path(folder) / "f.tsv"
        write_tsv_features(tsv, records(array, keys))
        hdf5 = convert_features(tsv, Path(folder) / "f.h5")
        store = ClipnavFeatureStore(convert_features(hdf5, Path(folder) / "f.clipnav"))
        assert read_all(store, keys).tobytes() == array.tobytes()


def test_float16_within_precision(tsv_path: Path, tmp_path: Path) -> None:
    store = ClipnavFeatureStore(convert_features(tsv_path, tmp_path / "out.clipnav", dtype="float16"))
    # Rounding to the nearest float16 errs by at most half a unit in the last place. That
    # is 2^-11 relative for normal numbers and 2^-25 absolute below 2^-14, the smallest normal.
    bound = np.maximum(np.abs(ARRAY) * 2.0**-11, 2.0**-25)
    assert (np.abs(read_all(store) - ARRAY) <= bound).all()


def test_float16_reads_float32(tsv_path: Path, tmp_path: Path) -> None:
    store = ClipnavFeatureStore(convert_features(tsv_path, tmp_path / "out.clipnav", dtype="float16"))
    assert read_all(store).dtype == np.float32


def test_float16_stored_dtype(tsv_path: Path, tmp_path: Path) -> None:
    out = convert_features(tsv_path, tmp_path / "out.clipnav", dtype="float16")
    assert np.load(out / "features.npy", mmap_mode="r").dtype == np.float16


def test_hdf5_float16_output(tsv_path: Path, tmp_path: Path) -> None:
    out = convert_features(tsv_path, tmp_path / "out.h5", dtype="float16")
    with h5py.File(out) as file:
        assert file["scanA_vp0"].dtype == np.float16


def test_convert_keeps_metadata(clipnav_path: Path, tmp_path: Path) -> None:
    hdf5 = convert_features(clipnav_path, tmp_path / "mid.h5")
    back = ClipnavFeatureStore(convert_features(hdf5, tmp_path / "back.clipnav"))
    assert back.metadata["encoder"] == "ViT-B/32"
    assert back.metadata["pretrained"] == "openai"


def test_convert_records_source(clipnav_path: Path, tmp_path: Path) -> None:
    out = ClipnavFeatureStore(convert_features(clipnav_path, tmp_path / "out.clipnav"))
    assert out.metadata["converted_from"]["format"] == "clipnav"


def test_convert_keeps_tsv_camera(tmp_path: Path) -> None:
    source = tmp_path / "cam.tsv"
    write_tsv_features(source, records(), image_w=320, image_h=240, vfov=75.0)
    store = ClipnavFeatureStore(convert_features(source, tmp_path / "cam.clipnav"))
    assert (store.metadata["image_w"], store.metadata["image_h"], store.metadata["vfov"]) == (320, 240, 75.0)


def test_convert_camera_back_to_tsv(tmp_path: Path) -> None:
    source = tmp_path / "cam.tsv"
    write_tsv_features(source, records(), image_w=320, image_h=240, vfov=75.0)
    back = convert_features(convert_features(source, tmp_path / "cam.h5"), tmp_path / "back.tsv")
    assert back.read_text().splitlines()[0].split("\t")[2:5] == ["320", "240", "75"]


def test_convert_existing_output(tsv_path: Path, hdf5_path: Path) -> None:
    with pytest.raises(FeatureStoreExistsError, match="overwrite"):
        convert_features(tsv_path, hdf5_path)


def test_convert_overwrite_clipnav(tsv_path: Path, clipnav_path: Path) -> None:
    convert_features(tsv_path, clipnav_path, dtype="float16", overwrite=True)
    assert ClipnavFeatureStore(clipnav_path).dtype == np.float16


def test_convert_unknown_suffix(tsv_path: Path, tmp_path: Path) -> None:
    with pytest.raises(FeatureFormatError, match="output format"):
        convert_features(tsv_path, tmp_path / "out.bin")


def test_convert_explicit_format(tsv_path: Path, tmp_path: Path) -> None:
    out = convert_features(tsv_path, tmp_path / "out.bin", format="hdf5")
    assert detect_format(out) == "hdf5"


def test_convert_tsv_rejects_float16(hdf5_path: Path, tmp_path: Path) -> None:
    with pytest.raises(FeatureFormatError, match="float32"):
        convert_features(hdf5_path, tmp_path / "out.tsv", dtype="float16")


def test_convert_same_path(tsv_path: Path) -> None:
    with pytest.raises(FeatureFormatError, match="same path"):
        convert_features(tsv_path, tsv_path, format="tsv", overwrite=True)


def test_convert_float16_overflow(tmp_path: Path) -> None:
    big = ARRAY.copy()
    big[3, 7, 2] = 1e6
    source = tmp_path / "big.tsv"
    write_tsv_features(source, records(big))
    with pytest.raises(FeatureFormatError, match="1e\\+06"):
        convert_features(source, tmp_path / "out.clipnav", dtype="float16")


def test_convert_failure_leaves_no_output(tmp_path: Path) -> None:
    source = tmp_path / "bad.tsv"
    write_tsv_features(source, records())
    with source.open("a") as out:
        out.write("scanC\tvp0\t640\t480\t60\tnot*base64\n")
    with pytest.raises(FeatureFormatError):
        convert_features(source, tmp_path / "out.h5")
    assert sorted(os.listdir(tmp_path)) == ["bad.tsv"]


def test_convert_resumes_clipnav(tsv_path: Path, tmp_path: Path, monkeypatch) -> None:
    # Stop a conversion after its first batch, then run it again.
    monkeypatch.setattr("envs.features.convert.WRITE_BATCH_ROWS", 4)
    real_write = ClipnavStoreWriter.write
    calls = []

    def write_once(self, rows, batch):
        if calls:
            raise KeyboardInterrupt
        calls.append(len(rows))
        real_write(self, rows, batch)

    monkeypatch.setattr(ClipnavStoreWriter, "write", write_once)
    with pytest.raises(KeyboardInterrupt):
        convert_features(tsv_path, tmp_path / "out.clipnav")
    monkeypatch.setattr(ClipnavStoreWriter, "write", real_write)
    out = convert_features(tsv_path, tmp_path / "out.clipnav")
    assert np.array_equal(read_all(ClipnavFeatureStore(out)), ARRAY)


# --- HDF5 -----------------------------------------------------------------------------


def write_raw_hdf5(path: Path, datasets: dict[str, np.ndarray]) -> Path:
    with h5py.File(path, "w") as file:
        for name, data in datasets.items():
            file.create_dataset(name, data=data)
    return path


def test_hdf5_read(hdf5_path: Path) -> None:
    assert np.array_equal(read_all(Hdf5FeatureStore(hdf5_path)), ARRAY)


def test_hdf5_dim(hdf5_path: Path) -> None:
    assert Hdf5FeatureStore(hdf5_path).dim == DIM


def test_hdf5_dataset_names(hdf5_path: Path) -> None:
    with h5py.File(hdf5_path) as file:
        assert sorted(file) == sorted(f"{scan}_{viewpoint}" for scan, viewpoint in KEYS)


def test_hdf5_logits_sliced(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    logits = np.random.default_rng(9).standard_normal((len(KEYS), 36, 1000)).astype(np.float32)
    wide = np.concatenate([ARRAY, logits], axis=2)
    path = write_raw_hdf5(tmp_path / "wide.hdf5", {f"{s}_{v}": wide[i] for i, (s, v) in enumerate(KEYS)})
    with caplog.at_level(logging.WARNING):
        store = Hdf5FeatureStore(path, dim=DIM)
    assert np.array_equal(read_all(store), ARRAY)
    assert len(warnings_in(caplog)) == 1
    assert "logits" in warnings_in(caplog)[0].getMessage()


def test_hdf5_logits_via_open(tmp_path: Path) -> None:
    wide = np.concatenate([ARRAY, np.ones((len(KEYS), 36, 1000), np.float32)], axis=2)
    path = write_raw_hdf5(tmp_path / "wide.h5", {f"{s}_{v}": wide[i] for i, (s, v) in enumerate(KEYS)})
    assert open_feature_store(path, dim=DIM).dim == DIM


def test_hdf5_width_neither(hdf5_path: Path) -> None:
    with pytest.raises(FeatureFormatError, match="expected feature dimension 7") as raised:
        Hdf5FeatureStore(hdf5_path, dim=7)
    assert "'scanA_vp0'" in str(raised.value)
    assert str(hdf5_path) in str(raised.value)


def test_hdf5_float64_as_float32(tmp_path: Path) -> None:
    array64 = np.random.default_rng(5).standard_normal((len(KEYS), 36, DIM))
    path = write_raw_hdf5(tmp_path / "f64.h5", {f"{s}_{v}": array64[i] for i, (s, v) in enumerate(KEYS)})
    store = Hdf5FeatureStore(path)
    assert read_all(store).dtype == np.float32
    assert np.array_equal(read_all(store), array64.astype(np.float32))
    assert store.metadata["dtype"] == "float64"


def test_hdf5_writer_float64(tmp_path: Path) -> None:
    assert write_hdf5_features(tmp_path / "f64.h5", records(), dtype="float64") == len(KEYS)
    with h5py.File(tmp_path / "f64.h5") as file:
        assert file["scanB_vp3"].dtype == np.float64


def test_hdf5_view_count(tmp_path: Path) -> None:
    path = write_raw_hdf5(tmp_path / "bad.h5", {"scanA_vp0": ARRAY[0], "scanA_vp1": ARRAY[1][:35]})
    with pytest.raises(FeatureFormatError, match=r"\[35, 6\]") as raised:
        Hdf5FeatureStore(path)
    assert "'scanA_vp1'" in str(raised.value)
    assert "[36, D]" in str(raised.value)


def test_hdf5_integer_dtype(tmp_path: Path) -> None:
    path = write_raw_hdf5(tmp_path / "bad.h5", {"scanA_vp0": np.zeros((36, DIM), np.int32)})
    with pytest.raises(FeatureFormatError, match="dtype int32") as raised:
        Hdf5FeatureStore(path)
    assert "'scanA_vp0'" in str(raised.value)


def test_hdf5_mixed_widths(tmp_path: Path) -> None:
    path = write_raw_hdf5(tmp_path / "bad.h5", {"scanA_vp0": ARRAY[0], "scanA_vp1": features(1, DIM + 1)})
    with pytest.raises(FeatureFormatError, match="7 wide") as raised:
        Hdf5FeatureStore(path)
    assert "'scanA_vp1'" in str(raised.value)


def test_hdf5_group(tmp_path: Path) -> None:
    path = tmp_path / "groups.h5"
    with h5py.File(path, "w") as file:
        file.create_group("scanA_vp0").create_dataset("fts", data=ARRAY[0])
    with pytest.raises(FeatureFormatError, match="'scanA_vp0' is a group"):
        Hdf5FeatureStore(path)


def test_hdf5_bad_name(tmp_path: Path) -> None:
    path = write_raw_hdf5(tmp_path / "bad.h5", {"noseparator": ARRAY[0]})
    with pytest.raises(FeatureFormatError, match="'noseparator' is not named <scan>_<viewpoint>"):
        Hdf5FeatureStore(path)


def test_hdf5_no_datasets(tmp_path: Path) -> None:
    path = write_raw_hdf5(tmp_path / "empty.h5", {})
    with pytest.raises(FeatureFormatError, match="no datasets"):
        Hdf5FeatureStore(path)


def test_hdf5_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="absent.h5"):
        Hdf5FeatureStore(tmp_path / "absent.h5")


def test_hdf5_metadata_attribute(tmp_path: Path) -> None:
    path = tmp_path / "meta.h5"
    write_hdf5_features(path, records(), metadata={"encoder": "RN50x4"})
    assert Hdf5FeatureStore(path).metadata["encoder"] == "RN50x4"


def test_hdf5_writer_underscore_scan(tmp_path: Path) -> None:
    with pytest.raises(FeatureFormatError, match="without '_'"):
        write_hdf5_features(tmp_path / "x.h5", [("scan_A", "vp0", ARRAY[0])])


def test_hdf5_writer_duplicate(tmp_path: Path) -> None:
    with pytest.raises(FeatureFormatError, match="appears twice"):
        write_hdf5_features(tmp_path / "x.h5", records()[:2] + records()[:1])


def test_hdf5_writer_error_keeps_old(hdf5_path: Path) -> None:
    before = hdf5_path.read_bytes()
    bad = [*records()[:3], ("scanC", "vp0", np.zeros((35, DIM)))]
    with pytest.raises(FeatureFormatError, match="scanC/vp0"):
        write_hdf5_features(hdf5_path, bad)
    assert hdf5_path.read_bytes() == before


def test_hdf5_writer_error_no_temp(tmp_path: Path) -> None:
    with pytest.raises(FeatureFormatError):
        write_hdf5_features(tmp_path / "x.h5", [("scanC", "vp0", np.zeros((35, DIM)))])
    assert os.listdir(tmp_path) == []


# --- zero fill ------------------------------------------------------------------------


def open_with_zero_fill(kind: str, tsv_path: Path, hdf5_path: Path, clipnav_path: Path):
    if kind == "memory":
        return InMemoryFeatureStore(KEYS, ARRAY, missing="zeros")
    path = {"tsv": tsv_path, "hdf5": hdf5_path, "clipnav": clipnav_path}[kind]
    return open_feature_store(path, missing="zeros")


STORE_KINDS = ["memory", "tsv", "hdf5", "clipnav"]


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_zero_fill_values(kind: str, tsv_path: Path, hdf5_path: Path, clipnav_path: Path) -> None:
    store = open_with_zero_fill(kind, tsv_path, hdf5_path, clipnav_path)
    assert np.array_equal(store.get("scanA", "absent"), np.zeros((36, DIM), np.float32))


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_zero_fill_one_warning(kind: str, tsv_path, hdf5_path, clipnav_path, caplog) -> None:
    store = open_with_zero_fill(kind, tsv_path, hdf5_path, clipnav_path)
    with caplog.at_level(logging.WARNING):
        for viewpoint in ("x1", "x2", "x3", "x1"):
            store.lookup("scanC", viewpoint)
    assert len(warnings_in(caplog)) == 1


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_zero_fill_describe(kind: str, tsv_path, hdf5_path, clipnav_path) -> None:
    store = open_with_zero_fill(kind, tsv_path, hdf5_path, clipnav_path)
    for viewpoint in ("x1", "x2", "x3", "x1"):
        store.lookup("scanC", viewpoint)
    assert "3 missing viewpoints filled with zeros" in store.describe()


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_zero_fill_mixed_batch(kind: str, tsv_path, hdf5_path, clipnav_path) -> None:
    store = open_with_zero_fill(kind, tsv_path, hdf5_path, clipnav_path)
    rows = store.lookup_many([("scanB", "vp2"), ("scanC", "gone"), ("scanA", "vp1")])
    batch = store.read_rows(rows)
    assert np.array_equal(batch[0], ARRAY[KEYS.index(("scanB", "vp2"))])
    assert not batch[1].any()
    assert np.array_equal(batch[2], ARRAY[1])


def test_zero_fill_count(tsv_path: Path) -> None:
    store = TsvFeatureStore(tsv_path, missing="zeros")
    store.lookup("scanC", "x")
    store.lookup("scanC", "x")
    assert store.missing_count == 1


def test_zero_fill_not_contained(tsv_path: Path) -> None:
    store = TsvFeatureStore(tsv_path, missing="zeros")
    assert ("scanC", "x") not in store
    assert store.missing_count == 0


def test_zero_fill_warning_names_viewpoint(tsv_path: Path, caplog) -> None:
    store = TsvFeatureStore(tsv_path, missing="zeros")
    with caplog.at_level(logging.WARNING):
        store.lookup("scanC", "lost")
    assert "'lost'" in warnings_in(caplog)[0].getMessage()


def test_zero_fill_file_width(tmp_path: Path) -> None:
    path = tmp_path / "wide.tsv"
    write_tsv_features(path, [("s", "v", features(1, 11))])
    assert TsvFeatureStore(path, missing="zeros").get("s", "other").shape == (36, 11)


def test_missing_mode_invalid(tsv_path: Path) -> None:
    with pytest.raises(ValueError, match="'skip'"):
        TsvFeatureStore(tsv_path, missing="skip")


@pytest.mark.parametrize("kind", ["tsv", "hdf5", "clipnav"])
def test_missing_raises_by_default(kind: str, tsv_path, hdf5_path, clipnav_path) -> None:
    store = open_feature_store({"tsv": tsv_path, "hdf5": hdf5_path, "clipnav": clipnav_path}[kind])
    with pytest.raises(MissingViewpointError) as raised:
        store.lookup("scanQ", "vp77")
    assert "scan 'scanQ'" in str(raised.value)
    assert "viewpoint 'vp77'" in str(raised.value)


# --- clipnav stores: layout and bad input ---------------------------------------------


def test_clipnav_layout(clipnav_path: Path) -> None:
    assert sorted(os.listdir(clipnav_path)) == ["features.npy", "keys.json", "metadata.json"]


def test_clipnav_keys_file(clipnav_path: Path) -> None:
    assert json.loads((clipnav_path / "keys.json").read_text()) == [list(key) for key in KEYS]


def test_clipnav_metadata_fields(clipnav_path: Path) -> None:
    metadata = json.loads((clipnav_path / "metadata.json").read_text())
    expected = {
        "format": "clipnav",
        "count": len(KEYS),
        "dim": DIM,
        "dtype": "float32",
        "encoder": "ViT-B/32",
    }
    assert {name: metadata[name] for name in expected} == expected
    assert "view_order" in metadata
    assert "created" in metadata


def test_clipnav_npy_readable(clipnav_path: Path) -> None:
    assert np.array_equal(np.load(clipnav_path / "features.npy"), ARRAY)


def test_clipnav_is_memory_mapped(clipnav_path: Path) -> None:
    assert isinstance(ClipnavFeatureStore(clipnav_path)._array.base, np.memmap)


def test_clipnav_open_metadata_file(clipnav_path: Path) -> None:
    assert len(open_feature_store(clipnav_path / "metadata.json")) == len(KEYS)


def test_clipnav_explicit_dim(clipnav_path: Path) -> None:
    with pytest.raises(FeatureFormatError, match="expected feature dimension 8, got 6"):
        ClipnavFeatureStore(clipnav_path, dim=8)


def test_clipnav_missing_metadata(clipnav_path: Path) -> None:
    (clipnav_path / "metadata.json").unlink()
    with pytest.raises(FeatureFormatError, match="metadata.json is missing") as raised:
        ClipnavFeatureStore(clipnav_path)
    assert str(clipnav_path) in str(raised.value)


def test_clipnav_metadata_without_dim(clipnav_path: Path) -> None:
    path = clipnav_path / "metadata.json"
    metadata = json.loads(path.read_text())
    del metadata["dim"]
    path.write_text(json.dumps(metadata))
    with pytest.raises(FeatureFormatError, match="missing field dim"):
        ClipnavFeatureStore(clipnav_path)


def test_clipnav_invalid_metadata_json(clipnav_path: Path) -> None:
    (clipnav_path / "metadata.json").write_text("{")
    with pytest.raises(FeatureFormatError, match="invalid JSON"):
        ClipnavFeatureStore(clipnav_path)


def test_clipnav_truncated_array(clipnav_path: Path) -> None:
    path = clipnav_path / "features.npy"
    size = path.stat().st_size
    os.truncate(path, size - 100)
    with pytest.raises(FeatureFormatError, match=f"{size - 100} bytes, expected {size}") as raised:
        ClipnavFeatureStore(clipnav_path)
    assert str(path) in str(raised.value)


def test_clipnav_extra_bytes(clipnav_path: Path) -> None:
    with (clipnav_path / "features.npy").open("ab") as out:
        out.write(b"\0" * 8)
    with pytest.raises(FeatureFormatError, match="truncated or corrupt"):
        ClipnavFeatureStore(clipnav_path)


def test_clipnav_index_array_mismatch(clipnav_path: Path) -> None:
    keys = json.loads((clipnav_path / "keys.json").read_text())[:-1]
    (clipnav_path / "keys.json").write_text(json.dumps(keys))
    metadata = json.loads((clipnav_path / "metadata.json").read_text())
    (clipnav_path / "metadata.json").write_text(json.dumps(metadata | {"count": len(keys)}))
    with pytest.raises(FeatureFormatError, match=r"shape \[9, 36, 6\] does not match"):
        ClipnavFeatureStore(clipnav_path)


def test_clipnav_count_mismatch(clipnav_path: Path) -> None:
    metadata = json.loads((clipnav_path / "metadata.json").read_text())
    (clipnav_path / "metadata.json").write_text(json.dumps(metadata | {"count": 4}))
    with pytest.raises(FeatureFormatError, match="count 4"):
        ClipnavFeatureStore(clipnav_path)


def test_clipnav_view_count(clipnav_path: Path) -> None:
    np.save(clipnav_path / "features.npy", ARRAY[:, :35])
    with pytest.raises(FeatureFormatError, match="35 views per viewpoint, expected 36"):
        ClipnavFeatureStore(clipnav_path)


def test_clipnav_array_dtype_mismatch(clipnav_path: Path) -> None:
    np.save(clipnav_path / "features.npy", ARRAY.astype(np.float16))
    with pytest.raises(FeatureFormatError, match="array dtype float16, but metadata.json records float32"):
        ClipnavFeatureStore(clipnav_path)


def test_clipnav_unsupported_dtype(clipnav_path: Path) -> None:
    np.save(clipnav_path / "features.npy", ARRAY.astype(np.float64))
    metadata = json.loads((clipnav_path / "metadata.json").read_text())
    (clipnav_path / "metadata.json").write_text(json.dumps(metadata | {"dtype": "float64"}))
    with pytest.raises(FeatureFormatError, match="dtype 'float64' is not supported"):
        ClipnavFeatureStore(clipnav_path)


def test_clipnav_missing_array(clipnav_path: Path) -> None:
    (clipnav_path / "features.npy").unlink()
    with pytest.raises(FeatureFormatError, match="features.npy is missing"):
        ClipnavFeatureStore(clipnav_path)


def test_clipnav_not_npy(clipnav_path: Path) -> None:
    (clipnav_path / "features.npy").write_bytes(b"not an array")
    with pytest.raises(FeatureFormatError, match="not a valid .npy file"):
        ClipnavFeatureStore(clipnav_path)


def test_clipnav_duplicate_keys(clipnav_path: Path) -> None:
    keys = [list(key) for key in KEYS]
    keys[4] = keys[1]
    (clipnav_path / "keys.json").write_text(json.dumps(keys))
    with pytest.raises(FeatureFormatError, match="viewpoint 'vp1' appears twice"):
        ClipnavFeatureStore(clipnav_path)


def test_clipnav_bad_key_entry(clipnav_path: Path) -> None:
    keys = [list(key) for key in KEYS]
    keys[2] = "scanA_vp2"
    (clipnav_path / "keys.json").write_text(json.dumps(keys))
    with pytest.raises(FeatureFormatError, match="entry 2"):
        ClipnavFeatureStore(clipnav_path)


def test_clipnav_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="absent.clipnav"):
        ClipnavFeatureStore(tmp_path / "absent.clipnav")


# --- resumable writer -----------------------------------------------------------------

BATCH = 2


def write_batches(writer: ClipnavStoreWriter, batches: int | None = None) -> None:
    """Write the pending rows of ARRAY in batches of BATCH, stopping after `batches` batches."""
    pending = writer.pending_rows()
    for number, start in enumerate(range(0, len(pending), BATCH)):
        if batches is not None and number == batches:
            return
        rows = pending[start : start + BATCH]
        writer.write(rows, ARRAY[rows])


@pytest.fixture
def reference_store(tmp_path: Path) -> Path:
    """The store written without interruption."""
    writer = ClipnavStoreWriter.create(tmp_path / "reference.clipnav", KEYS, DIM, "float16", {"encoder": "e"})
    write_batches(writer)
    return writer.finish()


def same_store(path: Path, reference: Path) -> bool:
    same_array = (path / "features.npy").read_bytes() == (reference / "features.npy").read_bytes()
    same_keys = (path / "keys.json").read_bytes() == (reference / "keys.json").read_bytes()
    return same_array and same_keys


def test_writer_no_final_before_finish(tmp_path: Path) -> None:
    writer = ClipnavStoreWriter.create(tmp_path / "out.clipnav", KEYS, DIM)
    write_batches(writer)
    assert not (tmp_path / "out.clipnav").exists()


def test_writer_partial_folder(tmp_path: Path) -> None:
    ClipnavStoreWriter.create(tmp_path / "out.clipnav", KEYS, DIM)
    assert (tmp_path / "out.clipnav.partial" / "progress.npy").is_file()


def test_writer_finish_renames(tmp_path: Path) -> None:
    writer = ClipnavStoreWriter.create(tmp_path / "out.clipnav", KEYS, DIM)
    write_batches(writer)
    writer.finish()
    assert os.listdir(tmp_path) == ["out.clipnav"]


def test_writer_resume_after_stop(tmp_path: Path, reference_store: Path) -> None:
    path = tmp_path / "out.clipnav"
    first = ClipnavStoreWriter.create(path, KEYS, DIM, "float16", {"encoder": "e"})
    write_batches(first, batches=2)
    first.close()
    resumed = open_store_writer(path, KEYS, DIM, "float16", {"encoder": "e"})
    assert resumed.pending_keys() == KEYS[2 * BATCH :]
    write_batches(resumed)
    assert same_store(resumed.finish(), reference_store)


def test_writer_done_keys(tmp_path: Path) -> None:
    writer = ClipnavStoreWriter.create(tmp_path / "out.clipnav", KEYS, DIM)
    writer.write([KEYS[3], KEYS[0]], ARRAY[[3, 0]])
    assert writer.done_keys() == [KEYS[0], KEYS[3]]
    assert writer.done_count == 2


def test_writer_resume_after_exception(tmp_path: Path, reference_store: Path) -> None:
    path = tmp_path / "out.clipnav"
    with (
        pytest.raises(RuntimeError),
        ClipnavStoreWriter.create(path, KEYS, DIM, "float16", {"encoder": "e"}) as w,
    ):
        write_batches(w, batches=1)
        raise RuntimeError("extraction failed")
    resumed = ClipnavStoreWriter.resume(path)
    write_batches(resumed)
    assert same_store(resumed.finish(), reference_store)


def test_writer_flags_after_data(tmp_path: Path, reference_store: Path, monkeypatch) -> None:
    # A crash after a batch's rows but before its flags leaves that batch pending.
    path = tmp_path / "out.clipnav"
    writer = ClipnavStoreWriter.create(path, KEYS, DIM, "float16", {"encoder": "e"})
    real_save = clipnav_writer._save_progress
    calls = []

    def crash_on_second(folder, done):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_save(folder, done)

    monkeypatch.setattr(clipnav_writer, "_save_progress", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        write_batches(writer)
    monkeypatch.setattr(clipnav_writer, "_save_progress", real_save)
    resumed = ClipnavStoreWriter.resume(path)
    assert resumed.done_count == BATCH
    write_batches(resumed)
    assert same_store(resumed.finish(), reference_store)


KILLED_WRITER = """
import os, signal, sys
import numpy as np
from envs.features import ClipnavStoreWriter
path, batches = sys.argv[1], int(sys.argv[2])
keys = [tuple(k) for k in np.load(sys.argv[3], allow_pickle=False).tolist()]
array = np.load(sys.argv[4])
writer = ClipnavStoreWriter.create(path, keys, array.shape[2], "float16", {"encoder": "e"})
for number, start in enumerate(range(0, len(keys), 2)):
    if number == batches:
        os.kill(os.getpid(), signal.SIGKILL)
    writer.write(np.arange(start, min(start + 2, len(keys))), array[start : start + 2])
"""


def test_writer_survives_kill(tmp_path: Path, reference_store: Path) -> None:
    np.save(tmp_path / "keys.npy", np.array(KEYS))
    np.save(tmp_path / "array.npy", ARRAY)
    path = tmp_path / "out.clipnav"
    argv = [
        sys.executable,
        "-c",
        KILLED_WRITER,
        str(path),
        "3",
        str(tmp_path / "keys.npy"),
        str(tmp_path / "array.npy"),
    ]
    result = subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, check=False)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    assert not path.exists()
    resumed = open_store_writer(path, KEYS, DIM, "float16")
    assert resumed.done_count == 3 * BATCH
    write_batches(resumed)
    assert same_store(resumed.finish(), reference_store)


def test_writer_finish_pending(tmp_path: Path) -> None:
    writer = ClipnavStoreWriter.create(tmp_path / "out.clipnav", KEYS, DIM)
    write_batches(writer, batches=1)
    with pytest.raises(FeatureFormatError, match="7 of 9 viewpoints are not written yet") as raised:
        writer.finish()
    assert "scanA/vp2" in str(raised.value)


def test_writer_finish_after_crash_in_finish(tmp_path: Path, monkeypatch) -> None:
    # A crash between dropping the flags and the rename leaves a finishable partial store.
    path = tmp_path / "out.clipnav"
    writer = ClipnavStoreWriter.create(path, KEYS, DIM, "float32")
    write_batches(writer)

    def crash(partial: Path, final: Path) -> None:
        raise OSError("crash")

    monkeypatch.setattr(clipnav_writer, "_install", crash)
    with pytest.raises(OSError, match="crash"):
        writer.finish()
    monkeypatch.undo()
    assert np.array_equal(read_all(ClipnavFeatureStore(ClipnavStoreWriter.resume(path).finish())), ARRAY)


def test_writer_unknown_key(tmp_path: Path) -> None:
    writer = ClipnavStoreWriter.create(tmp_path / "out.clipnav", KEYS, DIM)
    with pytest.raises(MissingViewpointError, match="viewpoint 'vp9' is not among the 9 viewpoints"):
        writer.write([("scanA", "vp9")], ARRAY[:1])


def test_writer_wrong_shape(tmp_path: Path) -> None:
    writer = ClipnavStoreWriter.create(tmp_path / "out.clipnav", KEYS, DIM)
    with pytest.raises(FeatureFormatError, match=r"needs features \[2, 36, 6\], got \[2, 35, 6\]"):
        writer.write([0, 1], ARRAY[:2, :35])


def test_writer_float16_overflow(tmp_path: Path) -> None:
    writer = ClipnavStoreWriter.create(tmp_path / "out.clipnav", KEYS, DIM, "float16")
    with pytest.raises(FeatureFormatError, match="largest float16"):
        writer.write([0], np.full((1, 36, DIM), 70000.0, np.float32))


def test_writer_row_out_of_range(tmp_path: Path) -> None:
    writer = ClipnavStoreWriter.create(tmp_path / "out.clipnav", KEYS, DIM)
    with pytest.raises(IndexError, match="0..8"):
        writer.write([9], ARRAY[:1])


def test_writer_partial_exists(tmp_path: Path) -> None:
    ClipnavStoreWriter.create(tmp_path / "out.clipnav", KEYS, DIM)
    with pytest.raises(FeatureStoreExistsError, match="resume"):
        ClipnavStoreWriter.create(tmp_path / "out.clipnav", KEYS, DIM)


def test_writer_final_exists(clipnav_path: Path) -> None:
    with pytest.raises(FeatureStoreExistsError, match="already exists"):
        ClipnavStoreWriter.create(clipnav_path, KEYS, DIM)


def test_writer_overwrite(clipnav_path: Path) -> None:
    writer = ClipnavStoreWriter.create(clipnav_path, KEYS[:2], DIM, "float32", overwrite=True)
    writer.write([0, 1], ARRAY[:2] + 1)
    writer.finish()
    assert np.array_equal(read_all(ClipnavFeatureStore(clipnav_path), KEYS[:2]), ARRAY[:2] + 1)


def test_writer_resume_other_dim(tmp_path: Path) -> None:
    ClipnavStoreWriter.create(tmp_path / "out.clipnav", KEYS, DIM).close()
    with pytest.raises(FeatureFormatError, match="dim \\(6 there, 8 now\\)"):
        open_store_writer(tmp_path / "out.clipnav", KEYS, 8)


def test_writer_resume_other_keys(tmp_path: Path) -> None:
    ClipnavStoreWriter.create(tmp_path / "out.clipnav", KEYS, DIM).close()
    with pytest.raises(FeatureFormatError, match="keys"):
        open_store_writer(tmp_path / "out.clipnav", KEYS[:3], DIM)


def test_writer_duplicate_keys(tmp_path: Path) -> None:
    with pytest.raises(FeatureFormatError, match="appears twice"):
        ClipnavStoreWriter.create(tmp_path / "out.clipnav", [*KEYS, KEYS[0]], DIM)


def test_writer_no_keys(tmp_path: Path) -> None:
    with pytest.raises(FeatureFormatError, match="at least one"):
        ClipnavStoreWriter.create(tmp_path / "out.clipnav", [], DIM)


def test_writer_bad_dtype(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="float64"):
        ClipnavStoreWriter.create(tmp_path / "out.clipnav", KEYS, DIM, "float64")


def test_partial_not_openable(tmp_path: Path) -> None:
    ClipnavStoreWriter.create(tmp_path / "out.clipnav", KEYS, DIM)
    with pytest.raises(FeatureFormatError, match="incomplete store"):
        open_feature_store(tmp_path / "out.clipnav.partial")


def test_feature_metadata_checkpoint_hash(tmp_path: Path) -> None:
    checkpoint = tmp_path / "weights.pt"
    checkpoint.write_bytes(b"weights" * 1000)
    metadata = feature_metadata("ViT-B/32", "openai", checkpoint=checkpoint)
    assert metadata["checkpoint_sha256"] == hashlib.sha256(b"weights" * 1000).hexdigest()


def test_feature_metadata_fields() -> None:
    metadata = feature_metadata("ViT-B/32", "openai", image_w=224, image_h=224, vfov=60, normalization="l2")
    expected = {
        "encoder": "ViT-B/32",
        "pretrained": "openai",
        "image_w": 224,
        "vfov": 60.0,
        "normalization": "l2",
    }
    assert {name: metadata[name] for name in expected} == expected
    assert metadata["checkpoint_sha256"] is None


# --- sharding and merging -------------------------------------------------------------


def write_shards(tmp_path: Path, count: int, metadata=None) -> list[Path]:
    paths = []
    for index in range(count):
        keys = shard_keys(KEYS, index, count)
        rows = [KEYS.index(key) for key in keys]
        shard_metadata = {"encoder": "e", "shard": f"{index}/{count}"} | (metadata or {})
        paths.append(
            write_clipnav(tmp_path / f"shard{index}.clipnav", ARRAY[rows], keys, "float16", shard_metadata)
        )
    return paths


def test_shard_keys_partition() -> None:
    shards = [shard_keys(KEYS, index, 4) for index in range(4)]
    assert sorted(key for shard in shards for key in shard) == sorted(KEYS)
    assert shards[1] == [KEYS[1], KEYS[5]]


def test_shard_keys_invalid() -> None:
    with pytest.raises(ValueError, match="index 4, count 4"):
        shard_keys(KEYS, 4, 4)


def test_parse_shard() -> None:
    assert parse_shard("2/5") == (2, 5)


@pytest.mark.parametrize("text", ["5/5", "2", "a/b", "-1/3", "1/0"])
def test_parse_shard_invalid(text: str) -> None:
    with pytest.raises(ValueError, match="i/n"):
        parse_shard(text)


def test_merge_equals_single(tmp_path: Path, reference_store: Path) -> None:
    shards = write_shards(tmp_path, 3)
    merged = merge_stores(list(reversed(shards)), tmp_path / "merged.clipnav")
    assert same_store(merged, reference_store)


def test_merge_drops_shard_field(tmp_path: Path) -> None:
    merged = merge_stores(write_shards(tmp_path, 2), tmp_path / "merged.clipnav")
    assert "shard" not in ClipnavFeatureStore(merged).metadata


def test_merge_keeps_metadata(tmp_path: Path) -> None:
    merged = merge_stores(write_shards(tmp_path, 2), tmp_path / "merged.clipnav")
    assert ClipnavFeatureStore(merged).metadata["encoder"] == "e"


def test_merge_unsharded_concatenates(tmp_path: Path) -> None:
    first = write_clipnav(tmp_path / "a.clipnav", ARRAY[:4], KEYS[:4])
    second = write_clipnav(tmp_path / "b.clipnav", ARRAY[4:], KEYS[4:])
    merged = ClipnavFeatureStore(merge_stores([second, first], tmp_path / "merged.clipnav"))
    assert list(merged.keys()) == KEYS[4:] + KEYS[:4]
    assert np.array_equal(read_all(merged), ARRAY)


def test_merge_duplicate_key(tmp_path: Path) -> None:
    first = write_clipnav(tmp_path / "a.clipnav", ARRAY[:4], KEYS[:4])
    second = write_clipnav(tmp_path / "b.clipnav", ARRAY[3:], KEYS[3:])
    with pytest.raises(FeatureFormatError, match="viewpoint 'vp3' is in both"):
        merge_stores([first, second], tmp_path / "merged.clipnav")


def test_merge_dim_differs(tmp_path: Path) -> None:
    first = write_clipnav(tmp_path / "a.clipnav", ARRAY[:4], KEYS[:4])
    second = write_clipnav(tmp_path / "b.clipnav", features(3, DIM + 1, 5), KEYS[4:])
    with pytest.raises(FeatureFormatError, match="dim 7 differs from 6"):
        merge_stores([first, second], tmp_path / "merged.clipnav")


def test_merge_dtype_differs(tmp_path: Path) -> None:
    first = write_clipnav(tmp_path / "a.clipnav", ARRAY[:4], KEYS[:4], "float32")
    second = write_clipnav(tmp_path / "b.clipnav", ARRAY[4:], KEYS[4:], "float16")
    with pytest.raises(FeatureFormatError, match="dtype 'float16' differs"):
        merge_stores([first, second], tmp_path / "merged.clipnav")


def test_merge_metadata_differs(tmp_path: Path) -> None:
    first = write_clipnav(tmp_path / "a.clipnav", ARRAY[:4], KEYS[:4], metadata={"encoder": "ViT-B/32"})
    second = write_clipnav(tmp_path / "b.clipnav", ARRAY[4:], KEYS[4:], metadata={"encoder": "RN50"})
    with pytest.raises(FeatureFormatError, match="encoder: 'ViT-B/32' vs 'RN50'"):
        merge_stores([first, second], tmp_path / "merged.clipnav")


def test_merge_failure_no_output(tmp_path: Path) -> None:
    first = write_clipnav(tmp_path / "a.clipnav", ARRAY[:4], KEYS[:4])
    second = write_clipnav(tmp_path / "b.clipnav", ARRAY[3:], KEYS[3:])
    with pytest.raises(FeatureFormatError):
        merge_stores([first, second], tmp_path / "merged.clipnav")
    assert sorted(os.listdir(tmp_path)) == ["a.clipnav", "b.clipnav"]


# --- format detection -----------------------------------------------------------------


def test_detect_tsv(tsv_path: Path) -> None:
    assert detect_format(tsv_path) == "tsv"


def test_detect_tsv_by_content(tsv_path: Path) -> None:
    renamed = tsv_path.rename(tsv_path.with_suffix(".txt"))
    assert detect_format(renamed) == "tsv"


def test_detect_hdf5_by_signature(hdf5_path: Path) -> None:
    renamed = hdf5_path.rename(hdf5_path.with_suffix(".bin"))
    assert detect_format(renamed) == "hdf5"


def test_detect_clipnav(clipnav_path: Path) -> None:
    assert detect_format(clipnav_path) == "clipnav"


def test_detect_clipnav_renamed(clipnav_path: Path) -> None:
    assert detect_format(clipnav_path.rename(clipnav_path.with_name("plain"))) == "clipnav"


def test_detect_none() -> None:
    assert detect_format("none") == "none"


def test_detect_unknown_file(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\x00\x01binary")
    with pytest.raises(FeatureFormatError, match="unknown feature format") as raised:
        detect_format(path)
    for name in ("TSV", "HDF5", "clipnav", "'none'"):
        assert name in str(raised.value), name


def test_detect_plain_folder(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(FeatureFormatError, match="not a clipnav store"):
        detect_format(tmp_path / "folder")


def test_detect_absent(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="absent.h5"):
        detect_format(tmp_path / "absent.h5")


@pytest.mark.parametrize(
    ("kind", "store_type"),
    [("tsv", TsvFeatureStore), ("hdf5", Hdf5FeatureStore), ("clipnav", ClipnavFeatureStore)],
)
def test_open_detects(kind: str, store_type: type, tsv_path, hdf5_path, clipnav_path) -> None:
    store = open_feature_store({"tsv": tsv_path, "hdf5": hdf5_path, "clipnav": clipnav_path}[kind])
    assert isinstance(store, store_type)


def test_open_none_dim_default() -> None:
    assert open_feature_store("none").dim == 512


def test_open_none_dim() -> None:
    store = open_feature_store("none", dim=16)
    assert isinstance(store, NoVisualFeatures)
    assert store.dim == 16


def test_open_file_keeps_own_dim(tsv_path: Path) -> None:
    assert open_feature_store(tsv_path).dim == DIM


def test_open_file_wrong_dim_rejected(tsv_path: Path) -> None:
    with pytest.raises(FeatureFormatError, match="expected 512"):
        open_feature_store(tsv_path, dim=512)


def test_open_invalid_missing(tsv_path: Path) -> None:
    with pytest.raises(ValueError, match="missing must be one of"):
        open_feature_store(tsv_path, missing="ignore")


# --- check_compatible -----------------------------------------------------------------

EXPECTED = {"dim": 512, "encoder": "ViT-B/32", "pretrained": "openai"}


def test_compatible_match() -> None:
    assert check_compatible(EXPECTED, EXPECTED | {"dtype": "float16"}) == []


def test_compatible_dim() -> None:
    with pytest.raises(FeatureMismatchError, match="dimension: expected 512, got 768"):
        check_compatible(EXPECTED, EXPECTED | {"dim": 768})


def test_compatible_encoder() -> None:
    with pytest.raises(FeatureMismatchError, match="encoder: expected 'ViT-B/32', got 'RN50x4'"):
        check_compatible(EXPECTED, EXPECTED | {"encoder": "RN50x4"})


def test_compatible_pretrained() -> None:
    with pytest.raises(FeatureMismatchError, match="pretrained tag: expected 'openai', got 'laion2b'"):
        check_compatible(EXPECTED, EXPECTED | {"pretrained": "laion2b"})


def test_compatible_lists_all() -> None:
    with pytest.raises(FeatureMismatchError) as raised:
        check_compatible(EXPECTED, {"dim": 640, "encoder": "RN50x4", "pretrained": "openai"})
    assert "dimension" in str(raised.value)
    assert "encoder" in str(raised.value)
    assert "pretrained" not in str(raised.value)


def test_compatible_is_clipnav_error() -> None:
    with pytest.raises(ClipnavError):
        check_compatible(EXPECTED, EXPECTED | {"dim": 768})


def test_compatible_force(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        differences = check_compatible(EXPECTED, EXPECTED | {"dim": 768}, force=True)
    assert differences == ["dimension: expected 512, got 768"]
    assert "768" in warnings_in(caplog)[0].getMessage()


def test_compatible_unknown_encoder(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        differences = check_compatible(EXPECTED, {"dim": 512})
    assert differences == []
    assert "encoder or pretrained" in warnings_in(caplog)[0].getMessage()


def test_compatible_store_metadata(clipnav_path: Path) -> None:
    store = ClipnavFeatureStore(clipnav_path)
    assert check_compatible({"dim": DIM, "encoder": "ViT-B/32"}, store.metadata) == []


# --- command-line programs ------------------------------------------------------------


def write_connectivity(data_dir: Path, scans: dict[str, list[tuple[str, bool]]]) -> Path:
    """Write a connectivity folder whose scans hold the given (viewpoint, included) lists."""
    folder = data_dir / "connectivity"
    folder.mkdir(parents=True)
    (folder / "scans.txt").write_text("".join(f"{scan}\n" for scan in scans))
    for scan, viewpoints in scans.items():
        entries = [
            {
                "image_id": viewpoint,
                "pose": [1, 0, 0, float(i), 0, 1, 0, 0, 0, 0, 1, 1.5, 0, 0, 0, 1],
                "included": included,
                "unobstructed": [j != i for j in range(len(viewpoints))],
                "height": 1.5,
            }
            for i, (viewpoint, included) in enumerate(viewpoints)
        ]
        (folder / f"{scan}_connectivity.json").write_text(json.dumps(entries))
    return data_dir


@pytest.fixture
def small_data_dir(tmp_path: Path) -> Path:
    # scanA: vp0..vp4 stored, vp5 and vp6 missing, vp7 excluded; scanB: vp0..vp3 stored;
    # scanC: nothing stored.
    scan_a = [(f"vp{i}", i != 7) for i in range(8)]
    scan_b = [(f"vp{i}", True) for i in range(4)]
    return write_connectivity(tmp_path / "data", {"scanA": scan_a, "scanB": scan_b, "scanC": [("c0", True)]})


def test_inspect_summary(clipnav_path: Path, small_data_dir: Path, capsys) -> None:
    assert inspect_features.main([str(clipnav_path), "--data-dir", str(small_data_dir)]) == 0
    printed = capsys.readouterr().out
    for line in ("format: clipnav", "viewpoints: 9", "dimension: 6", "dtype: float32", "  encoder: ViT-B/32"):
        assert line in printed.splitlines(), line


def test_inspect_missing(clipnav_path: Path, small_data_dir: Path, capsys) -> None:
    inspect_features.main([str(clipnav_path), "--data-dir", str(small_data_dir)])
    lines = capsys.readouterr().out.splitlines()
    assert "missing: 3 of 12 included viewpoints" in lines
    assert "  scanA: 2 of 7" in lines
    assert "  scanC: 1 of 1" in lines
    assert "  scanA vp5" in lines
    assert "  scanA vp7" not in lines


def test_inspect_limits_list(clipnav_path: Path, small_data_dir: Path, capsys) -> None:
    inspect_features.main([str(clipnav_path), "--data-dir", str(small_data_dir), "--show", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert "  scanA vp5" in lines
    assert "  scanA vp6" not in lines


def test_inspect_tsv(tsv_path: Path, small_data_dir: Path, capsys) -> None:
    assert inspect_features.main([str(tsv_path), "--data-dir", str(small_data_dir)]) == 0
    assert "format: tsv" in capsys.readouterr().out.splitlines()


def test_inspect_bad_data_dir(clipnav_path: Path, tmp_path: Path, capsys) -> None:
    assert inspect_features.main([str(clipnav_path), "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_inspect_corrupt_store(clipnav_path: Path, small_data_dir: Path, capsys) -> None:
    (clipnav_path / "metadata.json").unlink()
    assert inspect_features.main([str(clipnav_path), "--data-dir", str(small_data_dir)]) == 2
    assert "metadata.json is missing" in capsys.readouterr().err


def test_convert_cli(tsv_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.clipnav"
    assert convert_cli.main([str(tsv_path), str(out), "--dtype", "float32"]) == 0
    assert np.array_equal(read_all(ClipnavFeatureStore(out)), ARRAY)


def test_convert_cli_format_flag(tsv_path: Path, tmp_path: Path) -> None:
    assert convert_cli.main([str(tsv_path), str(tmp_path / "out.dat"), "--format", "hdf5"]) == 0
    assert detect_format(tmp_path / "out.dat") == "hdf5"


def test_convert_cli_dim(tmp_path: Path) -> None:
    wide = np.concatenate([ARRAY, np.ones((len(KEYS), 36, 1000), np.float32)], axis=2)
    source = write_raw_hdf5(tmp_path / "wide.h5", {f"{s}_{v}": wide[i] for i, (s, v) in enumerate(KEYS)})
    assert convert_cli.main([str(source), str(tmp_path / "out.clipnav"), "--dim", str(DIM)]) == 0
    assert ClipnavFeatureStore(tmp_path / "out.clipnav").dim == DIM


def test_convert_cli_existing(tsv_path: Path, hdf5_path: Path, capsys) -> None:
    assert convert_cli.main([str(tsv_path), str(hdf5_path)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_convert_cli_overwrite(tsv_path: Path, hdf5_path: Path) -> None:
    assert convert_cli.main([str(tsv_path), str(hdf5_path), "--overwrite", "--dtype", "float16"]) == 0


def test_convert_cli_bad_source(tmp_path: Path, capsys) -> None:
    source = tmp_path / "bad.tsv"
    source.write_text("scanA\tvp0\t640\t480\n")
    assert convert_cli.main([str(source), str(tmp_path / "out.h5")]) == 2
    assert "line 1" in capsys.readouterr().err


def test_bench_cli(capsys) -> None:
    argv = [
        "--data-dir",
        "/nonexistent",
        "--count",
        "40",
        "--dim",
        "8",
        "--reads",
        "50",
        "--dtypes",
        "float16",
    ]
    assert bench_features.main(argv) == 0
    printed = capsys.readouterr().out
    assert "40 viewpoints (synthetic ids)" in printed
    assert "clipnav float16: opens" in printed


def test_conversion_resume_from_other_source_rejected(tmp_path: Path) -> None:
    from envs.features import ClipnavStoreWriter

    keys = [("scan", f"vp{i}") for i in range(3)]
    first, second = tmp_path / "first.tsv", tmp_path / "second.tsv"
    write_tsv_features(first, [(s, v, np.zeros((36, 4), dtype=np.float32)) for s, v in keys])
    write_tsv_features(second, [(s, v, np.ones((36, 4), dtype=np.float32)) for s, v in keys])
    dst = tmp_path / "out.clipnav"
    metadata = {"converted_from": {"format": "tsv", "path": str(first), "dtype": "float32"}}
    ClipnavStoreWriter.create(dst, keys, 4, "float32", metadata).close()  # an interrupted conversion
    with pytest.raises(FeatureFormatError, match="unfinished conversion"):
        convert_features(second, dst)
