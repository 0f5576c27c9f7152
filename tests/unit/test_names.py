"""The Fireworks ID rule, resource names and inference-time model strings."""

import pytest

from hearth import names
from hearth.names import InvalidNameError, ModelReference, ResourceName

VALID_IDS = [
    "a",
    "z9",
    "my-model",
    "a-b-c",
    "a1",
    "llama-3-8b",
    "a" * 63,
    "a" + "-" * 61 + "b",
    "x0-0",
]

# (value, words the error must contain)
INVALID_IDS = [
    ("", "must not be empty"),
    ("a" * 64, "64 characters long; IDs are at most 63"),
    ("a" * 200, "at most 63"),
    ("1abc", "must not start with a digit"),
    ("9", "must not start with a digit"),
    ("-abc", "must not start with '-'"),
    ("abc-", "must not end with '-'"),
    ("-", "must not start with '-'"),
    ("Abc", "'A' at position 0"),
    ("abC", "(IDs are lowercase)"),
    ("my_model", "'_' at position 2"),
    ("my.model", "'.' at position 2"),
    ("my model", "' ' at position 2"),
    ("mödel", "'ö' at position 1"),
    ("a/b", "'/' at position 1"),
]


@pytest.mark.parametrize("value", VALID_IDS)
def test_valid_ids_pass(value):
    names.validate_id(value)


@pytest.mark.parametrize(("value", "expected"), INVALID_IDS)
def test_invalid_ids_name_the_rule(value, expected):
    with pytest.raises(InvalidNameError) as caught:
        names.validate_id(value)
    assert expected in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_non_string_id_is_a_value_error():
    with pytest.raises(ValueError, match="must be a string"):
        names.validate_id(42)  # type: ignore[arg-type]


def test_63_is_the_boundary():
    names.validate_id("m" * 63)
    with pytest.raises(InvalidNameError, match="at most 63"):
        names.validate_id("m" * 64)


PARSED = [
    ("accounts/acme", "acme", "accounts", "acme", "Account", None, "acme"),
    ("accounts/acme/models/m1", "acme", "models", "m1", "Model", "acme", "m1"),
    ("accounts/acme/deployments/d", "acme", "deployments", "d", "Deployment", "acme", "d"),
    ("accounts/a/deployedModels/x-1", "a", "deployedModels", "x-1", "DeployedModel", "a", "x-1"),
    ("accounts/a/datasets/chats", "a", "datasets", "chats", "Dataset", "a", "chats"),
    (
        "accounts/a/supervisedFineTuningJobs/job-1",
        "a",
        "supervisedFineTuningJobs",
        "job-1",
        "FineTuningJob",
        "a",
        "job-1",
    ),
    ("accounts/a/users/alice", "a", "users", "alice", "User", "a", "alice"),
]


@pytest.mark.parametrize(
    ("name", "account", "collection", "id_", "kind", "namespace", "object_name"), PARSED
)
def test_parse_maps_to_kubernetes_objects(
    name, account, collection, id_, kind, namespace, object_name
):
    parsed = names.parse(name)
    assert (parsed.account, parsed.collection, parsed.id) == (account, collection, id_)
    assert (parsed.kind, parsed.namespace, parsed.name) == (kind, namespace, object_name)
    assert str(parsed) == name
    assert names.format_name(parsed.account, parsed.collection, parsed.id) == name


@pytest.mark.parametrize(("name", "_a", "_c", "_i", "kind", "namespace", "object_name"), PARSED)
def test_for_object_is_the_inverse_of_parse(name, _a, _c, _i, kind, namespace, object_name):
    assert str(ResourceName.for_object(kind, object_name, namespace)) == name


INVALID_NAMES = [
    ("", "must look like"),
    ("acme", "must look like"),
    ("accounts", "must look like"),
    ("accounts/", "must not be empty"),
    ("accounts/acme/", "must look like"),
    ("accounts/acme/models", "must look like"),
    ("accounts/acme/models/", "must not be empty"),
    ("accounts/acme/models/m/extra", "must look like"),
    ("/accounts/acme/models/m", "must look like"),
    ("account/acme/models/m", "must look like"),
    ("accounts/acme/gadgets/g", "unknown collection 'gadgets'"),
    ("accounts/acme/deployed-models/x", "unknown collection 'deployed-models'"),
    ("accounts/acme/Models/m", "unknown collection 'Models'"),
    ("accounts/Acme/models/m", "account ID 'Acme'"),
    ("accounts/acme/models/My-Model", "Model ID 'My-Model'"),
    ("accounts/acme/models/1model", "must not start with a digit"),
    ("accounts/acme/deployments/d-", "must not end with '-'"),
    ("accounts/acme/models/" + "m" * 64, "at most 63"),
    ("accounts/default", "reserved"),
    ("accounts/kube-system/models/m", "reserved"),
    ("accounts/kube-public", "reserved"),
    ("accounts/hearth-system", "reserved"),
]


