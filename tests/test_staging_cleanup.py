"""Cost: the staging deployment of a version that reached production or was rejected is scaled to
its minimum or deleted (ModelConfig.staging_cleanup) — on the workflow with the in-memory fakes,
and on the wire against tests/fake_arm for the AzureML adapter (the PUT that scales). Also on the
fake ARM: who registered a model version (the self-approval rule's registered_by)."""

from __future__ import annotations

import pytest

from functions.domain.config import ConfigError, deployment_name, load_managed_models
from tests.test_workflow import GOOD, MODEL, Harness, _score_contract  # noqa: F401 (autouse fixture)
from tests.test_azure_aml_adapter import (  # noqa: F401 (fixtures)
    credential, endpoints, escaped, fake, live_endpoint, ml, spec)


def test_the_default_scales_a_promoted_versions_staging_deployment_to_one_instance():
    h = Harness({"1": GOOD}, {"instance_count": 3})
    out = h.roll("1")
    dep = deployment_name(MODEL, "1")
    assert out["state"] == "succeeded"
    assert h.staging.scaled == [(h.config.staging_endpoint, dep, 1)]
    assert h.staging.live(h.config.staging_endpoint) == {dep: 100}  # still serves the newest validated version
    [cleanup] = [r for r in h.rollouts.trail(MODEL, out["id"]) if r["step"] == "staging_cleanup"]
    assert cleanup["details"]["done"] == "scaled" and cleanup["details"]["instance_count"] == 1


def test_delete_removes_the_staging_deployment_of_a_rejected_version_too():
    h = Harness({"1": GOOD}, {"staging_cleanup": "delete", "approval_required": True})
    out = h.roll("1", approve={"approved": False, "by": "ann", "comment": "not today"})
    assert out["state"] == "rejected"
    assert h.staging.deleted == [(h.config.staging_endpoint, deployment_name(MODEL, "1"))]
    assert "staging_cleanup" in h.steps(out)


def test_keep_and_a_deployment_already_at_its_minimum_leave_staging_alone():
    for overrides in ({"staging_cleanup": "keep", "instance_count": 3}, {}):
        h = Harness({"1": GOOD}, overrides)
        out = h.roll("1")
        assert out["state"] == "succeeded" and h.staging.scaled == [] and h.staging.deleted == []
        assert "staging_cleanup" not in h.steps(out)


def test_an_unknown_cleanup_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="staging_cleanup must be one of scale_to_min, delete, keep"):
        load_managed_models('{"m": {"staging_cleanup": "shrink"}}')


def test_scaling_on_the_wire_puts_the_deployment_back_with_capacity_one(fake, endpoints):
    endpoints.begin_create_endpoint("ccd-staging")
    fake.settle()
    endpoints.begin_create_deployment(spec("blue-v3", instance_count=3))
    fake.settle()
    fake.reset_calls()
    assert endpoints.scale_deployment("ccd-staging", "blue-v3", 1) == 1
    fake.settle()
    puts = [c for c in fake.calls if c.method == "PUT"]
    assert len(puts) == 1 and puts[0].path.endswith("/onlineEndpoints/ccd-staging/deployments/blue-v3")
    assert puts[0].body["sku"]["capacity"] == 1
    assert fake.deployments[("ccd-staging", "blue-v3")]["sku"]["capacity"] == 1
    fake.reset_calls()
    assert endpoints.scale_deployment("ccd-staging", "blue-v3", 1) == 1  # already there: no write
    assert [c for c in fake.calls if c.method == "PUT"] == []


def test_who_registered_a_workspace_model_is_read_from_its_system_data(fake, ml):
    """ARM systemData.createdBy of the model version (azure-ai-ml: creation_context.created_by)
    names who registered it: the self-approval refusal compares it with the approver."""
    from functions.adapters.azure.aml import AzureModelRegistry
    from tests.test_azure_aml_adapter import MODEL as AML_MODEL, WS_ARM

    body = fake.add_workspace_model(AML_MODEL, "3")
    body["systemData"]["createdBy"] = "ann@contoso.com"
    registry = AzureModelRegistry(ml, lambda: None, WS_ARM)
    assert registry.get_workspace_model(AML_MODEL, "3").registered_by == "ann@contoso.com"
