"""The real data formats of docs/PAPER.md#data-formats: loading, every validation rule, rejects, and the error messages."""

from __future__ import annotations

import copy
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers_video import frame_colour, write_colour_video, write_corrupt_file, write_empty_file
from PIL import Image

from fl1_core.data.formats import load_futurebench, load_rl_records, load_sft_records, load_twiffbench
from fl1_core.data.records import (
    DataFileError,
    FutureBenchItem,
    LoadResult,
    RecordError,
    Reject,
    RLRecord,
    SFTRecord,
    TwiffBenchItem,
    parse_reference_chain,
    read_rejects,
    write_rejects,
)
from fl1_core.data.frames import load_pool_frames
from fl1_core.tokens import MCQ_INSTRUCTION

# --- fixtures ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with videos/good.mp4 (32 colour frames), videos/corrupt.mp4, videos/empty.mp4 and 3 PNGs."""
    root = tmp_path_factory.mktemp("data")
    write_colour_video(root / "videos" / "good.mp4", num_frames=32)
    write_colour_video(root / "videos" / "good2.mp4", num_frames=12)
    write_corrupt_file(root / "videos" / "corrupt.mp4")
    write_empty_file(root / "videos" / "empty.mp4")
    (root / "images").mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8), frame_colour(i)).save(root / "images" / f"f{i}.png")
    (root / "images" / "broken.png").write_bytes(b"not a png at all")
    return root


def sft_row(**over: Any) -> dict[str, Any]:
    row = {
        "id": "sft_00012",
        "video": "videos/good.mp4",
        "image": [1, 2],
        "reasoning_image": [5, 8],
        "conversations": [
            {"from": "human", "value": "<image><image>What happens after the ball hits the wall?"},
            {"from": "gpt", "value": "THOUGHT 0: The ball moves right.<image>THOUGHT 1: It bounces.<image>THOUGHT 2: "
             "It rolls back."},
        ],
        "answer": "It rolls back to the left.",
        "cot": "The ball bounces.",
        "meta": {"source": "twiff"},
    }
    row.update(over)
    return row


def rl_row(**over: Any) -> dict[str, Any]:
    row = {
        "id": "rl_1",
        "video": "videos/good.mp4",
        "image": [1, 3, 4],
        "conversations": [{"from": "human", "value": "<image><image><image>Which way will it go? A. left B. right"}],
        "answer": "A",
        "problem_type": "multiple choice",
    }
    row.update(over)
    return row


def fb_row(**over: Any) -> dict[str, Any]:
    row = {
        "id": "fb_1",
        "question_type": "hop2",
        "video_path": "videos/good.mp4",
        "qa": {"Question": "What happens next?", "Options": {"A": "rain", "B": "sun", "C": "snow", "D": "wind"},
               "Answer": "B"},
    }
    row.update(over)
    return row


def write_json(path: Path, rows: list[Any], jsonl: bool | None = None) -> Path:
    if jsonl is None:
        jsonl = path.suffix == ".jsonl"
    text = "\n".join(json.dumps(r) for r in rows) + "\n" if jsonl else json.dumps(rows)
    path.write_text(text, encoding="utf-8")
    return path


