"""The local workspace: model names follow AzureML's rules wherever they enter (no path traversal),
registration is atomic (a failed copy leaves no half version and does not burn a number), and
concurrent registrations get distinct versions."""

from __future__ import annotations

import errno
import json
import shutil
import threading
from pathlib import Path

import pytest

from functions.adapters.local.workspace import LocalModelRegistry, LocalWorkspace
from functions.shared.names import InvalidName, check_model_name
from functions.ports import PlatformError


@pytest.fixture()
def artifact(tmp_path) -> Path:
    folder = tmp_path / "artifact"
    folder.mkdir()
    (folder / "model_card.json").write_text(json.dumps({"model_name": "m"}))
    (folder / "model.joblib").write_bytes(b"x" * 4096)
    (folder / "reference.parquet").write_bytes(b"y" * 4096)
    return folder


@pytest.mark.parametrize("name", ["../../../escaped", "../x", "a/b", "/abs", ".hidden", "-dash", "_under", "ends.",
                                  "", "x" * 256, "sp ace", "back\\slash", "nul\x00"])
def test_names_azureml_refuses_are_refused_everywhere_and_nothing_is_written(tmp_path, artifact, name):
    home = tmp_path / "home"
    workspace = LocalWorkspace(home)
    with pytest.raises(InvalidName):
        check_model_name(name)
    with pytest.raises(PlatformError, match="is invalid"):
        workspace.register(artifact, name, emit=False)
    with pytest.raises(PlatformError, match="is invalid"):
        workspace.versions(name)
    assert workspace.get(name, "1") is None
    assert LocalModelRegistry(workspace, home).get_registry_model(name, "1") is None
    # nothing outside the workspace's models folder, nothing inside it either
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact", "home"]
    assert list(workspace.root.iterdir()) == []


@pytest.mark.parametrize("name", ["credit-card-default", "a", "A1", "m.v2_x-y", "9lives", "x" * 255])
def test_names_azureml_accepts_are_accepted(tmp_path, artifact, name):
    ref, payload = LocalWorkspace(tmp_path / "home").register(artifact, name, emit=False)
    assert (ref.name, ref.version) == (name, "1") and payload[0]["subject"] == f"models/{name}:1"


def test_a_copy_that_fails_midway_leaves_no_version_and_the_next_one_is_still_1(tmp_path, artifact, monkeypatch):
    workspace = LocalWorkspace(tmp_path / "home")
    real_copy = shutil.copyfile
    copied = []

    def disk_full_after_one_file(src, dst, *args, **kwargs):
        if copied:
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        copied.append(dst)
        return real_copy(src, dst, *args, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", disk_full_after_one_file)  # what copytree's copy2 writes with
    with pytest.raises(PlatformError, match="No space left on device") as caught:
        workspace.register(artifact, "m", emit=False)
    assert caught.value.transient is True
    assert copied, "the failure must have struck mid-copy"
    assert workspace.versions("m") == [] and list((workspace.root / "m").iterdir()) == []  # no half version

    monkeypatch.setattr(shutil, "copyfile", real_copy)
    ref, _ = workspace.register(artifact, "m", emit=False)
    assert ref.version == "1"
    assert sorted(p.name for p in Path(ref.uri).iterdir()) == [".modelops-model.json", "model.joblib",
                                                                 "model_card.json", "reference.parquet"]


def test_a_half_version_left_by_an_older_writer_is_reclaimed(tmp_path, artifact):
    workspace = LocalWorkspace(tmp_path / "home")
    workspace.register(artifact, "m", emit=False)
    half = workspace.root / "m" / "2"
    half.mkdir()
    (half / "model.joblib").write_bytes(b"partial")  # no metadata: it never finished
    ref, _ = workspace.register(artifact, "m", emit=False)
    assert ref.version == "2" and (Path(ref.uri) / "model_card.json").is_file()


def test_concurrent_registrations_get_distinct_consecutive_versions(tmp_path, artifact):
    workspace = LocalWorkspace(tmp_path / "home")
    barrier = threading.Barrier(8)
    versions: list[str] = []
    lock = threading.Lock()

    def register() -> None:
        barrier.wait()
        ref, _ = workspace.register(artifact, "m", emit=False)
        with lock:
            versions.append(ref.version)

    threads = [threading.Thread(target=register) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(versions, key=int) == [str(i) for i in range(1, 9)]
    assert workspace.versions("m") == [str(i) for i in range(1, 9)]


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "missing", "no such folder"),
    (lambda tmp: (tmp / "file.txt").write_text("x") and tmp / "file.txt", "is a file"),
    (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "no model_card.json"),
])
def test_what_is_not_an_artifact_is_refused_with_the_reason(tmp_path, make, message):
    with pytest.raises(PlatformError, match=message):
        LocalWorkspace(tmp_path / "home").register(make(tmp_path), "m", emit=False)


def test_refs_say_whether_the_version_is_an_mlflow_model_as_azureml_would(tmp_path, artifact):
    mlflow_folder = tmp_path / "mlflow-model"
    mlflow_folder.mkdir()
    (mlflow_folder / "MLmodel").write_text("flavors: {}\n")
    ws = LocalWorkspace(tmp_path / "home")
    card, _ = ws.register(artifact, "m", emit=False)
    flow, _ = ws.register(mlflow_folder, "m", emit=False)
    assert (card.model_type, flow.model_type) == ("custom_model", "mlflow_model")
    assert ws.get("m", flow.version).model_type == "mlflow_model"
    registry = LocalModelRegistry(ws, tmp_path / "home")
    assert registry.promote(flow, {}).model_type == "mlflow_model"
    assert registry.get_registry_model("m", flow.version).model_type == "mlflow_model"


def test_a_local_no_code_deployment_of_a_model_that_is_not_mlflow_is_refused_as_in_azureml(tmp_path, artifact):
    from functions.adapters.local.endpoints import LocalEndpoints
    from functions.ports import DeploymentSpec, ModelRef

    eps = LocalEndpoints(tmp_path / "home", tmp_path / "no-python")
    try:
        ref = ModelRef("m", "1", str(artifact), model_type="custom_model")
        with pytest.raises(PlatformError, match="needs an mlflow_model model, and m:1 is of type custom_model"):
            eps.begin_create_deployment(DeploymentSpec("m-staging", "m-v1", ref, no_code=True))
    finally:
        eps.close()
