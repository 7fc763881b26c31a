"""The one checkpoint module: layout, file records checked on resume, damaged checkpoints set aside, a full disk
explained, pruning that never outruns a save, the run identity a resume must match, and the model fingerprint."""

from __future__ import annotations

import errno
import json
from collections import namedtuple

import pytest
import torch

import fl1_core.checkpoints.save as save_module
from fl1_core.checkpoints import (
    STATE_FILE,
    DamagedCheckpointWarning,
    DiskFullError,
    NoIntactCheckpointError,
    ResumeMismatchError,
    checkpoint_dirs,
    checkpoint_path,
    latest_checkpoint,
    model_fingerprint,
    prune_checkpoints,
    resume_from,
    run_identity,
    save_checkpoint,
    verify_checkpoint,
)

IDENTITY = run_identity("test", {"lr": 0.1}, model_fingerprint="abc", data_fingerprint="def")


def _save(out, step, value=0.0, keep=2):
    net = torch.nn.Linear(4, 3)
    with torch.no_grad():
        net.weight.fill_(value)
    return save_checkpoint(out, step, identity=IDENTITY, progress={"cursor": step}, keep=keep,
                           tensors={"model.pt": net.state_dict(), "extra.pt": {"step": torch.tensor(step)}})


def _complete(path):
    path.mkdir(parents=True)
    (path / STATE_FILE).write_text("{}")


def test_layout_lists_complete_checkpoints_in_step_order(tmp_path):
    assert checkpoint_path(tmp_path, 12).name == "step-00000012"
    _complete(checkpoint_path(tmp_path, 100))
    _complete(checkpoint_path(tmp_path, 7))
    _complete(tmp_path / "checkpoints" / "step_000050")  # the earlier RL layout is not a checkpoint any more
    _complete(tmp_path / "checkpoints" / "step-00000300.damaged")
    checkpoint_path(tmp_path, 200).mkdir()  # no state file: not complete
    (tmp_path / "checkpoints" / ".step-00000400.tmp-1").mkdir()
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step-00000007", "step-00000100"]
    assert latest_checkpoint(tmp_path).name == "step-00000100"
    assert latest_checkpoint(tmp_path / "none") is None


def test_pruning_waits_for_the_new_checkpoint_and_keeps_the_newest(tmp_path):
    for step in (1, 2, 3):
        _complete(checkpoint_path(tmp_path, step))
    assert prune_checkpoints(tmp_path, keep=1, newest=checkpoint_path(tmp_path, 4)) == []  # step 4 not complete yet
    assert len(checkpoint_dirs(tmp_path)) == 3
    prune_checkpoints(tmp_path, keep=2, newest=checkpoint_path(tmp_path, 3))
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step-00000002", "step-00000003"]


def test_saved_files_are_recorded_and_verified(tmp_path):
    ckpt = _save(tmp_path, 1)
    state = json.loads((ckpt / STATE_FILE).read_text())
    assert state["step"] == 1 and state["identity"] == IDENTITY and state["progress"] == {"cursor": 1}
    assert set(state["files"]) == {"model.pt", "extra.pt"}
    assert state["files"]["model.pt"]["size"] == (ckpt / "model.pt").stat().st_size
    assert verify_checkpoint(ckpt) == []
    data = bytearray((ckpt / "model.pt").read_bytes())
    data[-30] ^= 0xFF  # same size, other bytes
    (ckpt / "model.pt").write_bytes(bytes(data))
    assert verify_checkpoint(ckpt) == [f"{ckpt / 'model.pt'}: its sha256 differs from the one recorded (the bytes "
                                       "changed)"]
    (ckpt / "extra.pt").unlink()
    assert any("extra.pt: missing" in p for p in verify_checkpoint(ckpt))
    (ckpt / STATE_FILE).write_text(json.dumps({"step": 1}))  # a state file without file records
    assert "cannot be checked" in verify_checkpoint(ckpt)[0]


