"""CLIP feature extraction: encoders, preprocessing, view sources, resumable and sharded runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from envs.clip_encoder import ClipViewEncoder, EncoderError, EncoderSpec
from envs.extraction import ExtractionMismatchError, ExtractionStats, extract_features
from envs.features import ClipnavFeatureStore, convert_features, merge_stores, open_feature_store
from envs.view_sources import ViewFolderSource, ViewImageError
from scripts import extract_features as extract_script

REAL_SCAN, REAL_VIEWPOINT = "17DRP5sb8fy", "10c252c90fa24ef3b698c6f54d984c5c"


class MeanColourEncoder:
    """A stand-in encoder: each view's feature is its mean colour and a constant, dim 4."""

    dim = 4

    def __init__(self, normalize: bool = False):
        self.spec = EncoderSpec(model="mean-colour", pretrained=None, normalize=normalize)

    def metadata(self) -> dict:
        return {
            "encoder": "mean-colour",
            "pretrained": "none",
            "random_weights": False,
            "normalization": "l2" if self.spec.normalize else "none",
            "preprocess": {},
            "library": "test",
        }

    def preprocess_batch(self, images: torch.Tensor) -> torch.Tensor:
        return images.float() / 255.0

    def forward(self, pixels: torch.Tensor) -> np.ndarray:
        means = pixels.mean(dim=(2, 3))  # [N, 3]
        features = torch.cat([means, torch.ones(len(pixels), 1)], dim=1)
        if self.spec.normalize:
            features = torch.nn.functional.normalize(features, dim=1)
        return features.numpy()


def write_view_folder(root: Path, viewpoints: int, size: tuple[int, int] = (32, 24)) -> list[tuple[str, str]]:
    keys = []
    rng = np.random.default_rng(0)
    for index in range(viewpoints):
        scan, viewpoint = f"scan{index % 2}", f"vp{index:03d}"
        folder = root / scan / viewpoint
        folder.mkdir(parents=True)
        for view in range(36):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{view}.png")
        keys.append((scan, viewpoint))
    return sorted(keys)


@pytest.fixture(scope="module")
def vit_b32() -> ClipViewEncoder:
    return ClipViewEncoder(EncoderSpec("ViT-B-32", pretrained=None))


@pytest.fixture(scope="module")
def real_views(data_dir: Path) -> ViewFolderSource:
    return ViewFolderSource(data_dir / "views")


# --- encoders -------------------------------------------------------------------------


def test_unknown_model_suggests_names() -> None:
    with pytest.raises(EncoderError, match="Did you mean 'ViT-B-32'"):
        ClipViewEncoder(EncoderSpec("ViT-B-33", pretrained=None))


def test_unknown_pretrained_tag_lists_tags() -> None:
    with pytest.raises(EncoderError, match="openai"):
        ClipViewEncoder(EncoderSpec("ViT-B-32", pretrained="nonexistent_tag"))


