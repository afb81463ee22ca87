"""Room-across-Room (RxR): guide files, languages, tokens, vocabularies, the reference-path teacher,
metrics per language, SPL forms, submissions, training and statistics.

The tests write small guide files in the official schema (gzipped JSON lines) over the
demo world and, when present, the real Matterport3D graphs. Their paths are random walks
that are not shortest paths, and one path passes a viewpoint twice.
"""

from __future__ import annotations

import gzip
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import envs
from agent.follower import FollowerModelSettings
from agent.seq2seq import Seq2SeqModelSettings
from agent.seq2seq_training import Seq2SeqTrainer, Seq2SeqTrainingSettings
from agent.speaker import Speaker, SpeakerModelSettings, collect_paths
from agent.training import FollowerTrainer, FollowerTrainingSettings
from connectivity import Connectivity, DataNotFoundError, ScanGraph
from envs import egocentric
from envs.evaluation import evaluate_trajectories
from envs.metrics import collapse_repeats, episode_metrics
from envs.r2r_env import R2REnv, R2RVectorEnv
from envs.rxr import (
    RxrFormatError,
    UnknownLanguageError,
    VocabularyFileError,
    build_rxr_vocabularies,
    load_rxr_split,
    load_rxr_vocabularies,
    parse_languages,
    read_rxr_guide_file,
    save_rxr_vocabularies,
)
from envs.rxr_submission import (
    RxrSubmissionError,
    RxrSubmissionFileError,
    evaluate_rxr_submission,
    predictions_from_trajectories,
    read_rxr_submission,
    validate_rxr_submission,
    write_rxr_submission,
)
from envs.tokenizer import Vocabulary, tokenize
from envs.trajectories import ProblemKind, write_trajectories
from envs.world import EnvSettings, NavigationWorld
from scripts import evaluate, rxr_stats, rxr_vocab, submit_rxr

# Instructions in the three scripts, with the tokens expected of each, written out by hand.
ENGLISH = "Walk past the sofa, then turn LEFT at the kitchen. Stop by the fridge."
ENGLISH_TOKENS = ["walk", "past", "the", "sofa", ",", "then", "turn", "left", "at", "the", "kitchen", "."]
ENGLISH_TOKENS += ["stop", "by", "the", "fridge", "."]
# "Go up the stairs and turn left. Stop near the bed." Vowel signs (ी, ि, ा, े, ें), the
# nukta (ढ़) and the virama of "बिस्तर" stay inside their words; the danda is a token.
HINDI = "सीढ़ियों से ऊपर जाएँ और बाएँ मुड़ें। बिस्तर के पास रुकें।"
HINDI_TOKENS = ["सीढ़ियों", "से", "ऊपर", "जाएँ", "और", "बाएँ", "मुड़ें", "।", "बिस्तर", "के", "पास", "रुकें", "।"]
# "Climb the stairs and turn left. Stop near the door." The viramas of "మెట్లు" and
# "ఎక్కి" and the vowel signs stay inside their words.
TELUGU = "మెట్లు ఎక్కి ఎడమవైపు తిరగండి. తలుపు దగ్గర ఆగండి."
TELUGU_TOKENS = ["మెట్లు", "ఎక్కి", "ఎడమవైపు", "తిరగండి", ".", "తలుపు", "దగ్గర", "ఆగండి", "."]
TEXTS = {"en-IN": ENGLISH, "en-US": ENGLISH.replace("sofa", "couch"), "hi-IN": HINDI, "te-IN": TELUGU}
LANGUAGES = tuple(TEXTS)

ANGLE_SIZE = 16


# --- guide files ----------------------------------------------------------------------


def guide_record(
    instruction_id: int, path_id: int, scan: str, path: Sequence[str], language: str, test: bool = False
) -> dict:
    """Return one line of an RxR guide file in the official schema."""
    instruction = TEXTS[language]
    record = {
        "instruction_id": instruction_id,
        "path_id": path_id,
        "scan": scan,
        "path": list(path[:1]) if test else list(path),
        "heading": round(0.37 * (instruction_id % 17), 3),
        "instruction": instruction,
        "language": language,
        "annotator_id": instruction_id % 5,
    }
    if not test:
        words = instruction.split()
        record["edit_distance"] = 0.05
        record["timed_instruction"] = [
            {"word": word, "start_time": float(k), "end_time": k + 0.5} for k, word in enumerate(words)
        ]
    return record


def write_guide(path: Path, records: Sequence[object], compress: bool = True) -> Path:
    text = "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records)
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as out:
            out.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def walkable(graph: ScanGraph) -> list[int]:
    return [i for i in range(len(graph)) if graph.included[i] and graph.adjacency[i].any()]


def wandering_path(graph: ScanGraph, rng: np.random.Generator, hops: int) -> list[str]:
    """Return a random walk without immediate turn-backs that is at least 0.5 m longer than the shortest path."""
    starts = walkable(graph)
    for _ in range(1000):
        path = [int(starts[rng.integers(len(starts))])]
        for _ in range(hops):
            neighbours = [int(n) for n in np.flatnonzero(graph.adjacency[path[-1]])]
            onward = [n for n in neighbours if len(path) < 2 or n != path[-2]] or neighbours
            path.append(onward[rng.integers(len(onward))])
        ids = [graph.viewpoint_ids[i] for i in path]
        if graph.path_length(ids) > graph.distance(ids[0], ids[-1]) + 0.5:
            return ids
    raise AssertionError(f"no wandering path found in scan {graph.scan}")


def revisiting_path(graph: ScanGraph) -> list[str]:
    """Return a path a, b, c, b, d, which steps from b to c and back, then on to d."""
    for b in walkable(graph):
        neighbours = [int(n) for n in np.flatnonzero(graph.adjacency[b])]
        if len(neighbours) >= 3:
            a, c, d = neighbours[:3]
            return [graph.viewpoint_ids[i] for i in (a, b, c, b, d)]
    raise AssertionError(f"scan {graph.scan} has no viewpoint with three neighbours")


@dataclass
class GuideSet:
    """Guide files of all four splits in one folder, with the records written."""

    folder: Path
    records: dict[str, list[dict]]

    def ids(self, split: str) -> list[str]:
        return [str(r["instruction_id"]) for r in self.records[split]]


def build_guides(folder: Path, graphs: dict[str, ScanGraph], seen: list[str], unseen: list[str]) -> GuideSet:
    """Write train and val_seen over the `seen` scans, val_unseen and test_standard over `unseen`.

    Every path gets instructions in two languages (en-IN and hi-IN, or en-US and te-IN),
    with instruction_ids that do not follow the line order, as in RxR.
    """
    rng = np.random.default_rng(7)
    records: dict[str, list[dict]] = {}
    next_id, next_path = 9000, 300
    plan = {
        "train": (seen, 4),
        "val_seen": (seen, 2),
        "val_unseen": (unseen, 3),
        "test_standard": (unseen, 2),
    }
    for split, (scans, paths_per_scan) in plan.items():
        records[split] = []
        for scan in scans:
            paths = [wandering_path(graphs[scan], rng, 4 + k % 3) for k in range(paths_per_scan)]
            if split in ("train", "val_unseen") and scan == scans[0]:
                paths.append(revisiting_path(graphs[scan]))
            for path in paths:
                for language in LANGUAGES[next_path % 2 :: 2]:
                    test = split == "test_standard"
                    records[split].append(guide_record(next_id, next_path, scan, path, language, test))
                    next_id -= 7
                next_path += 1
        write_guide(folder / f"rxr_{split}_guide.jsonl.gz", records[split])
    return GuideSet(folder, records)