def test_a_damaged_newest_checkpoint_is_set_aside_and_an_older_one_resumes(tmp_path):
    _save(tmp_path, 1, value=1.0)
    newest = _save(tmp_path, 2, value=2.0)
    weights = newest / "model.pt"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    with pytest.warns(DamagedCheckpointWarning, match=r"step-00000002/model\.pt: 100 bytes"):
        ckpt = resume_from(tmp_path, IDENTITY)
    assert ckpt.step == 1 and ckpt.progress == {"cursor": 1}
    assert torch.equal(ckpt.load("model.pt")["weight"], torch.full((3, 4), 1.0))
    assert (tmp_path / "checkpoints" / "step-00000002.damaged" / "model.pt").exists()  # kept, not deleted
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step-00000001"]


def test_no_intact_checkpoint_says_how_to_start_over(tmp_path):
    ckpt = _save(tmp_path, 1)
    (ckpt / "model.pt").write_bytes(b"")
    with pytest.warns(DamagedCheckpointWarning):
        with pytest.raises(NoIntactCheckpointError, match=r"no intact checkpoint.*remove the folder .*checkpoints"):
            resume_from(tmp_path, IDENTITY)
    assert resume_from(tmp_path / "fresh", IDENTITY) is None


def test_a_resume_with_another_identity_is_refused_key_by_key(tmp_path):
    _save(tmp_path, 1)
    other = run_identity("test", {"lr": 0.2}, model_fingerprint="xyz", data_fingerprint="def")
    with pytest.raises(ResumeMismatchError, match=r"(?s)config\.lr: checkpoint 0\.1 → now 0\.2.*model_fingerprint"):
        resume_from(tmp_path, other)


def _failing_save(exc):
    real = torch.save

    def save(obj, f, *args, **kwargs):
        if ".step-00000002.tmp-" in str(f):
            raise exc
        return real(obj, f, *args, **kwargs)

    return save


def test_enospc_while_saving_names_the_space_and_the_last_intact_checkpoint(tmp_path, monkeypatch):
    _save(tmp_path, 1, keep=1)
    monkeypatch.setattr(torch, "save", _failing_save(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(DiskFullError) as info:
        _save(tmp_path, 2, keep=1)
    msg = str(info.value)
    assert info.value.errno == errno.ENOSPC and "the disk is full" in msg and str(tmp_path / "checkpoints") in msg
    previous = sum(f.stat().st_size for f in checkpoint_path(tmp_path, 1).iterdir())  # > the tensors' bytes
    assert f"({previous:,} bytes)" in msg and previous > (3 * 4 + 3) * 4 + 8
    assert str(checkpoint_path(tmp_path, 1)) in msg and "re-run the same command" in msg
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-00000001"]  # nothing half-written


def test_torchs_write_failure_counts_as_a_full_disk_only_when_space_is_short(tmp_path, monkeypatch):
    failure = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1152 vs 1040")
    monkeypatch.setattr(torch, "save", _failing_save(failure))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(save_module.shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 16, 16))
    with pytest.raises(DiskFullError, match=r"16 bytes are free.*no earlier checkpoint"):
        _save(tmp_path, 2)
    monkeypatch.setattr(save_module.shutil, "disk_usage", lambda path: usage(10**12, 0, 10**12))
    with pytest.raises(RuntimeError, match="unexpected pos") as info:
        _save(tmp_path, 2)
    assert not isinstance(info.value, DiskFullError)
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_fingerprint_follows_the_weights_not_a_wrapper():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    wrapped = torch.nn.ModuleDict({"module": net})  # every name gets a "module." prefix, like DDP
    assert model_fingerprint(net) == model_fingerprint(wrapped)
    before = model_fingerprint(net)
    with torch.no_grad():
        net[0].weight[2, 1] += 1e-4
    assert model_fingerprint(net) != before