def test_missing_checkpoint_rejected(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        ClipViewEncoder(EncoderSpec("ViT-B-32", pretrained=None, checkpoint=str(tmp_path / "absent.pt")))


def test_local_checkpoint_loads_its_weights(vit_b32: ClipViewEncoder, tmp_path: Path) -> None:
    path = tmp_path / "vit_b32.pt"
    torch.save(vit_b32.model.state_dict(), path)
    reloaded = ClipViewEncoder(EncoderSpec("ViT-B-32", pretrained=None, checkpoint=str(path)))
    images = torch.randint(0, 256, (2, 3, 48, 64), dtype=torch.uint8)
    np.testing.assert_allclose(reloaded.encode(images), vit_b32.encode(images), rtol=1e-5, atol=1e-5)
    assert len(reloaded.metadata()["checkpoint_sha256"]) == 64


def test_random_weights_recorded(vit_b32: ClipViewEncoder) -> None:
    assert vit_b32.metadata()["random_weights"] is True


def test_tensor_preprocessing_matches_pil(vit_b32: ClipViewEncoder, data_dir: Path) -> None:
    # The batched uint8 path must give the model's own PIL preprocessing, up to rounding.
    folder = data_dir / "views" / REAL_SCAN / REAL_VIEWPOINT
    images = [Image.open(folder / f"{view}.jpg").convert("RGB") for view in (0, 13, 30)]
    reference = torch.stack([vit_b32.preprocess(image) for image in images])
    batch = torch.stack([torch.from_numpy(np.array(image)).permute(2, 0, 1) for image in images])
    ours = vit_b32.preprocess_batch(batch)
    assert ours.shape == reference.shape
    assert float((ours - reference).abs().mean()) < 0.01


def test_normalized_features_have_unit_norm() -> None:
    encoder = ClipViewEncoder(EncoderSpec("ViT-B-32", pretrained=None, normalize=True))
    features = encoder.encode(torch.randint(0, 256, (2, 3, 48, 64), dtype=torch.uint8))
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, rtol=1e-5)


def test_other_architecture_runs() -> None:
    encoder = ClipViewEncoder(EncoderSpec("RN50", pretrained=None))
    features = encoder.encode(torch.randint(0, 256, (1, 3, 48, 64), dtype=torch.uint8))
    assert features.shape == (1, 1024)


# --- the real views, end to end -----------------------------------------------------------


def test_real_views_through_every_format(vit_b32: ClipViewEncoder, real_views, tmp_path: Path) -> None:
    store, stats = extract_features(
        real_views, vit_b32, tmp_path / "views.clipnav", dtype="float32", progress=False
    )
    expected = vit_b32.encode(real_views.load(REAL_SCAN, REAL_VIEWPOINT))  # [36, 512]
    assert stats.viewpoints == 1
    for name in ("views.tsv", "views.h5", "copy.clipnav"):
        converted = convert_features(store, tmp_path / name)
        features = open_feature_store(converted).get(REAL_SCAN, REAL_VIEWPOINT)
        np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5, err_msg=name)


def test_real_store_metadata(vit_b32: ClipViewEncoder, real_views, tmp_path: Path) -> None:
    store, _ = extract_features(real_views, vit_b32, tmp_path / "views.clipnav", progress=False)
    metadata = ClipnavFeatureStore(store).metadata
    assert metadata["encoder"] == "ViT-B-32"
    assert metadata["pretrained"] == "random-seed0"
    assert (metadata["image_w"], metadata["image_h"], metadata["vfov"]) == (640, 480, 60.0)
    assert metadata["preprocess"]["size"] == [224, 224]


# --- resumable and sharded runs -------------------------------------------------------------


def test_killed_run_resumes(tmp_path: Path) -> None:
    write_view_folder(tmp_path / "views", 5)
    source = ViewFolderSource(tmp_path / "views", 32, 24)
    encoder = MeanColourEncoder()
    output = tmp_path / "out.clipnav"

    finished, _ = extract_features(source, encoder, output, batch_viewpoints=1, limit=2, progress=False)
    assert finished is None
    assert not output.exists()

    finished, stats = extract_features(source, encoder, output, batch_viewpoints=1, progress=False)
    assert stats.viewpoints == 3
    straight, _ = extract_features(source, encoder, tmp_path / "straight.clipnav", progress=False)
    resumed_store, straight_store = ClipnavFeatureStore(finished), ClipnavFeatureStore(straight)
    keys = source.keys()  # a ViewSource method, not a dict
    for key in keys:
        np.testing.assert_array_equal(resumed_store.get(*key), straight_store.get(*key))