@pytest.mark.parametrize(("name", "expected"), INVALID_NAMES)
def test_parse_rejects_with_a_clear_message(name, expected):
    with pytest.raises(ValueError) as caught:
        names.parse(name)
    assert expected in str(caught.value)


def test_operator_namespace_is_reserved_and_configurable(monkeypatch):
    with pytest.raises(InvalidNameError, match="reserved"):
        names.validate_account_id("platform", operator_namespace="platform")
    monkeypatch.setenv("HEARTH_OPERATOR_NAMESPACE", "llm-ops")
    with pytest.raises(InvalidNameError, match="reserved"):
        names.parse("accounts/llm-ops")
    # With the operator elsewhere, hearth-system is an ordinary name.
    assert names.parse("accounts/hearth-system").account == "hearth-system"


@pytest.mark.parametrize("account", ["kube", "kubeflow", "defaults", "my-default", "hearth"])
def test_near_misses_of_reserved_names_are_fine(account):
    names.validate_account_id(account)


def test_for_object_rejects_unknown_kinds_and_missing_namespace():
    with pytest.raises(InvalidNameError, match="unknown kind 'Pod'"):
        ResourceName.for_object("Pod", "p", "acme")
    with pytest.raises(InvalidNameError, match="namespace"):
        ResourceName.for_object("Model", "m", None)


MODEL_REFERENCES = [
    ("accounts/acme/models/m", "accounts/acme/models/m", None, None),
    (
        "accounts/acme/models/m#accounts/acme/deployments/d",
        "accounts/acme/models/m",
        "accounts/acme/deployments/d",
        None,
    ),
    (
        "hearth/smollm2#acme/d1",
        "accounts/hearth/models/smollm2",
        "accounts/acme/deployments/d1",
        None,
    ),
    (
        "accounts/hearth/models/smollm2#acme/d1",
        "accounts/hearth/models/smollm2",
        "accounts/acme/deployments/d1",
        None,
    ),
    ("accounts/acme/deployedModels/m-abc123", None, None, "accounts/acme/deployedModels/m-abc123"),
]


@pytest.mark.parametrize(("value", "model", "deployment", "deployed_model"), MODEL_REFERENCES)
def test_model_references(value, model, deployment, deployed_model):
    reference = names.parse_model_reference(value)
    assert (str(reference.model) if reference.model else None) == model
    assert (str(reference.deployment) if reference.deployment else None) == deployment
    assert (str(reference.deployed_model) if reference.deployed_model else None) == deployed_model


def test_model_reference_formats_back():
    full = "accounts/acme/models/m#accounts/acme/deployments/d"
    assert str(names.parse_model_reference(full)) == full
    # The short form formats as the full one.
    assert str(names.parse_model_reference("acme/m#acme/d")) == full
    assert isinstance(names.parse_model_reference(full), ModelReference)


INVALID_REFERENCES = [
    ("", "non-empty"),
    ("smollm2", "must look like"),
    ("acme/m", "must look like"),
    ("accounts/acme/deployments/d", "must name a model"),
    ("accounts/acme/datasets/x", "must name a model"),
    ("accounts/acme", "must name a model"),
    ("acme/m#acme/d#x", "at most one '#'"),
    ("acme/m#", "short form"),
    ("#acme/d", "short form"),
    ("acme/m#accounts/acme/models/x", "expected 'deployments'"),
    ("accounts/acme/deployedModels/x#acme/d", "expected 'models'"),
    ("Acme/m#acme/d", "account ID 'Acme'"),
    ("acme/m_1#acme/d", "'_'"),
    ("default/m#default/d", "reserved"),
]


@pytest.mark.parametrize(("value", "expected"), INVALID_REFERENCES)
def test_invalid_model_references(value, expected):
    with pytest.raises(ValueError) as caught:
        names.parse_model_reference(value)
    assert expected in str(caught.value)