@pytest.fixture(scope="module")
def demo_guides(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> GuideSet:
    connectivity = Connectivity(demo_dir / "connectivity")
    scans = sorted(connectivity)
    graphs = {scan: connectivity[scan] for scan in scans}
    return build_guides(tmp_path_factory.mktemp("rxr") / "RxR", graphs, scans[:2], scans[2:])


def demo_features(demo_dir: Path) -> str:
    return str(next((demo_dir / "features").glob("*.tsv")))


def rxr_settings(demo_dir: Path, guides: GuideSet, **overrides) -> EnvSettings:
    values = {
        "data_dir": str(demo_dir),
        "features": demo_features(demo_dir),
        "dataset": "rxr",
        "rxr_dir": str(guides.folder),
        "min_word_count": 1,
        "angle_feature_size": ANGLE_SIZE,
    }
    return EnvSettings(**(values | overrides))


@pytest.fixture(scope="module")
def rxr_world(demo_dir: Path, demo_guides: GuideSet) -> NavigationWorld:
    return NavigationWorld.from_settings(rxr_settings(demo_dir, demo_guides))


def run_teacher(
    world: NavigationWorld,
    split: str,
    instr_ids: list[str],
    action_space: str = "panoramic",
    limit: int = 150,
) -> tuple[dict[str, list[str]], dict[str, dict]]:
    """Follow the teacher until every episode stops; return viewpoints and metrics by instr_id."""
    env = R2RVectorEnv(
        num_envs=len(instr_ids), world=world, autoreset_mode=AutoresetMode.DISABLED, action_space=action_space
    )
    env.reset(options={"split": split, "instr_ids": instr_ids})
    viewpoints, metrics = {}, {}
    for _ in range(limit):
        _, _, terminated, _, infos = env.step(env.teacher_actions())
        for slot in np.flatnonzero(terminated):
            instr_id = env.episodes[slot].instr_id
            viewpoints[instr_id] = [pose[0] for pose in infos["trajectory"][slot]]
            metrics[instr_id] = infos["metrics"][slot]
        if env.batch.ended.all():
            break
    assert env.batch.ended.all(), f"the teacher did not stop within {limit} actions"
    return viewpoints, metrics


def is_subsequence(items: Sequence[str], sequence: Sequence[str]) -> bool:
    remaining = iter(sequence)
    return all(item in remaining for item in items)


# --- loading --------------------------------------------------------------------------


def test_load_every_line(demo_guides: GuideSet) -> None:
    split = load_rxr_split("train", rxr_dir=demo_guides.folder)
    assert [e.instr_id for e in split] == demo_guides.ids("train")


def test_load_episode_fields(demo_guides: GuideSet) -> None:
    split = load_rxr_split("val_unseen", rxr_dir=demo_guides.folder)
    record = demo_guides.records["val_unseen"][3]
    episode = split[str(record["instruction_id"])]
    assert episode.scan == record["scan"]
    assert episode.path_id == record["path_id"]
    assert episode.path == tuple(record["path"])
    assert episode.heading == record["heading"]
    assert episode.instruction == record["instruction"]
    assert episode.language == record["language"]
    assert episode.has_reference


def test_instr_id_is_decimal_instruction_id(demo_guides: GuideSet) -> None:
    split = load_rxr_split("train", rxr_dir=demo_guides.folder)
    ids = [r["instruction_id"] for r in demo_guides.records["train"]]
    assert all(split[str(i)].instr_id == str(i) for i in ids)
    assert 9000 in ids


def test_paths_are_not_shortest(demo_dir: Path, demo_guides: GuideSet) -> None:
    connectivity = Connectivity(demo_dir / "connectivity")
    for episode in load_rxr_split("train", rxr_dir=demo_guides.folder):
        graph = connectivity[episode.scan]
        assert graph.path_length(episode.path) > graph.distance(episode.start, episode.goal), episode.instr_id


def test_test_split_has_no_reference(demo_guides: GuideSet) -> None:
    split = load_rxr_split("test_standard", rxr_dir=demo_guides.folder)
    assert not split.has_reference
    assert all(len(episode.path) == 1 for episode in split)
    with pytest.raises(Exception, match="no reference path"):
        _ = split.episodes[0].goal


def test_default_folder_in_data_dir(demo_dir: Path, demo_guides: GuideSet, tmp_path: Path) -> None:
    (tmp_path / "connectivity").symlink_to(demo_dir / "connectivity")
    (tmp_path / "RxR").symlink_to(demo_guides.folder)
    split = load_rxr_split("val_seen", data_dir=tmp_path)
    assert len(split) == len(demo_guides.records["val_seen"])


def test_missing_file_names_fix(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="rxr_val_unseen_guide.jsonl.gz not found") as caught:
        load_rxr_split("val_unseen", rxr_dir=tmp_path)
    assert "--rxr-dir" in str(caught.value)
    assert "Did you mean" not in str(caught.value)  # the split name itself is right


def test_unknown_split_suggests(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="Did you mean 'test_standard'"):
        load_rxr_split("test_standrd", rxr_dir=tmp_path)


def test_plain_json_lines(tmp_path: Path) -> None:
    records = [guide_record(5, 1, "scan", ["a", "b"], "hi-IN")]
    split = read_rxr_guide_file(write_guide(tmp_path / "rxr_val_seen_guide.jsonl", records, compress=False))
    assert split.name == "val_seen"
    assert split["5"].language == "hi-IN"


# --- malformed lines ------------------------------------------------------------------


GOOD = guide_record(11, 2, "scan", ["a", "b", "c"], "te-IN")
MALFORMED_CASES = {
    "missing instruction_id": ({k: v for k, v in GOOD.items() if k != "instruction_id"}, "instruction_id"),
    "string instruction_id": (GOOD | {"instruction_id": "11"}, "instruction_id"),
    "missing path_id": ({k: v for k, v in GOOD.items() if k != "path_id"}, "path_id"),
    "empty path": (GOOD | {"path": []}, "path"),
    "number in path": (GOOD | {"path": ["a", 3]}, "path"),
    "heading not finite": (GOOD | {"heading": math.inf}, "heading"),
    "boolean heading": (GOOD | {"heading": True}, "heading"),
    "scan not a string": (GOOD | {"scan": 7}, "scan"),
    "instruction missing": ({k: v for k, v in GOOD.items() if k != "instruction"}, "instruction"),
    "language missing": ({k: v for k, v in GOOD.items() if k != "language"}, "language"),
    "language not in RxR": (GOOD | {"language": "fr-FR"}, "language"),
    "empty instruction": (GOOD | {"instruction": "  "}, "instruction"),
    "annotator_id text": (GOOD | {"annotator_id": "x"}, "annotator_id"),
    "edit_distance text": (GOOD | {"edit_distance": "x"}, "edit_distance"),
    "timed_instruction text": (GOOD | {"timed_instruction": "x"}, "timed_instruction"),
}


@pytest.mark.parametrize("case", list(MALFORMED_CASES))
def test_malformed_line_names_field(case: str, tmp_path: Path) -> None:
    bad, field = MALFORMED_CASES[case]
    path = write_guide(tmp_path / "rxr_train_guide.jsonl.gz", [guide_record(1, 1, "s", ["a"], "en-US"), bad])
    with pytest.raises(RxrFormatError) as caught:
        read_rxr_guide_file(path)
    message = str(caught.value)
    assert f"{path}, line 2" in message
    assert f"field {field!r}" in message


def test_invalid_json_line(tmp_path: Path) -> None:
    path = write_guide(tmp_path / "rxr_train_guide.jsonl.gz", [GOOD, "", '{"instruction_id": 3,'])
    with pytest.raises(RxrFormatError, match=r"line 3: invalid JSON"):
        read_rxr_guide_file(path)


def test_line_not_an_object(tmp_path: Path) -> None:
    path = write_guide(tmp_path / "rxr_train_guide.jsonl.gz", ["[1, 2]"])
    with pytest.raises(RxrFormatError, match="line 1: expected a JSON object, got a JSON list"):
        read_rxr_guide_file(path)


def test_repeated_instruction_id(tmp_path: Path) -> None:
    path = write_guide(tmp_path / "rxr_train_guide.jsonl.gz", [GOOD, GOOD | {"language": "hi-IN"}])
    with pytest.raises(RxrFormatError, match="line 2: instruction_id 11 already appears on line 1"):
        read_rxr_guide_file(path)


def test_truncated_gzip(tmp_path: Path) -> None:
    path = write_guide(tmp_path / "rxr_train_guide.jsonl.gz", [GOOD] * 1)
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(RxrFormatError, match="not a complete gzip file"):
        read_rxr_guide_file(path)


def test_test_split_without_path_id(tmp_path: Path) -> None:
    record = {k: v for k, v in GOOD.items() if k != "path_id"}
    split = read_rxr_guide_file(write_guide(tmp_path / "rxr_test_standard_guide.jsonl.gz", [record]))
    assert split["11"].path_id == -1


# --- languages ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("languages", "expected"),
    [
        ("en", {"en-IN", "en-US"}),
        ("hi", {"hi-IN"}),
        ("te", {"te-IN"}),
        (["en-US", "te-IN"], {"en-US", "te-IN"}),
        ("EN-in, hi", {"en-IN", "hi-IN"}),
    ],
)
def test_language_filter_keeps_selected(demo_guides: GuideSet, languages, expected: set[str]) -> None:
    split = load_rxr_split("train", languages=languages, rxr_dir=demo_guides.folder)
    kept = [r for r in demo_guides.records["train"] if r["language"] in expected]
    assert [e.instr_id for e in split] == [str(r["instruction_id"]) for r in kept]
    assert {e.language for e in split} == expected