def png_bytes(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
    return buf.getvalue()


def check_both_modes(path: Path, loader: Any, rid: str, field: str, reason: str, n_good: int, **kw: Any) -> None:
    """Bad record -> RecordError naming id + field + reason (raise) / one exact Reject and every good record (skip)."""
    with pytest.raises(RecordError) as info:
        loader(path, on_error="raise", **kw)
    err = info.value
    assert (err.record_id, err.field) == (rid, field), str(err)
    assert reason in err.reason and str(err).startswith(f"record {rid!r}: field {field!r}: ")
    res = loader(path, on_error="skip", **kw)
    assert len(res.records) == n_good
    assert [(r.record_id, r.field) for r in res.rejects] == [(rid, field)]
    assert reason in res.rejects[0].reason


# --- SFT --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_sft_valid(media: Path, suffix: str) -> None:
    no_id = sft_row()
    del no_id["id"]
    path = write_json(media / f"sft{suffix}", [sft_row(), no_id])
    res = load_sft_records(path)
    assert isinstance(res, LoadResult) and res.rejects == [] and len(res) == 2
    rec = res[0]
    assert isinstance(rec, SFTRecord)
    assert rec.id == "sft_00012" and res[1].id == "#1"  # falls back to the position
    assert rec.video == str(media / "videos" / "good.mp4")
    assert rec.image == (1, 2) and rec.reasoning_image == (5, 8) and not rec.uses_image_paths
    assert rec.question_text == "What happens after the ball hits the wall?"
    assert rec.thoughts == ["The ball moves right.", "It bounces.", "It rolls back."]
    assert rec.answer == "It rolls back to the left." and rec.cot == "The ball bounces."
    assert rec.meta == {"source": "twiff"} and rec.num_future_frames == 2


def test_sft_record_frames_load_the_right_pixels(media: Path) -> None:
    rec = load_sft_records(write_json(media / "one.json", [sft_row()]))[0]
    q, f = rec.frame_numbers(32)
    assert (q, f) == ([1, 3], [17, 30])
    for img, n in zip(load_pool_frames(rec.video, rec.reasoning_image), f):
        assert np.abs(np.asarray(img).astype(int) - frame_colour(n)).max() <= 6


def test_sft_image_path_variant(media: Path) -> None:
    row = sft_row(image=["images/f0.png", "images/f1.png"], reasoning_image=["images/f2.png", "images/f0.png"])
    del row["video"]
    rec = load_sft_records(write_json(media / "paths.jsonl", [row]))[0]
    assert rec.uses_image_paths and rec.video is None and rec.image == ()
    assert rec.image_paths == (str(media / "images" / "f0.png"), str(media / "images" / "f1.png"))
    assert rec.num_question_frames == 2 and rec.num_future_frames == 2


def test_sft_image_path_variant_missing_and_broken_image(media: Path) -> None:
    row1 = sft_row(id="p1", image=["images/f0.png", "images/nope.png"], reasoning_image=["images/f2.png"] * 2)
    row2 = sft_row(id="p2", image=["images/f0.png", "images/f1.png"], reasoning_image=["images/broken.png"] * 2)
    path = write_json(media / "paths_bad.jsonl", [row1, row2, sft_row(id="ok")])
    res = load_sft_records(path, on_error="skip")
    assert [r.id for r in res] == ["ok"]
    assert [(r.record_id, r.field) for r in res.rejects] == [("p1", "image[1]"), ("p2", "reasoning_image[0]")]
    assert "not found" in res.rejects[0].reason and "cannot decode image" in res.rejects[1].reason


def test_sft_mixed_paths_and_indices(media: Path) -> None:
    path = write_json(media / "mixed.json", [sft_row(image=["images/f0.png", 2])])
    check_both_modes(path, load_sft_records, "sft_00012", "image", "mixes image paths and pool indices", 0)


def test_sft_exact_error_message(media: Path) -> None:
    path = write_json(media / "bad_index.jsonl", [sft_row(image=[1, 9])])
    with pytest.raises(RecordError, match=r"^record 'sft_00012': field 'image': index 9 outside 1\.\.8$"):
        load_sft_records(path)
    assert issubclass(RecordError, ValueError)


def _drop(key: str) -> dict[str, Any]:
    row = sft_row()
    del row[key]
    return row


def _gpt(value: str) -> dict[str, Any]:
    row = sft_row()
    row["conversations"][1]["value"] = value
    return row


SFT_BAD = {
    "missing answer": (_drop("answer"), "answer", "missing"),
    "missing conversations": (_drop("conversations"), "conversations", "missing"),
    "missing image": (_drop("image"), "image", "missing"),
    "missing reasoning_image": (_drop("reasoning_image"), "reasoning_image", "missing"),
    "missing video": (_drop("video"), "video", "missing"),
    "answer not a string": (sft_row(answer=5), "answer", "expected a string, got int"),
    "image not a list": (sft_row(image="1,2"), "image", "expected a list"),
    "float index": (sft_row(image=[1, 2.0]), "image", "expected an int pool index, got float"),
    "bool index": (sft_row(image=[True, 2]), "image", "expected an int pool index, got bool"),
    "video not a string": (sft_row(video=["a.mp4"]), "video", "expected a string, got list"),
    "conversations not a list": (sft_row(conversations={"human": "x"}), "conversations", "expected a list"),
    "cot not a string": (sft_row(cot=3), "cot", "expected a string"),
    "meta not an object": (sft_row(meta=[1]), "meta", "expected an object"),
    "index 0": (sft_row(reasoning_image=[0, 8]), "reasoning_image", "index 0 outside 1..8"),
    "index 9": (sft_row(image=[1, 9]), "image", "index 9 outside 1..8"),
    "missing video file": (sft_row(video="videos/missing.mp4"), "video", "not found"),
    "corrupt video": (sft_row(video="videos/corrupt.mp4"), "video", "corrupt"),
    "empty video": (sft_row(video="videos/empty.mp4"), "video", "empty"),
    "more human markers than frames": (
        sft_row(image=[1]), "conversations[0].value", "has 2 <image> marker(s) but 'image' lists 1 frame(s)"),
    "fewer human markers than frames": (
        sft_row(image=[1, 2, 3]), "conversations[0].value", "has 2 <image> marker(s) but 'image' lists 3"),
    "more gpt markers than future frames": (
        sft_row(reasoning_image=[5]), "conversations[1].value",
        "has 2 <image> marker(s) but 'reasoning_image' lists 1"),
    "whitespace answer": (sft_row(answer="  \n "), "answer", "empty or whitespace-only"),
    "empty gpt turn": (_gpt(""), "conversations[1].value", "empty or whitespace-only"),
    "question only markers": (
        sft_row(conversations=[{"from": "human", "value": "<image><image>  "}, sft_row()["conversations"][1]]),
        "conversations[0].value", "no question text"),
    "wrong role": (
        sft_row(conversations=[sft_row()["conversations"][1], sft_row()["conversations"][1]]),
        "conversations[0].from", "expected 'human'"),
    "one turn only": (sft_row(conversations=sft_row()["conversations"][:1]), "conversations", "got 1 turn(s)"),
    "no question frames": (
        sft_row(image=[], conversations=[{"from": "human", "value": "Q?"}, sft_row()["conversations"][1]]),
        "image", "at least one question frame"),
    "not an object": (["a", "list"], "<record>", "expected a JSON object"),
}


@pytest.mark.parametrize("case", list(SFT_BAD))
def test_sft_rejects(media: Path, case: str) -> None:
    bad, field, reason = SFT_BAD[case]
    good = [sft_row(id="good_a"), sft_row(id="good_b", video="videos/good2.mp4")]
    path = write_json(media / "sft_bad.jsonl", [good[0], copy.deepcopy(bad), good[1]])
    rid = "sft_00012" if isinstance(bad, dict) else "#1"
    check_both_modes(path, load_sft_records, rid, field, reason, 2)
    assert [r.id for r in load_sft_records(path, on_error="skip")] == ["good_a", "good_b"]  # good ones kept, in order


def test_sft_non_utf8_line_is_rejected_alone(media: Path) -> None:
    lines = [json.dumps(sft_row(id="a")).encode(), json.dumps(sft_row(id="b", answer="caf\u00e9")).encode(),
             json.dumps(sft_row(id="c")).encode()]
    lines[1] = lines[1].replace(b"caf\\u00e9", b"caf\xe9")  # a Latin-1 byte: not UTF-8
    path = media / "latin1.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    check_both_modes(path, load_sft_records, "b", "answer", "not valid UTF-8", 2)


def test_sft_non_utf8_in_json_list(media: Path) -> None:
    raw = json.dumps([sft_row(id="a", meta={"note": "xx"}), sft_row(id="b")]).encode().replace(b"xx", b"\xff\xfe")
    path = media / "bad_bytes.json"
    path.write_bytes(raw)
    check_both_modes(path, load_sft_records, "a", "meta.note", "not valid UTF-8", 1)


def test_sft_broken_json_line(media: Path) -> None:
    path = media / "broken.jsonl"
    path.write_text(json.dumps(sft_row(id="a")) + "\n{not json\n\n" + json.dumps(sft_row(id="c")) + "\n")
    check_both_modes(path, load_sft_records, "#1", "<record>", "line 2 is not valid JSON", 2)


def test_file_level_errors(media: Path, tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="not found"):
        load_sft_records(tmp_path / "none.json")
    (tmp_path / "obj.json").write_text('{"a": 1}')
    with pytest.raises(DataFileError, match="expected a JSON list"):
        load_sft_records(tmp_path / "obj.json")
    (tmp_path / "blank.json").write_text("  \n")
    with pytest.raises(DataFileError, match="empty"):
        load_sft_records(tmp_path / "blank.json")
    with pytest.raises(ValueError, match="on_error"):
        load_sft_records(tmp_path / "obj.json", on_error="ignore")  # type: ignore[arg-type]


def test_each_video_is_opened_once(media: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    import fl1_core.data.validation as validation  # the media checks live there

    real = validation.read_video_info

    def counting(path: str) -> Any:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(validation, "read_video_info", counting)
    rows = [sft_row(id=f"r{i}") for i in range(5)] + [sft_row(id=f"m{i}", video="videos/missing.mp4") for i in range(3)]
    res = load_sft_records(write_json(media / "many.jsonl", rows), on_error="skip")
    assert len(res) == 5 and len(res.rejects) == 3
    assert sorted(calls) == sorted([str(media / "videos" / "good.mp4"), str(media / "videos" / "missing.mp4")])
    calls.clear()
    res = load_sft_records(media / "many.jsonl", check_videos=False)
    assert calls == [] and len(res) == 8  # no video checks: missing files pass


def test_video_root(media: Path, tmp_path: Path) -> None:
    path = write_json(tmp_path / "elsewhere.jsonl", [sft_row()])
    with pytest.raises(RecordError, match="not found"):  # default root = the data file's folder
        load_sft_records(path)
    rec = load_sft_records(path, video_root=media)[0]
    assert rec.video == str(media / "videos" / "good.mp4")
    absolute = write_json(tmp_path / "abs.jsonl", [sft_row(video=str(media / "videos" / "good.mp4"))])
    assert load_sft_records(absolute)[0].video == str(media / "videos" / "good.mp4")


def test_rejects_file_round_trip(media: Path, tmp_path: Path) -> None:
    path = write_json(media / "rj.jsonl", [sft_row(id="x", image=[1, 9]), sft_row(id="y")])
    res = load_sft_records(path, on_error="skip")
    out = write_rejects(res.rejects, tmp_path / "out" / "rejects.jsonl")
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert obj == {"record_id": "x", "field": "image", "reason": "index 9 outside 1..8", "position": 0,
                   "source": str(path)}
    assert read_rejects(out) == res.rejects
    assert str(res.rejects[0]) == "record 'x': field 'image': index 9 outside 1..8"
    assert write_rejects([], tmp_path / "empty.jsonl").read_text() == ""


# --- RL ---------------------------------------------------------------------------------------------------------------


def test_rl_valid(media: Path) -> None:
    two_turns = rl_row(id="rl_2", problem_type=None)
    two_turns["conversations"] = two_turns["conversations"] + [{"from": "gpt", "value": "A"}]
    res = load_rl_records(write_json(media / "rl.json", [rl_row(), two_turns]))
    rec = res[0]
    assert isinstance(rec, RLRecord) and rec.image == (1, 3, 4) and rec.is_multiple_choice
    assert rec.prompt_text == "Which way will it go? A. left B. right\n" + MCQ_INSTRUCTION
    assert rec.frame_numbers(32) == [1, 8, 13]
    assert res[1].prompt_text == "Which way will it go? A. left B. right" and not res[1].is_multiple_choice


RL_BAD = {
    "missing id": ({k: v for k, v in rl_row().items() if k != "id"}, "#1", "id", "missing"),
    "id wrong type": (rl_row(id=["x"]), "#1", "id", "expected a string or an int"),
    "index out of range": (rl_row(image=[1, 3, 12]), "rl_1", "image", "index 12 outside 1..8"),
    "marker mismatch": (rl_row(image=[1, 3]), "rl_1", "conversations[0].value", "has 3 <image> marker(s)"),
    "missing video": (rl_row(video="videos/missing.mp4"), "rl_1", "video", "not found"),
    "corrupt video": (rl_row(video="videos/corrupt.mp4"), "rl_1", "video", "corrupt"),
    "problem_type wrong type": (rl_row(problem_type=1), "rl_1", "problem_type", "expected a string"),
    "missing answer": ({k: v for k, v in rl_row().items() if k != "answer"}, "rl_1", "answer", "missing"),
}


@pytest.mark.parametrize("case", list(RL_BAD))
def test_rl_rejects(media: Path, case: str) -> None:
    bad, rid, field, reason = RL_BAD[case]
    path = write_json(media / "rl_bad.jsonl", [rl_row(id="g1"), bad, rl_row(id="g2")])
    check_both_modes(path, load_rl_records, rid, field, reason, 2)


# --- FutureBench ------------------------------------------------------------------------------------------------------


def test_futurebench_valid(media: Path) -> None:
    embedded = fb_row(id=7, question_type="hop5")
    embedded["qa"] = dict(embedded["qa"], Question="Next? A) rain B) sun C) snow D) wind", Answer="D")
    res = load_futurebench(write_json(media / "fb.jsonl", [fb_row(), embedded]))
    a, b = res
    assert isinstance(a, FutureBenchItem) and a.answer == "B" and a.hop_label == "2-hop"
    assert a.video_path == str(media / "videos" / "good.mp4")
    assert a.prompt_text() == "What happens next?\nA. rain\nB. sun\nC. snow\nD. wind\n" + MCQ_INSTRUCTION
    assert b.id == "7" and b.hop_label == "Interp." and b.options_embedded
    assert b.prompt_text() == "Next? A) rain B) sun C) snow D) wind\n" + MCQ_INSTRUCTION


def _qa(**over: Any) -> dict[str, Any]:
    row = fb_row()
    row["qa"] = dict(row["qa"], **over)
    return row


FB_BAD = {
    "answer not an option": (_qa(Answer="E"), "qa.Answer", "not among the option letters"),
    "answer of a missing option": (
        _qa(Options={"A": "x", "B": "y", "C": "z"}, Answer="D"), "qa.Answer", "not among the option letters"),
    "answer not a string": (_qa(Answer=1), "qa.Answer", "expected an option letter"),
    "unknown question type": (fb_row(question_type="hop4"), "question_type", "unknown question type 'hop4'"),
    "question type not a string": (fb_row(question_type=2), "question_type", "expected one of"),
    "options not an object": (_qa(Options=["rain", "sun"]), "qa.Options", "expected an object"),
    "bad option key": (_qa(Options={"A": "x", "Z": "y"}), "qa.Options", "unexpected option key 'Z'"),
    "empty option": (_qa(Options={"A": "x", "B": " "}), "qa.Options.B", "empty or whitespace-only"),
    "missing question": ({**fb_row(), "qa": {"Options": fb_row()["qa"]["Options"], "Answer": "A"}},
                         "qa.Question", "missing"),
    "qa not an object": (fb_row(qa="What?"), "qa", "expected an object"),
    "missing video file": (fb_row(video_path="videos/missing.mp4"), "video_path", "not found"),
    "empty video": (fb_row(video_path="videos/empty.mp4"), "video_path", "empty"),
}


@pytest.mark.parametrize("case", list(FB_BAD))
def test_futurebench_rejects(media: Path, case: str) -> None:
    bad, field, reason = FB_BAD[case]
    path = write_json(media / "fb_bad.json", [fb_row(id="g1"), bad, fb_row(id="g2")])
    check_both_modes(path, load_futurebench, "fb_1", field, reason, 2)


def test_futurebench_hf_dir_needs_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "fb_hf"
    d.mkdir()
    (d / "dataset_info.json").write_text("{}")
    (d / "state.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "datasets", None)  # make `import datasets` fail even where it is installed
    with pytest.raises(ImportError, match="pip install datasets"):
        load_futurebench(d)
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataFileError, match="not a Hugging Face"):
        load_futurebench(tmp_path / "plain")


# --- TwiFF-Bench ------------------------------------------------------------------------------------------------------


def tb_row(i: int, **over: Any) -> dict[str, Any]:
    row = {
        "question": "<image>What will the cat do?",
        "answer": "THOUGHT 0: It crouches.<rimage>THOUGHT 1: It jumps.<rimage>It lands.<answer>It jumps on the "
                  "table.</answer>",
        "question_images": [png_bytes(frame_colour(i))],
        "reasoning_images": [png_bytes(frame_colour(i + 1)), png_bytes(frame_colour(i + 2))],
        "question_image_indices": [0],
        "reasoning_image_indices": [3, 5],
        "meta_data": json.dumps({"id": f"tw_{i}", "source": "twiff"}),
    }
    row.update(over)
    return row


def write_shard(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_parse_reference_chain() -> None:
    chain, truth = parse_reference_chain("A.<rimage>B. <answer> yes </answer> trailing")
    assert (chain, truth) == ("A.<rimage>B.", "yes")
    with pytest.raises(ValueError):
        parse_reference_chain("no answer span here")


def test_twiffbench_shards_in_sorted_order(tmp_path: Path) -> None:
    d = tmp_path / "tb"
    write_shard(d / "test-00001-of-00002.parquet", [tb_row(2), tb_row(3)])
    write_shard(d / "test-00000-of-00002.parquet", [tb_row(0), tb_row(1)])
    res = load_twiffbench(d)
    assert [(x.doc_id, x.id) for x in res] == [(0, "tw_0"), (1, "tw_1"), (2, "tw_2"), (3, "tw_3")]
    item = res[2]
    assert isinstance(item, TwiffBenchItem) and item.source.endswith("test-00001-of-00002.parquet")
    assert item.question_text == "What will the cat do?"
    assert item.reference_chain == "THOUGHT 0: It crouches.<rimage>THOUGHT 1: It jumps.<rimage>It lands."
    assert item.reference_steps == ["It crouches.", "It jumps.", "It lands."]
    assert item.ground_truth == "It jumps on the table."
    assert item.indices == {"question_image_indices": (0,), "reasoning_image_indices": (3, 5)}
    assert item.meta_data == {"id": "tw_2", "source": "twiff"}
    assert np.asarray(item.question_pil_images()[0])[0, 0].tolist() == list(frame_colour(2))
    assert [np.asarray(im)[0, 0].tolist() for im in item.reasoning_pil_images()] == [
        list(frame_colour(3)), list(frame_colour(4))]
    assert len(load_twiffbench(d / "test-00000-of-00002.parquet")) == 2  # a single shard file works too


TB_BAD = {
    "no answer span": (dict(answer="It jumps.<rimage><rimage>"), "answer", "ending in <answer>"),
    "empty answer span": (dict(answer="a<rimage>b<rimage>c<answer> </answer>"), "answer", "empty text inside"),
    "rimage mismatch": (dict(answer="a<rimage>b<answer>x</answer>"), "answer",
                        "has 1 <rimage> marker(s) but 'reasoning_images' lists 2"),
    "image marker mismatch": (dict(question="<image><image>What?"), "question",
                              "has 2 <image> marker(s) but 'question_images' lists 1"),
    "corrupt image bytes": (dict(question_images=[b"garbage"]), "question_images[0]", "cannot decode image"),
    "empty question": (dict(question="<image>   "), "question", "no question text"),
}


@pytest.mark.parametrize("case", list(TB_BAD))
def test_twiffbench_rejects(tmp_path: Path, case: str) -> None:
    over, field, reason = TB_BAD[case]
    path = write_shard(tmp_path / "s.parquet", [tb_row(0), tb_row(1, **over), tb_row(2)])
    check_both_modes(path, load_twiffbench, "tw_1", field, reason, 2)
    assert [x.doc_id for x in load_twiffbench(path, on_error="skip")] == [0, 2]  # doc ids keep the row order


def test_twiffbench_missing_column(tmp_path: Path) -> None:
    rows = [{k: v for k, v in tb_row(i).items() if k != "question_images"} for i in range(2)]
    path = write_shard(tmp_path / "s.parquet", rows)
    res = load_twiffbench(path, on_error="skip")
    assert res.records == [] and [(r.record_id, r.field, r.reason) for r in res.rejects] == [
        ("tw_0", "question_images", "missing"), ("tw_1", "question_images", "missing")]


def test_twiffbench_path_errors(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="not found"):
        load_twiffbench(tmp_path / "nothing")
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(DataFileError, match=r"no \*\.parquet"):
        load_twiffbench(tmp_path / "emptydir")


def test_reject_str_and_result_sequence() -> None:
    r = Reject("a", "b", "c")
    assert str(r) == "record 'a': field 'b': c"
    res = LoadResult([1, 2], [r])
    assert list(res) == [1, 2] and len(res) == 2 and res[1] == 2
