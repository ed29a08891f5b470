"""Jobs in the fake ARM / AzureML service.

  jobs            GET|PUT …/workspaces/W/jobs/J (PUT 201 creates with status NotStarted; a PUT on an
                          existing name is 200 when only description/tags/displayName/properties/
                          isArchived differ, else 400 UserError "A job with this name already exists")
                  GET     …/workspaces/W/jobs (list; honours `tag` (key present), `jobType`,
                          `listViewType`; newest first; pages of `job_page_size` with nextLink)

Jobs are not long-running operations: they stay in the status the PUT gave them until a test moves
them (`set_job_status`, or `add_job(status=...)`), to any status of the service's JobStatus enum
(azure-ai-ml _restclient/arm_ml_service/models/_enums.py: NotStarted … Paused, NotResponding,
Unknown) and no other: a test cannot put a job in a state the service never reports. Components referenced by a job are not checked (tests assert the
`componentId` a node sends against the ids components.py serves).
"""

from __future__ import annotations

import copy
import re
from typing import Any
from urllib.parse import urlencode

from tests.fake_arm.resources import WORKSPACE, _system_data, _ws_prefix
from tests.fake_arm.transport import Call, _error, _Reply


class Jobs:
    """Jobs as the service keeps them: created, updated in place, listed (part of `FakeAzureML`)."""

    jobs: dict[str, dict]
    job_page_size: int | None

    def add_job(self, name: str, *, status: str = "Running", tags: dict[str, str] | None = None,
                job_type: str = "Pipeline", experiment: str = "Default", archived: bool = False) -> dict:
        """A job submitted by someone else (minimal body the SDK can parse)."""
        props: dict[str, Any] = {"jobType": job_type, "displayName": name, "experimentName": experiment,
                                 "tags": dict(tags or {}), "properties": {}, "isArchived": archived,
                                 "inputs": {}, "outputs": {}, "jobs": {}, "settings": {}}
        if job_type != "Pipeline":
            props = {"jobType": job_type, "displayName": name, "experimentName": experiment, "tags": dict(tags or {}),
                     "properties": {}, "isArchived": archived, "command": "echo", "environmentId":
                     f"{_ws_prefix(WORKSPACE)}/environments/env/versions/1", "computeId": None}
        _check_status(status)
        with self._lock:
            return copy.deepcopy(self._store_job(name, props, status))

    def set_job_status(self, name: str, status: str) -> None:
        _check_status(status)
        with self._lock:
            self.jobs[name]["properties"]["status"] = status

    def _job_routes(self, c: Call, rest: str) -> None:
        if rest == "/jobs" and c.method == "GET":
            self._job_list(c)
        m = re.fullmatch(r"/jobs/([^/]+)", rest)
        if m and c.method == "GET":
            job = self.jobs.get(m.group(1))
            if job is None:
                raise _error(404, "UserError", f"Job {m.group(1)} not found.")
            raise _Reply(200, copy.deepcopy(job))
        if m and c.method == "PUT":
            self._job_put(c, m.group(1))

    # What a PUT may change on an existing job (the service's own list, from its error message).
    _JOB_MUTABLE = frozenset({"description", "tags", "displayName", "properties", "isArchived"})

    def _store_job(self, name: str, props: dict, status: str) -> dict:
        props = copy.deepcopy(props)
        props["status"] = status
        props.setdefault("experimentName", "Default")
        studio = f"https://ml.azure.com/runs/{name}?wsid={_ws_prefix(WORKSPACE)}"  # the SDK appends &tid=
        # The service's answer as recorded (azure-sdk-for-python pipeline_job recording
        # test_pipeline_job_create, tests/payloads/recorded/aml-pipeline-job.json): every service entry
        # with its null fields, the nullable job fields present, systemData without lastModified*.
        unset = {"port": None, "status": None, "errorMessage": None, "properties": None, "nodes": None}
        props["services"] = {
            "Tracking": {"jobServiceType": "Tracking", **unset,
                         "endpoint": f"azureml://{self.location}.api.azureml.ms/mlflow/v1.0{_ws_prefix(WORKSPACE)}?"},
            "Studio": {"jobServiceType": "Studio", **unset, "endpoint": studio},
        }
        for nullable in ("computeId", "componentId", "identity", "sourceJobId"):
            props.setdefault(nullable, None)
        created = {k: v for k, v in _system_data().items() if not k.startswith("lastModified")}
        stored = {"id": f"{_ws_prefix(WORKSPACE)}/jobs/{name}", "name": name,
                  "type": "Microsoft.MachineLearningServices/workspaces/jobs", "properties": props,
                  "systemData": {**created, "createdAt": f"2026-01-01T00:00:{len(self.jobs) % 60:02d}Z"}}
        self.jobs[name] = stored
        return stored

    def _job_put(self, c: Call, name: str) -> None:
        body = c.body if isinstance(c.body, dict) else {}
        props = body.get("properties") or {}
        existing = self.jobs.get(name)
        if existing is None:
            location = f"https://{c.host}{c.path}?api-version={c.api_version}"  # as recorded: the job's own URL
            raise _Reply(201, copy.deepcopy(self._store_job(name, props, "NotStarted")), {"Location": location})
        old = existing["properties"]
        ignore = self._JOB_MUTABLE | {"status", "services"}
        if {k: v for k, v in props.items() if k not in ignore} != {k: v for k, v in old.items() if k not in ignore}:
            raise _error(400, "UserError", "A job with this name already exists. If you are trying to create a new "
                         "job, use a different name. If you are trying to update an existing job, the existing "
                         "job's Settings, Inputs, Outputs, Jobs, InputBindings, OutputBindings cannot be changed. "
                         "Only description, tags, displayName, properties, and isArchived can be updated.")
        for key in self._JOB_MUTABLE & set(props):
            old[key] = copy.deepcopy(props[key])
        raise _Reply(200, copy.deepcopy(existing))

    def _job_list(self, c: Call) -> None:
        tag = (c.query.get("tag") or [None])[0]
        job_type = (c.query.get("jobType") or [None])[0]
        view = (c.query.get("listViewType") or ["ActiveOnly"])[0]
        items = []
        for job in reversed(list(self.jobs.values())):  # newest first
            props = job["properties"]
            if tag is not None and tag not in (props.get("tags") or {}):
                continue
            if job_type is not None and props.get("jobType") != job_type:
                continue
            archived = bool(props.get("isArchived"))
            if (view == "ActiveOnly" and archived) or (view == "ArchivedOnly" and not archived):
                continue
            items.append(copy.deepcopy(job))
        skip = int((c.query.get("$skip") or ["0"])[0])
        size = self.job_page_size or len(items) or 1
        page: dict[str, Any] = {"value": items[skip:skip + size]}
        if skip + size < len(items):
            query = urlencode({**{k: v[0] for k, v in c.query.items()}, "$skip": str(skip + size)})
            page["nextLink"] = f"https://{c.host}{c.path}?{query}"
        raise _Reply(200, page)


def _check_status(status: str) -> None:
    from azure.ai.ml._restclient.arm_ml_service.models import JobStatus

    known = [s.value for s in JobStatus]
    if status not in known:
        raise ValueError(f"{status!r} is not a status the service reports (JobStatus: {', '.join(known)})")