@pytest.mark.parametrize("languages", [None, "", "all", []])
def test_language_filter_all(languages) -> None:
    assert parse_languages(languages) is None


def test_unknown_language_lists_choices() -> None:
    with pytest.raises(UnknownLanguageError, match="expected a comma-separated list of en, hi, te, en-IN"):
        parse_languages("en,fr")


def test_unknown_language_suggests() -> None:
    with pytest.raises(UnknownLanguageError, match="Did you mean 'te-IN'"):
        parse_languages("te-IM")


def test_languages_need_rxr_dataset() -> None:
    with pytest.raises(ValueError, match="set dataset='rxr'"):
        EnvSettings(languages="hi")


# --- tokens and vocabularies ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [(ENGLISH, ENGLISH_TOKENS), (HINDI, HINDI_TOKENS), (TELUGU, TELUGU_TOKENS)],
    ids=["english", "hindi", "telugu"],
)
def test_tokenize_script(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected


def test_tokenize_joiner_after_virama() -> None:
    # क्‍ष with a zero-width joiner after the virama, and a Telugu word with a non-joiner.
    assert tokenize("क्\u200dष और క\u200cన") == ["क्\u200dष", "और", "క\u200cన"]


def test_shared_vocabulary_has_all_scripts(demo_guides: GuideSet) -> None:
    split = load_rxr_split("train", rxr_dir=demo_guides.folder)
    vocabularies = build_rxr_vocabularies(split, "shared", min_count=1)
    assert list(vocabularies) == ["shared"]
    for word in ("fridge", "बिस्तर", "మెట్లు"):
        assert word in vocabularies["shared"], word


def test_per_language_vocabularies_apart(demo_guides: GuideSet) -> None:
    split = load_rxr_split("train", rxr_dir=demo_guides.folder)
    vocabularies = build_rxr_vocabularies(split, "per_language", min_count=1)
    assert list(vocabularies) == ["en", "hi", "te"]
    assert "couch" in vocabularies["en"]
    assert "fridge" not in vocabularies["hi"]
    assert "బిస్తర" not in vocabularies["te"]
    assert "మెట్లు" not in vocabularies["hi"]


def test_vocabularies_round_trip(demo_guides: GuideSet, tmp_path: Path) -> None:
    split = load_rxr_split("train", rxr_dir=demo_guides.folder)
    vocabularies = build_rxr_vocabularies(split, "per_language", min_count=1)
    files = save_rxr_vocabularies(vocabularies, tmp_path / "vocab.{language}.txt")
    assert sorted(path.name for path in files.values()) == ["vocab.en.txt", "vocab.hi.txt", "vocab.te.txt"]
    assert load_rxr_vocabularies(tmp_path / "vocab.{language}.txt", vocabularies) == vocabularies


def test_several_vocabularies_need_placeholder(demo_guides: GuideSet, tmp_path: Path) -> None:
    split = load_rxr_split("train", rxr_dir=demo_guides.folder)
    vocabularies = build_rxr_vocabularies(split, "per_language", min_count=1)
    with pytest.raises(VocabularyFileError, match="put \\{language\\} in the file name"):
        save_rxr_vocabularies(vocabularies, tmp_path / "vocab.txt")


def test_world_reads_language_vocabulary(demo_dir: Path, demo_guides: GuideSet, tmp_path: Path) -> None:
    split = load_rxr_split("train", rxr_dir=demo_guides.folder)
    save_rxr_vocabularies(build_rxr_vocabularies(split, "per_language", 1), tmp_path / "v.{language}.txt")
    settings = rxr_settings(
        demo_dir, demo_guides, languages="hi", vocabulary=str(tmp_path / "v.{language}.txt")
    )
    world = NavigationWorld.from_settings(settings)
    assert world.encoder.vocabulary == Vocabulary.load(tmp_path / "v.hi.txt")


def test_language_vocabulary_needs_one_language(demo_dir: Path, demo_guides: GuideSet) -> None:
    settings = rxr_settings(demo_dir, demo_guides, languages="en,te", vocabulary="v.{language}.txt")
    with pytest.raises(VocabularyFileError, match="select one language"):
        NavigationWorld.from_settings(settings)


def test_world_builds_shared_vocabulary(rxr_world: NavigationWorld) -> None:
    vocabulary = rxr_world.encoder.vocabulary
    assert all(token in vocabulary for token in HINDI_TOKENS + TELUGU_TOKENS + ENGLISH_TOKENS)


def test_rxr_instruction_length_160(rxr_world: NavigationWorld) -> None:
    assert rxr_world.settings.max_instruction_length == 160
    assert rxr_world.encode_instruction(rxr_world.split("train").episodes[0]).shape == (160,)


def test_r2r_defaults_unchanged() -> None:
    settings = EnvSettings()
    assert (settings.max_instruction_length, settings.teacher, settings.dataset) == (80, "shortest", "r2r")


def test_hindi_instruction_encoding(rxr_world: NavigationWorld) -> None:
    episode = next(e for e in rxr_world.split("train") if e.language == "hi-IN")
    ids = rxr_world.encode_instruction(episode)
    assert rxr_world.encoder.decode(ids).split() == HINDI_TOKENS


# --- the reference-path teacher -------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "val_unseen"])
def test_teacher_retraces_reference(rxr_world: NavigationWorld, split: str) -> None:
    instr_ids = [e.instr_id for e in rxr_world.split(split)]
    viewpoints, _ = run_teacher(rxr_world, split, instr_ids)
    for instr_id in instr_ids:
        expected = list(collapse_repeats(rxr_world.split(split)[instr_id].path))
        assert collapse_repeats(viewpoints[instr_id]) == expected, instr_id


def test_teacher_ndtw_one(rxr_world: NavigationWorld) -> None:
    instr_ids = [e.instr_id for e in rxr_world.split("train")]
    _, metrics = run_teacher(rxr_world, "train", instr_ids)
    assert [metrics[i]["ndtw"] for i in instr_ids] == pytest.approx([1.0] * len(instr_ids))


def test_teacher_passes_viewpoint_twice(rxr_world: NavigationWorld) -> None:
    episode = next(e for e in rxr_world.split("train") if len(set(e.path)) < len(e.path))
    viewpoints, _ = run_teacher(rxr_world, "train", [episode.instr_id])
    assert collapse_repeats(viewpoints[episode.instr_id]) == list(episode.path)


def test_shortest_teacher_cuts_corners(demo_dir: Path, demo_guides: GuideSet) -> None:
    world = NavigationWorld.from_settings(rxr_settings(demo_dir, demo_guides, teacher="shortest"))
    episodes = world.split("train").episodes
    viewpoints, _ = run_teacher(world, "train", [e.instr_id for e in episodes])
    for episode in episodes:
        graph = world.connectivity[episode.scan]
        expected = graph.shortest_path(episode.start, episode.goal)
        assert collapse_repeats(viewpoints[episode.instr_id]) == expected, episode.instr_id


# --- the nDTW reward ----------------------------------------------------------------------


def ndtw_of(world: NavigationWorld, episode, viewpoints: list[str]) -> float:
    """nDTW of `viewpoints` against the episode's reference path, by the evaluation metrics."""
    graph = world.connectivity[episode.scan]
    return episode_metrics(graph, episode.path, viewpoints).ndtw


def rewarded_moves(
    world: NavigationWorld, split: str, policy: str, action_space: str = "panoramic", seed: int = 0
) -> dict[str, tuple[float, list[str], list[float]]]:
    """Run every episode of `split` to its end with the teacher or with random moves.

    Returns, by instr_id, the sum of the move rewards (STOP's excluded), the trajectory's
    viewpoints and the rewards of turns in place.
    """
    episodes = world.split(split).episodes
    env = R2RVectorEnv(
        num_envs=len(episodes), world=world, autoreset_mode=AutoresetMode.DISABLED, action_space=action_space
    )
    env.reset(options={"split": split, "instr_ids": [e.instr_id for e in episodes]})
    generator = np.random.default_rng(seed)
    sums = np.zeros(len(episodes))
    turns: list[list[float]] = [[] for _ in episodes]
    results = {}
    for step in range(40):
        if policy == "teacher":
            actions = env.teacher_actions()
        else:
            masks = env.batch.action_masks().astype(bool)
            masks[:, env.batch.stop_action] = step >= 12  # random moves first, then random stops
            actions = np.array([generator.choice(np.flatnonzero(row)) for row in masks])
        before = env.batch.sim.viewpoint.copy()
        _, reward, terminated, _, infos = env.step(actions)
        moved = env.batch.sim.viewpoint != before
        for slot in range(len(episodes)):
            if env.batch.ended[slot] and not terminated[slot]:
                continue
            if actions[slot] == env.batch.stop_action:
                pass
            elif moved[slot]:
                sums[slot] += reward[slot]
            else:
                turns[slot].append(float(reward[slot]))
            if terminated[slot]:
                viewpoints = [pose[0] for pose in infos["trajectory"][slot]]
                results[episodes[slot].instr_id] = (float(sums[slot]), viewpoints, turns[slot])
        if env.batch.ended.all():
            break
    assert len(results) == len(episodes)
    return results


@pytest.fixture(scope="module")
def ndtw_world(demo_dir: Path, demo_guides: GuideSet) -> NavigationWorld:
    return NavigationWorld.from_settings(rxr_settings(demo_dir, demo_guides, reward="ndtw"))


@pytest.mark.parametrize("policy", ["teacher", "random"])
def test_ndtw_rewards_sum_to_gain(ndtw_world: NavigationWorld, policy: str) -> None:
    # The move rewards telescope: their sum is nDTW(trajectory) - nDTW(start alone),
    # both computed here by the evaluation metrics.
    results = rewarded_moves(ndtw_world, "train", policy)
    for episode in ndtw_world.split("train"):
        total, viewpoints, _ = results[episode.instr_id]
        expected = ndtw_of(ndtw_world, episode, viewpoints) - ndtw_of(ndtw_world, episode, [episode.start])
        assert total == pytest.approx(expected, abs=1e-9), episode.instr_id


def test_ndtw_teacher_gains_to_one(ndtw_world: NavigationWorld) -> None:
    results = rewarded_moves(ndtw_world, "train", "teacher")
    for episode in ndtw_world.split("train"):
        total, _, _ = results[episode.instr_id]
        assert total == pytest.approx(1.0 - ndtw_of(ndtw_world, episode, [episode.start])), episode.instr_id


def test_ndtw_reward_zero_for_turns(ndtw_world: NavigationWorld) -> None:
    results = rewarded_moves(ndtw_world, "train", "random", action_space="egocentric", seed=3)
    turns = [reward for _, _, rewards in results.values() for reward in rewards]
    assert turns
    assert all(reward == 0.0 for reward in turns)
    for episode in ndtw_world.split("train"):
        total, viewpoints, _ = results[episode.instr_id]
        expected = ndtw_of(ndtw_world, episode, viewpoints) - ndtw_of(ndtw_world, episode, [episode.start])
        assert total == pytest.approx(expected, abs=1e-9), episode.instr_id


def test_ndtw_stop_reward_unchanged(ndtw_world: NavigationWorld) -> None:
    # Stopping at a start more than 3 m from the goal is a failure, rewarded -2 as before.
    episode = next(
        e
        for e in ndtw_world.split("train")
        if ndtw_world.connectivity[e.scan].distance(e.start, e.goal) > ndtw_world.settings.success_distance
    )
    env = R2REnv(world=ndtw_world)
    env.reset(options={"split": "train", "instr_id": episode.instr_id})
    _, reward, terminated, _, _ = env.step(env.stop_action)
    assert terminated
    assert reward == -ndtw_world.settings.success_reward


def test_unknown_reward_rejected() -> None:
    with pytest.raises(ValueError, match="reward='goal'"):
        EnvSettings(reward="goal")


def test_egocentric_teacher_visits_reference(rxr_world: NavigationWorld) -> None:
    episodes = rxr_world.split("train").episodes
    viewpoints, metrics = run_teacher(rxr_world, "train", [e.instr_id for e in episodes], "egocentric", 400)
    for episode in episodes:
        assert viewpoints[episode.instr_id][-1] == episode.goal, episode.instr_id
        assert is_subsequence(collapse_repeats(episode.path), viewpoints[episode.instr_id]), episode.instr_id
    exact = [collapse_repeats(viewpoints[e.instr_id]) == list(e.path) for e in episodes]
    assert sum(exact) >= len(episodes) - 2


def detours(world: NavigationWorld, episode) -> list[tuple[int, str]]:
    """Return the start's candidates (column, viewpoint) other than the path's second viewpoint."""
    here = world.prepare_scan(episode.scan) + world.connectivity[episode.scan].index(episode.start)
    count = world.tables.candidates.count[here]
    viewpoints = [world.tables.viewpoint_ids[t] for t in world.tables.candidates.target[here, :count]]
    return [
        (column, viewpoint) for column, viewpoint in enumerate(viewpoints) if viewpoint != episode.path[1]
    ]


def check_detours(world: NavigationWorld, split: str) -> int:
    """Force every first move off the path, then follow the teacher; return the detours checked.

    The teacher must walk the shortest path back to the path's second viewpoint, then
    retrace the rest of the path.
    """
    checked = 0
    env = R2REnv(world=world)
    for episode in world.split(split):
        graph = world.connectivity[episode.scan]
        for column, detour in detours(world, episode):
            env.reset(options={"split": split, "instr_id": episode.instr_id})
            env.step(column)
            terminated, steps = False, 0
            while not terminated and steps < 100:
                _, _, terminated, _, info = env.step(env.teacher_action())
                steps += 1
            expected = [episode.start] + graph.shortest_path(detour, episode.path[1]) + list(episode.path[2:])
            visited = collapse_repeats([pose[0] for pose in info["trajectory"]])
            assert visited == expected, (episode.instr_id, detour)
            checked += 1
    return checked


def test_teacher_returns_after_detour(rxr_world: NavigationWorld) -> None:
    assert check_detours(rxr_world, "val_unseen") > len(rxr_world.split("val_unseen"))


def test_egocentric_teacher_returns_after_detour(rxr_world: NavigationWorld) -> None:
    episode = rxr_world.split("val_unseen").episodes[0]
    env = R2REnv(world=rxr_world, action_space="egocentric")
    env.reset(options={"split": "val_unseen", "instr_id": episode.instr_id})
    navigable = rxr_world.tables.navigable
    for _ in range(12):
        key = env.batch.sim.state_key[0]
        ahead = rxr_world.tables.viewpoint_ids[navigable.target[key, 1]] if navigable.count[key] > 1 else None
        if ahead is not None and ahead not in episode.path:
            break
        env.step(egocentric.RIGHT)
    assert ahead is not None and ahead not in episode.path
    env.step(egocentric.FORWARD)
    terminated = False
    for _ in range(300):
        _, _, terminated, _, info = env.step(env.teacher_action())
        if terminated:
            break
    visited = [pose[0] for pose in info["trajectory"]]
    assert terminated
    assert visited[-1] == episode.goal
    assert ahead in visited
    assert is_subsequence(episode.path, visited)


def test_test_split_teacher_stops(rxr_world: NavigationWorld) -> None:
    instr_ids = [e.instr_id for e in rxr_world.split("test_standard")][:3]
    env = R2RVectorEnv(num_envs=3, world=rxr_world, autoreset_mode=AutoresetMode.DISABLED)
    env.reset(options={"split": "test_standard", "instr_ids": instr_ids})
    assert (env.teacher_actions() == env.stop_action).all()


def test_gymnasium_checker_on_rxr(demo_dir: Path, demo_guides: GuideSet) -> None:
    env = gym.make(
        envs.R2R_ENV_ID,
        data_dir=str(demo_dir),
        dataset="rxr",
        rxr_dir=str(demo_guides.folder),
        feature_dim=8,
        min_word_count=1,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*A Box observation space", category=UserWarning)
        check_env(env.unwrapped, skip_render_check=True)


# --- metrics, SPL and reports -------------------------------------------------------------


def mixed_predictions(world: NavigationWorld, split: str) -> dict[str, list[str]]:
    """Exact paths, shortest paths and paths that stop at the start, by instr_id."""
    predictions = {}
    for k, episode in enumerate(world.split(split)):
        graph = world.connectivity[episode.scan]
        kind = k % 3
        if kind == 0:
            predictions[episode.instr_id] = list(episode.path)
        elif kind == 1:
            predictions[episode.instr_id] = graph.shortest_path(episode.start, episode.goal)
        else:
            predictions[episode.instr_id] = [episode.start]
    return predictions


def test_metrics_per_language_independent(rxr_world: NavigationWorld, demo_guides: GuideSet) -> None:
    predictions = mixed_predictions(rxr_world, "val_unseen")
    report = evaluate_rxr_submission(predictions, rxr_world.split("val_unseen"), rxr_world.connectivity)
    by_language = report.means_by_language()
    assert sorted(by_language) == sorted({r["language"] for r in demo_guides.records["val_unseen"]})
    for language, means in by_language.items():
        alone = load_rxr_split("val_unseen", languages=language, rxr_dir=demo_guides.folder)
        own = {instr_id: predictions[instr_id] for instr_id in alone.by_instr_id}
        expected = evaluate_rxr_submission(own, alone, rxr_world.connectivity).means()
        assert means == pytest.approx(expected), language


def test_spl_shortest_and_reference(rxr_world: NavigationWorld) -> None:
    split = rxr_world.split("val_unseen")
    predictions = mixed_predictions(rxr_world, "val_unseen")
    shortest = evaluate_rxr_submission(predictions, split, rxr_world.connectivity, spl_length="shortest")
    reference = evaluate_rxr_submission(predictions, split, rxr_world.connectivity, spl_length="reference")
    for k, episode in enumerate(split):
        graph = rxr_world.connectivity[episode.scan]
        distance = graph.distance(episode.start, episode.goal)
        reference_length = graph.path_length(episode.path)
        if k % 3 == 0:  # the reference path: TL equals its length
            assert shortest.metrics.spl[k] == pytest.approx(distance / reference_length)
            assert reference.metrics.spl[k] == pytest.approx(1.0)
        elif k % 3 == 1:  # the shortest path: TL equals the distance
            assert shortest.metrics.spl[k] == pytest.approx(1.0)
            assert reference.metrics.spl[k] == pytest.approx(1.0)


def test_spl_never_exceeds_success(rxr_world: NavigationWorld) -> None:
    split = rxr_world.split("val_unseen")
    predictions = mixed_predictions(rxr_world, "val_unseen")
    for spl_length in ("shortest", "reference"):
        report = evaluate_rxr_submission(predictions, split, rxr_world.connectivity, spl_length=spl_length)
        assert (report.metrics.spl <= report.metrics.success).all(), spl_length


def test_spl_length_unknown(rxr_world: NavigationWorld) -> None:
    with pytest.raises(ValueError, match="SPL path length must be one of shortest, reference"):
        evaluate_trajectories({}, rxr_world.split("val_unseen"), rxr_world.connectivity, spl_length="gt")


def test_report_names_spl_length(rxr_world: NavigationWorld) -> None:
    predictions = mixed_predictions(rxr_world, "val_unseen")
    report = evaluate_rxr_submission(
        predictions, rxr_world.split("val_unseen"), rxr_world.connectivity, spl_length="reference"
    )
    table = report.format_table()
    assert "success weighted by path length (L: reference)" in table
    assert "By language:" in table
    assert report.to_dict()["spl_length"] == "reference"


def test_report_means_by_language_in_json(rxr_world: NavigationWorld) -> None:
    predictions = mixed_predictions(rxr_world, "val_unseen")
    report = evaluate_rxr_submission(predictions, rxr_world.split("val_unseen"), rxr_world.connectivity)
    assert report.to_dict()["means_by_language"] == report.means_by_language()


# --- submissions ----------------------------------------------------------------------


def test_submission_round_trip(rxr_world: NavigationWorld, tmp_path: Path) -> None:
    predictions = mixed_predictions(rxr_world, "val_unseen")
    for name in ("predictions.jsonl", "predictions.jsonl.gz"):
        write_rxr_submission(tmp_path / name, predictions)
        entries = read_rxr_submission(tmp_path / name)
        assert entries == [{"instruction_id": int(i), "path": path} for i, path in predictions.items()], name


def test_submission_gzipped_by_name(rxr_world: NavigationWorld, tmp_path: Path) -> None:
    write_rxr_submission(tmp_path / "p.jsonl.gz", mixed_predictions(rxr_world, "val_unseen"))
    assert (tmp_path / "p.jsonl.gz").read_bytes()[:2] == b"\x1f\x8b"


def test_submission_bytes_reproducible(rxr_world: NavigationWorld, tmp_path: Path) -> None:
    predictions = mixed_predictions(rxr_world, "val_unseen")
    write_rxr_submission(tmp_path / "a.jsonl.gz", predictions)
    write_rxr_submission(tmp_path / "b.jsonl.gz", predictions)
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()


def test_submission_write_rejects_malformed(tmp_path: Path) -> None:
    with pytest.raises(RxrSubmissionError, match="expected an integer instruction_id"):
        write_rxr_submission(tmp_path / "p.jsonl", {"abc": ["x"]})
    assert list(tmp_path.iterdir()) == []


def test_submission_valid_passes(rxr_world: NavigationWorld) -> None:
    predictions = mixed_predictions(rxr_world, "val_unseen")
    paths = validate_rxr_submission(predictions, rxr_world.split("val_unseen"), rxr_world.connectivity)
    assert paths == {instr_id: tuple(path) for instr_id, path in predictions.items()}


def test_submission_test_split_validates(rxr_world: NavigationWorld) -> None:
    split = rxr_world.split("test_standard")
    predictions = {e.instr_id: [e.start] for e in split}
    report = evaluate_rxr_submission(predictions, split, rxr_world.connectivity)
    assert report.metrics is None


def every_problem_entries(world: NavigationWorld) -> tuple[list[object], dict[ProblemKind, str | None]]:
    """A submission with each kind of problem once, and the instr_id each problem names."""
    split = world.split("val_unseen")
    good = {episode.instr_id: list(episode.path) for episode in split}
    a, b, c, d, e, f = (episode.instr_id for episode in split.episodes[:6])
    graph_d = world.connectivity[split[d].scan]
    neighbour = graph_d.neighbors(split[d].start)[0]
    graph_f = world.connectivity[split[f].scan]
    start_f = split[f].start
    far = next(v for v in graph_f.viewpoint_ids if v != start_f and v not in graph_f.neighbors(start_f))
    entries: list[object] = [
        ["not", "an", "object"],
        {"instruction_id": "12", "path": good[a]},
        {"instruction_id": int(a), "path": []},
        {"instruction_id": int(b), "path": good[b]},
        {"instruction_id": int(b), "path": good[b]},
        {"instruction_id": 123456, "path": good[e]},
        {"instruction_id": int(d), "path": [neighbour]},
        {"instruction_id": int(e), "path": [split[e].start, "no_such_viewpoint"]},
        {"instruction_id": int(f), "path": [split[f].start, far]},
    ]
    entries += [{"instruction_id": int(i), "path": p} for i, p in good.items() if i not in {a, b, c, d, e, f}]
    expected = {
        ProblemKind.DUPLICATE: b,
        ProblemKind.UNKNOWN_ID: "123456",
        ProblemKind.MISSING_ID: c,
        ProblemKind.WRONG_START: d,
        ProblemKind.UNKNOWN_VIEWPOINT: e,
        ProblemKind.NOT_ADJACENT: f,
    }
    return entries, expected


def test_submission_every_problem_kind(rxr_world: NavigationWorld) -> None:
    entries, expected = every_problem_entries(rxr_world)
    with pytest.raises(RxrSubmissionError) as caught:
        validate_rxr_submission(
            entries, rxr_world.split("val_unseen"), rxr_world.connectivity, source="p.jsonl"
        )
    problems = caught.value.problems
    assert {problem.kind for problem in problems} == set(ProblemKind)
    for kind, instr_id in expected.items():
        assert [p.instr_id for p in problems if p.kind == kind] == [instr_id], kind


def test_submission_malformed_entries(rxr_world: NavigationWorld) -> None:
    entries, _ = every_problem_entries(rxr_world)
    with pytest.raises(RxrSubmissionError) as caught:
        validate_rxr_submission(entries, rxr_world.split("val_unseen"), rxr_world.connectivity)
    malformed = [p for p in caught.value.problems if p.kind == ProblemKind.MALFORMED]
    assert [(p.entry, p.instr_id) for p in malformed] == [
        (0, None),
        (1, None),
        (2, str(entries[2]["instruction_id"])),
    ]


def test_submission_message_names_ids(rxr_world: NavigationWorld) -> None:
    entries, expected = every_problem_entries(rxr_world)
    with pytest.raises(RxrSubmissionError) as caught:
        validate_rxr_submission(
            entries, rxr_world.split("val_unseen"), rxr_world.connectivity, source="p.jsonl"
        )
    message = str(caught.value)
    assert message.startswith("p.jsonl: 9 problems with the RxR predictions for split 'val_unseen'")
    assert "  line 1: expected an object" in message
    assert (
        f"  instruction_id {expected[ProblemKind.MISSING_ID]}: in split 'val_unseen' but the predictions"
        in message
    )
    assert f"  instruction_id {expected[ProblemKind.DUPLICATE]}: appears 2 times, on lines 4, 5" in message
    assert "duplicate instruction_id: keep one line per instruction_id." in message


def test_submission_read_lists_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"instruction_id": 1, "path": ["a"]}\n{oops\n\n[1]\nnot json\n\n')
    with pytest.raises(
        RxrSubmissionFileError, match=r"3 lines are not JSON: line 2 .*; line 3 \(empty\); line 5"
    ):
        read_rxr_submission(path)


def test_predictions_from_trajectories_drop_turns() -> None:
    trajectories = {"7": [["a", 0.0, 0.0], ["a", 0.5, 0.0], ["b", 0.5, 0.0], ["a", 1.0, 0.0]]}
    assert predictions_from_trajectories(trajectories) == {"7": ["a", "b", "a"]}


# --- command-line programs --------------------------------------------------------------


def test_submit_cli_predictions(
    rxr_world: NavigationWorld, demo_dir: Path, demo_guides: GuideSet, tmp_path: Path
) -> None:
    split = rxr_world.split("test_standard")
    write_rxr_submission(tmp_path / "in.jsonl", {e.instr_id: [e.start] for e in split})
    out = tmp_path / "out.jsonl.gz"
    argv = [
        "--data-dir",
        str(demo_dir),
        "--rxr-dir",
        str(demo_guides.folder),
        "--predictions",
        str(tmp_path / "in.jsonl"),
    ]
    assert submit_rxr.main([*argv, "--out", str(out)]) == 0
    assert len(read_rxr_submission(out)) == len(split)


def test_submit_cli_trajectories(
    rxr_world: NavigationWorld, demo_dir: Path, demo_guides: GuideSet, tmp_path: Path
) -> None:
    split = rxr_world.split("test_standard")
    write_trajectories(
        tmp_path / "t.json", {e.instr_id: [[e.start, 0.0, 0.0], [e.start, 0.5, 0.0]] for e in split}
    )
    out = tmp_path / "out.jsonl"
    argv = [
        "--data-dir",
        str(demo_dir),
        "--rxr-dir",
        str(demo_guides.folder),
        "--trajectories",
        str(tmp_path / "t.json"),
    ]
    assert submit_rxr.main([*argv, "--out", str(out)]) == 0
    assert read_rxr_submission(out)[0] == {
        "instruction_id": int(split.episodes[0].instr_id),
        "path": [split.episodes[0].start],
    }


def test_submit_cli_rejects(demo_dir: Path, demo_guides: GuideSet, tmp_path: Path, capsys) -> None:
    write_rxr_submission(tmp_path / "in.jsonl", {"1": ["x"]})
    out = tmp_path / "out.jsonl.gz"
    argv = [
        "--data-dir",
        str(demo_dir),
        "--rxr-dir",
        str(demo_guides.folder),
        "--predictions",
        str(tmp_path / "in.jsonl"),
    ]
    assert submit_rxr.main([*argv, "--out", str(out)]) == 2
    assert not out.exists()
    assert "missing instruction_id" in capsys.readouterr().err


def test_evaluate_cli_rxr(
    rxr_world: NavigationWorld, demo_dir: Path, demo_guides: GuideSet, tmp_path: Path, capsys
) -> None:
    write_rxr_submission(tmp_path / "p.jsonl.gz", mixed_predictions(rxr_world, "val_unseen"))
    argv = ["--data-dir", str(demo_dir), "--dataset", "rxr", "--rxr-dir", str(demo_guides.folder)]
    report = tmp_path / "report.json"
    code = evaluate.main(
        [str(tmp_path / "p.jsonl.gz"), *argv, "--spl-length", "reference", "--report", str(report)]
    )
    assert code == 0
    output = capsys.readouterr().out
    assert "(L: reference)" in output
    assert "hi-IN" in output
    assert json.loads(report.read_text())["spl_length"] == "reference"


def test_evaluate_cli_languages_need_rxr(demo_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        evaluate.main([str(tmp_path / "t.json"), "--data-dir", str(demo_dir), "--languages", "hi"])


def test_stats_rows(rxr_world: NavigationWorld, demo_guides: GuideSet) -> None:
    split = rxr_world.split("train")
    rows = {row.language: row for row in rxr_stats.split_statistics(split, rxr_world.connectivity)}
    records = [r for r in demo_guides.records["train"] if r["language"] == "hi-IN"]
    hindi = rows["hi-IN"]
    assert hindi.episodes == len(records)
    assert hindi.paths == len({r["path_id"] for r in records})
    assert hindi.mean_hops == pytest.approx(np.mean([len(r["path"]) - 1 for r in records]))
    metres = [rxr_world.connectivity[r["scan"]].path_length(r["path"]) for r in records]
    assert hindi.mean_metres == pytest.approx(np.mean(metres))
    assert hindi.mean_tokens == len(HINDI_TOKENS)
    assert rows["all"].episodes == len(demo_guides.records["train"])


def test_stats_cli_table(demo_dir: Path, demo_guides: GuideSet, capsys) -> None:
    argv = ["--data-dir", str(demo_dir), "--rxr-dir", str(demo_guides.folder), "--languages", "te"]
    assert rxr_stats.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["split", "language", "episodes", "paths", "hops", "metres", "tokens"]
    rows = [line.split() for line in lines[2:]]
    assert [row[:2] for row in rows] == [
        [split, language]
        for split in ("train", "val_seen", "val_unseen", "test_standard")
        for language in ("te-IN", "all")
    ]
    assert rows[-1][4:6] == ["-", "-"]


def test_vocab_cli_per_language(demo_dir: Path, demo_guides: GuideSet, tmp_path: Path) -> None:
    argv = ["--data-dir", str(demo_dir), "--rxr-dir", str(demo_guides.folder), "--min-count", "1"]
    assert (
        rxr_vocab.main([*argv, "--scope", "per_language", "--out", str(tmp_path / "v.{language}.txt")]) == 0
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.en.txt", "v.hi.txt", "v.te.txt"]


# --- training on RxR episodes -------------------------------------------------------------


def test_speaker_learns_from_reference_paths(rxr_world: NavigationWorld) -> None:
    episodes = rxr_world.split("train").episodes[:6]
    env = R2RVectorEnv(num_envs=6, world=rxr_world, autoreset_mode=AutoresetMode.DISABLED)
    observation, _ = env.reset(options={"split": "train", "instr_ids": [e.instr_id for e in episodes]})
    paths = collect_paths(env, observation, np.ones(6, dtype=bool))
    assert paths.lengths.tolist() == [len(collapse_repeats(e.path)) for e in episodes]
    speaker = Speaker(
        len(rxr_world.encoder.vocabulary),
        rxr_world.features.dim,
        ANGLE_SIZE,
        SpeakerModelSettings(hidden_size=32, embedding_size=16),
    )
    assert torch.isfinite(speaker.loss(paths))


def test_follower_trains_and_submits(demo_dir: Path, demo_guides: GuideSet, tmp_path: Path) -> None:
    settings = FollowerTrainingSettings(
        output_dir=str(tmp_path / "run"),
        data_dir=str(demo_dir),
        features=demo_features(demo_dir),
        iterations=2,
        batch_size=4,
        learning_rate=1e-3,
        optimizer="adam",
        eval_interval=2,
        checkpoint_interval=2,
        log_interval=1,
        eval_episodes=4,
        max_steps=8,
        angle_feature_size=ANGLE_SIZE,
        val_splits="val_unseen",
        dataset="rxr",
        rxr_dir=str(demo_guides.folder),
    )
    model = FollowerModelSettings(embedding_size=16, hidden_size=32, action_embedding_size=8)
    trainer = FollowerTrainer(settings, model)
    assert (trainer.world.settings.max_instruction_length, trainer.world.settings.teacher) == (
        160,
        "reference",
    )
    best = trainer.train()
    assert set(best) == {"val_unseen"}

    # The data folder and the guide files default to the run's.
    out = tmp_path / "submission.jsonl.gz"
    checkpoint = tmp_path / "run" / "checkpoints" / "latest.pt"
    assert submit_rxr.main(["--device", "cpu", "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    assert len(read_rxr_submission(out)) == len(demo_guides.records["test_standard"])


def test_seq2seq_trains_and_submits(demo_dir: Path, demo_guides: GuideSet, tmp_path: Path) -> None:
    settings = Seq2SeqTrainingSettings(
        output_dir=str(tmp_path / "run"),
        data_dir=str(demo_dir),
        features=demo_features(demo_dir),
        iterations=2,
        batch_size=4,
        feedback="teacher",
        eval_interval=2,
        eval_episodes=4,
        max_steps=30,
        angle_feature_size=ANGLE_SIZE,
        val_splits="val_unseen",
        dataset="rxr",
        rxr_dir=str(demo_guides.folder),
    )
    model = Seq2SeqModelSettings(embedding_size=16, action_embedding_size=8, hidden_size=32)
    trainer = Seq2SeqTrainer(settings, model)
    world_settings = trainer.world.settings
    assert (world_settings.dataset, world_settings.max_instruction_length, world_settings.teacher) == (
        "rxr",
        160,
        "reference",
    )
    best = trainer.train()
    assert set(best) == {"val_unseen"}
    assert "ndtw" in best["val_unseen"]

    out = tmp_path / "submission.jsonl.gz"
    argv = ["--data-dir", str(demo_dir), "--rxr-dir", str(demo_guides.folder), "--device", "cpu"]
    checkpoint = tmp_path / "run" / "checkpoints" / "best_val_unseen.pt"
    assert submit_rxr.main([*argv, "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    assert len(read_rxr_submission(out)) == len(demo_guides.records["test_standard"])


def test_submission_takes_run_languages(demo_dir: Path, demo_guides: GuideSet, tmp_path: Path) -> None:
    settings = FollowerTrainingSettings(
        output_dir=str(tmp_path / "run"),
        data_dir=str(demo_dir),
        features=demo_features(demo_dir),
        iterations=1,
        batch_size=2,
        train_mode="il",
        eval_interval=1,
        eval_episodes=2,
        max_steps=4,
        angle_feature_size=ANGLE_SIZE,
        val_splits="val_unseen",
        dataset="rxr",
        rxr_dir=str(demo_guides.folder),
        languages="hi",
    )
    model = FollowerModelSettings(embedding_size=16, hidden_size=32, action_embedding_size=8)
    FollowerTrainer(settings, model).train()
    checkpoint = tmp_path / "run" / "checkpoints" / "latest.pt"
    hindi = [r for r in demo_guides.records["test_standard"] if r["language"].startswith("hi")]
    assert 0 < len(hindi) < len(demo_guides.records["test_standard"])

    out = tmp_path / "hindi.jsonl.gz"
    assert submit_rxr.main(["--device", "cpu", "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    assert {p["instruction_id"] for p in read_rxr_submission(out)} == {r["instruction_id"] for r in hindi}


def test_follower_rl_with_ndtw_reward(demo_dir: Path, demo_guides: GuideSet, tmp_path: Path) -> None:
    settings = FollowerTrainingSettings(
        output_dir=str(tmp_path / "run"),
        data_dir=str(demo_dir),
        features=demo_features(demo_dir),
        iterations=2,
        batch_size=4,
        train_mode="rl",
        reward="ndtw",
        eval_interval=2,
        eval_episodes=4,
        max_steps=8,
        angle_feature_size=ANGLE_SIZE,
        val_splits="val_unseen",
        dataset="rxr",
        rxr_dir=str(demo_guides.folder),
    )
    model = FollowerModelSettings(embedding_size=16, hidden_size=32, action_embedding_size=8)
    trainer = FollowerTrainer(settings, model)
    assert trainer.world.settings.reward == "ndtw"
    trainer.train()
    assert trainer.iteration == 2


def test_train_follower_reward_option(capsys) -> None:
    from scripts import train_follower

    with pytest.raises(SystemExit):
        train_follower.main(["--help"])
    assert "--reward" in capsys.readouterr().out
    with pytest.raises(ValueError, match="reward='goal'"):
        FollowerTrainingSettings(reward="goal")


def test_ndtw_reward_with_imitation_warns(caplog) -> None:
    with caplog.at_level("WARNING"):
        FollowerTrainingSettings(train_mode="il", reward="ndtw")
    assert "no effect with train_mode=il" in caplog.text


# --- the real Matterport3D graphs ---------------------------------------------------------

REAL_SCANS = ("17DRP5sb8fy", "2azQ1b91cZZ", "8194nk5LbLH")


@pytest.fixture(scope="module")
def real_rxr(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GuideSet]:
    """A data folder with the real graphs and guide files over three real scans, in its default RxR/ place."""
    root = tmp_path_factory.mktemp("real_rxr")
    (root / "connectivity").symlink_to(data_dir / "connectivity")
    connectivity = Connectivity(data_dir / "connectivity")
    missing = [scan for scan in REAL_SCANS if scan not in connectivity]
    if missing:
        pytest.skip(f"scans {missing} are not in {data_dir / 'connectivity'}")
    graphs = {scan: connectivity[scan] for scan in REAL_SCANS}
    return root, build_guides(root / "RxR", graphs, list(REAL_SCANS[:2]), list(REAL_SCANS[2:]))


@pytest.fixture(scope="module")
def real_world(real_rxr: tuple[Path, GuideSet]) -> NavigationWorld:
    root, _ = real_rxr
    settings = EnvSettings(
        data_dir=str(root), dataset="rxr", feature_dim=4, min_word_count=1, angle_feature_size=ANGLE_SIZE
    )
    return NavigationWorld.from_settings(settings)


def test_real_teacher_retraces(real_world: NavigationWorld) -> None:
    instr_ids = [e.instr_id for e in real_world.split("train")]
    viewpoints, metrics = run_teacher(real_world, "train", instr_ids)
    for instr_id in instr_ids:
        assert collapse_repeats(viewpoints[instr_id]) == list(real_world.split("train")[instr_id].path), (
            instr_id
        )
        assert metrics[instr_id]["ndtw"] == pytest.approx(1.0), instr_id


def test_real_paths_not_shortest(real_world: NavigationWorld) -> None:
    for episode in real_world.split("val_unseen"):
        graph = real_world.connectivity[episode.scan]
        assert graph.path_length(episode.path) > graph.distance(episode.start, episode.goal) + 0.5, (
            episode.instr_id
        )


def test_real_teacher_returns_after_detour(real_world: NavigationWorld) -> None:
    assert check_detours(real_world, "val_unseen") > len(real_world.split("val_unseen"))


def test_real_egocentric_teacher_reaches_goal(real_world: NavigationWorld) -> None:
    episodes = real_world.split("val_unseen").episodes
    viewpoints, metrics = run_teacher(
        real_world, "val_unseen", [e.instr_id for e in episodes], "egocentric", 400
    )
    for episode in episodes:
        assert viewpoints[episode.instr_id][-1] == episode.goal, episode.instr_id
        assert is_subsequence(episode.path, viewpoints[episode.instr_id]), episode.instr_id


def test_real_metrics_per_language(real_world: NavigationWorld, real_rxr: tuple[Path, GuideSet]) -> None:
    root, guides = real_rxr
    predictions = mixed_predictions(real_world, "val_unseen")
    report = evaluate_rxr_submission(predictions, real_world.split("val_unseen"), real_world.connectivity)
    for language, means in report.means_by_language().items():
        alone = load_rxr_split("val_unseen", data_dir=root, languages=language)
        own = {instr_id: predictions[instr_id] for instr_id in alone.by_instr_id}
        assert means == pytest.approx(evaluate_rxr_submission(own, alone, real_world.connectivity).means()), (
            language
        )