def test_first_batch_holds_one_viewpoint(tmp_path: Path) -> None:
    # The forward pass starts after one viewpoint's views, then takes full batches.
    write_view_folder(tmp_path / "views", 6)

    class CountingEncoder(MeanColourEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.batch_sizes: list[int] = []

        def forward(self, pixels: torch.Tensor) -> np.ndarray:
            self.batch_sizes.append(len(pixels))
            return super().forward(pixels)

    encoder = CountingEncoder()
    source = ViewFolderSource(tmp_path / "views", 32, 24)
    _, stats = extract_features(source, encoder, tmp_path / "out.clipnav", batch_viewpoints=4, progress=False)
    assert encoder.batch_sizes == [36, 4 * 36, 36]
    assert stats.viewpoints == 6
    assert 0.0 <= stats.first_batch_seconds <= stats.waiting_seconds <= stats.seconds


def test_share_outside_forward_after_first_batch() -> None:
    stats = ExtractionStats(viewpoints=10, seconds=10.0, forward_seconds=7.2, first_batch_seconds=2.0)
    assert stats.share_outside_forward == pytest.approx(0.28)  # 1 - 7.2 / 10
    assert stats.share_outside_forward_after_first_batch == pytest.approx(0.1)  # 1 - 7.2 / 8
    assert math.isnan(ExtractionStats().share_outside_forward_after_first_batch)


def test_resume_with_other_encoder_rejected(tmp_path: Path) -> None:
    write_view_folder(tmp_path / "views", 3)
    source = ViewFolderSource(tmp_path / "views", 32, 24)
    extract_features(source, MeanColourEncoder(), tmp_path / "out.clipnav", limit=1, progress=False)
    with pytest.raises(ExtractionMismatchError, match="normalization"):
        extract_features(source, MeanColourEncoder(normalize=True), tmp_path / "out.clipnav", progress=False)


def test_shards_merge_to_whole(tmp_path: Path) -> None:
    keys = write_view_folder(tmp_path / "views", 5)
    source = ViewFolderSource(tmp_path / "views", 32, 24)
    encoder = MeanColourEncoder()
    shards = [
        extract_features(source, encoder, tmp_path / f"s{i}.clipnav", shard=(i, 2), progress=False)[0]
        for i in range(2)
    ]
    merged = ClipnavFeatureStore(merge_stores(shards, tmp_path / "merged.clipnav"))
    whole = ClipnavFeatureStore(
        extract_features(source, encoder, tmp_path / "whole.clipnav", progress=False)[0]
    )
    assert list(merged.keys()) == keys
    for key in keys:
        np.testing.assert_array_equal(merged.get(*key), whole.get(*key))


def test_features_follow_view_order(tmp_path: Path) -> None:
    # View k of the folder must land in row k of the store.
    write_view_folder(tmp_path / "views", 1)
    source = ViewFolderSource(tmp_path / "views", 32, 24)
    store, _ = extract_features(
        source, MeanColourEncoder(), tmp_path / "out.clipnav", dtype="float32", progress=False
    )
    features = ClipnavFeatureStore(store).get("scan0", "vp000")
    for view in (0, 17, 35):
        pixels = np.array(Image.open(tmp_path / "views" / "scan0" / "vp000" / f"{view}.png"))
        np.testing.assert_allclose(features[view, :3], pixels.reshape(-1, 3).mean(axis=0) / 255.0, rtol=1e-5)


def test_missing_view_named(tmp_path: Path) -> None:
    write_view_folder(tmp_path / "views", 1)
    (tmp_path / "views" / "scan0" / "vp000" / "7.png").unlink()
    with pytest.raises(FileNotFoundError, match="view 7"):
        ViewFolderSource(tmp_path / "views", 32, 24).load("scan0", "vp000")


def test_wrong_view_size_named(tmp_path: Path) -> None:
    write_view_folder(tmp_path / "views", 1, size=(30, 20))
    with pytest.raises(ViewImageError, match="30x20, expected 32x24"):
        ViewFolderSource(tmp_path / "views", 32, 24).load("scan0", "vp000")


# --- skyboxes and the command line -----------------------------------------------------------


def test_skybox_source_renders_36_views(data_dir: Path, tmp_path: Path) -> None:
    from envs.view_sources import SkyboxSource

    renders = data_dir / "mattersim_reference" / "renders"
    graphs = tmp_path / "connectivity"
    graphs.mkdir()
    (graphs / "scans.txt").write_text("synthIdentity\n")
    (graphs / "synthIdentity_connectivity.json").write_text(
        (renders / "synthIdentity_connectivity.json").read_text()
    )
    source = SkyboxSource(renders / "skyboxes", graphs, width=64, height=48)
    assert source.keys() == [("synthIdentity", "0" * 32)]
    assert tuple(source.load("synthIdentity", "0" * 32).shape) == (36, 3, 48, 64)


def test_skybox_source_warns_of_missing_skyboxes(data_dir: Path, tmp_path: Path, caplog) -> None:
    from connectivity import Connectivity
    from envs.view_sources import SkyboxSource

    # The reference skyboxes hold one viewpoint of 17DRP5sb8fy; its other included
    # viewpoints have none.
    graphs = tmp_path / "connectivity"
    graphs.mkdir()
    (graphs / "scans.txt").write_text("17DRP5sb8fy\n")
    real = data_dir / "connectivity" / "17DRP5sb8fy_connectivity.json"
    (graphs / real.name).write_text(real.read_text())
    included = int(Connectivity(graphs)["17DRP5sb8fy"].included.sum())
    source = SkyboxSource(
        data_dir / "mattersim_reference" / "renders" / "skyboxes", graphs, scans=["17DRP5sb8fy"]
    )
    with caplog.at_level("WARNING"):
        assert source.keys() == [("17DRP5sb8fy", "10c252c90fa24ef3b698c6f54d984c5c")]
    assert f"{included - 1} of the {included} included viewpoints" in caplog.text


def test_cli_extracts_tsv(data_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "views.tsv"
    argv = ["--views", str(data_dir / "views"), "--random-weights", "--out", str(out), "--device", "cpu"]
    assert extract_script.main(argv) == 0
    assert "viewpoints/s" in capsys.readouterr().out
    assert open_feature_store(out).dim == 512


def test_cli_rejects_sharded_tsv(data_dir: Path, tmp_path: Path) -> None:
    argv = [
        "--views",
        str(data_dir / "views"),
        "--random-weights",
        "--shard",
        "0/2",
        "--out",
        str(tmp_path / "x.tsv"),
    ]
    with pytest.raises(SystemExit):
        extract_script.main(argv)


def test_metadata_file_is_json(tmp_path: Path) -> None:
    write_view_folder(tmp_path / "views", 1)
    source = ViewFolderSource(tmp_path / "views", 32, 24)
    store, _ = extract_features(source, MeanColourEncoder(), tmp_path / "out.clipnav", progress=False)
    assert json.loads((store / "metadata.json").read_text())["encoder"] == "mean-colour"


def test_random_weights_reproducible() -> None:
    images = torch.randint(0, 256, (1, 3, 48, 64), dtype=torch.uint8)
    first = ClipViewEncoder(EncoderSpec("ViT-B-32", pretrained=None)).encode(images)
    second = ClipViewEncoder(EncoderSpec("ViT-B-32", pretrained=None)).encode(images)
    np.testing.assert_array_equal(first, second)


def test_resume_from_other_views_rejected(tmp_path: Path) -> None:
    write_view_folder(tmp_path / "a", 3)
    write_view_folder(tmp_path / "b", 3)
    encoder = MeanColourEncoder()
    extract_features(
        ViewFolderSource(tmp_path / "a", 32, 24), encoder, tmp_path / "out.clipnav", limit=1, progress=False
    )
    with pytest.raises(ExtractionMismatchError, match="source"):
        extract_features(
            ViewFolderSource(tmp_path / "b", 32, 24), encoder, tmp_path / "out.clipnav", progress=False
        )


def test_resume_with_relative_source_path(tmp_path: Path, monkeypatch) -> None:
    # The same folder named by an absolute or a relative path is the same source.
    write_view_folder(tmp_path / "views", 3)
    encoder = MeanColourEncoder()
    output = tmp_path / "out.clipnav"
    extract_features(ViewFolderSource(tmp_path / "views", 32, 24), encoder, output, limit=1, progress=False)
    monkeypatch.chdir(tmp_path)
    finished, stats = extract_features(ViewFolderSource("views", 32, 24), encoder, output, progress=False)
    assert finished == output
    assert stats.viewpoints == 2
    assert ClipnavFeatureStore(output).metadata["source"] == str((tmp_path / "views").resolve())


def test_cli_converts_finished_store_again(tmp_path: Path) -> None:
    write_view_folder(tmp_path / "views", 1)
    out = tmp_path / "views.tsv"
    argv = ["--views", str(tmp_path / "views"), "--width", "32", "--height", "24", "--random-weights"]
    argv += ["--model", "RN50", "--out", str(out), "--device", "cpu"]
    assert extract_script.main(argv) == 0
    out.unlink()  # as if the run stopped while converting
    assert extract_script.main(argv) == 0
    assert open_feature_store(out).dim == 1024


def test_cli_rejects_finished_store_of_other_run(tmp_path: Path, capsys) -> None:
    # The finished store beside a TSV output is converted again only if this run would
    # have made it: another model, normalisation or set of viewpoints is an error.
    write_view_folder(tmp_path / "views", 1)
    out = tmp_path / "views.tsv"
    argv = ["--views", str(tmp_path / "views"), "--width", "32", "--height", "24", "--random-weights"]
    argv += ["--model", "RN50", "--out", str(out), "--device", "cpu"]
    assert extract_script.main(argv) == 0
    out.unlink()
    assert extract_script.main([*argv, "--normalize"]) == 2
    assert "made with other settings" in capsys.readouterr().err
    assert not out.exists()
    write_view_folder(tmp_path / "more_views", 2)
    other_views = ["--views", str(tmp_path / "more_views"), *argv[2:]]
    assert extract_script.main(other_views) == 2
    assert "viewpoints differ" in capsys.readouterr().err


def test_cli_rejects_unknown_output_suffix(tmp_path: Path, capsys) -> None:
    write_view_folder(tmp_path / "views", 1)
    argv = ["--views", str(tmp_path / "views"), "--random-weights", "--out", str(tmp_path / "x.npy")]
    with pytest.raises(SystemExit):
        extract_script.main(argv)
    assert "unknown suffix '.npy'" in capsys.readouterr().err
    assert not (tmp_path / "x.npy").exists()


def test_cli_rejects_negative_skybox_size(tmp_path: Path, capsys) -> None:
    argv = [
        "--skyboxes",
        str(tmp_path),
        "--random-weights",
        "--skybox-size",
        "-1",
        "--out",
        str(tmp_path / "x"),
    ]
    with pytest.raises(SystemExit):
        extract_script.main(argv)
    assert "expected an integer of at least 0" in capsys.readouterr().err


def test_merge_rejects_non_clipnav_output(tmp_path: Path, capsys) -> None:
    from scripts import merge_features

    with pytest.raises(SystemExit):
        merge_features.main([str(tmp_path / "a.clipnav"), "--out", str(tmp_path / "m.npy")])
    assert "clipnav folder" in capsys.readouterr().err
    assert not (tmp_path / "m.npy").exists()


def test_unknown_tag_names_other_options() -> None:
    with pytest.raises(EncoderError, match="--random-weights"):
        ClipViewEncoder(EncoderSpec("ViT-B-32", pretrained="none"))


def test_cli_bad_device_exits_2(tmp_path: Path, capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    write_view_folder(tmp_path / "views", 1)
    argv = ["--views", str(tmp_path / "views"), "--random-weights", "--out", str(tmp_path / "x.clipnav")]
    assert extract_script.main([*argv, "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
