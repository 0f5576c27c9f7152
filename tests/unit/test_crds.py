"""The generated CRDs: fresh, valid apiextensions.k8s.io/v1 objects, structural, useful."""

from pathlib import Path

import celpy
import kubernetes_validate
import pytest
import yaml

from hearth import crd as crdgen
from hearth.api import RESOURCE_CLASSES

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"
KUBERNETES_VERSION = "1.35.0"  # the kubectl the project installs
CRD_FILES = sorted(CRD_DIR.glob("hearth.dev_*.yaml"))


def load(path):
    return yaml.safe_load(path.read_text())


def schema_of(crd):
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def walk(node, path="<root>"):
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}[*]")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")


def test_crds_are_fresh():
    """Fails when sdk/hearth/api changed without `make generate`."""
    assert crdgen.stale_files(CRD_DIR) == []


def test_one_crd_per_kind():
    kinds = sorted(load(p)["spec"]["names"]["kind"] for p in CRD_FILES)
    assert kinds == sorted(
        [
            "Account",
            "User",
            "ApiKey",
            "Model",
            "Deployment",
            "DeployedModel",
            "Dataset",
            "FineTuningJob",
        ]
    )
    assert len(RESOURCE_CLASSES) == 8


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_crd_is_a_valid_apiextensions_v1_object(path):
    kubernetes_validate.validate(load(path), KUBERNETES_VERSION, strict=True)


def test_the_validator_catches_a_broken_crd():
    broken = load(CRD_FILES[0])
    broken["spec"]["scope"] = 5
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_schema_is_structural(path):
    problems = []
    for where, node in walk(schema_of(load(path))):
        if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            problems.append(f"{where}: no type")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{where}: properties and additionalProperties together")
        if node.get("additionalProperties") is False:
            problems.append(f"{where}: additionalProperties false")
        for forbidden in ("$ref", "anyOf", "oneOf", "allOf", "nullable", "title"):
            if forbidden in node:
                problems.append(f"{where}: {forbidden}")
    assert problems == []


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_every_top_level_field_is_described(path):
    """kubectl explain must say what each spec and status field is."""
    properties = schema_of(load(path))["properties"]
    undocumented = [
        where
        for top in ("spec", "status")
        for where, node in walk(properties[top], top)
        if where.count(".") == 1 and not where.endswith(("[]", "[*]"))
        if not node.get("description")
    ]
    assert undocumented == []


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_cel_rules_compile_and_name_a_message(path):
    environment = celpy.Environment()
    for where, node in walk(schema_of(load(path))):
        for entry in node.get("x-kubernetes-validations", []):
            environment.compile(entry["rule"])  # raises on a syntax error
            assert entry["message"], f"{where}: rule without message"
            if "oldSelf" in entry["rule"]:
                assert where != "<root>", "transition rules cannot sit at the object root"


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_rule_field_paths_name_fields_of_the_schema(path):
    """The API server refuses a CRD whose fieldPath does not resolve in the schema."""
    unresolved = []
    for where, node in walk(schema_of(load(path))):
        for entry in node.get("x-kubernetes-validations", []):
            field_path = entry.get("fieldPath")
            if not field_path:
                continue
            target = node
            for part in field_path.removeprefix(".").split("."):
                target = target.get("properties", {}).get(part)
                if target is None:
                    unresolved.append(f"{where}: {field_path}")
                    break
    assert unresolved == []


def test_metadata_declares_only_name():
    """A CRD may describe only metadata.name (and generateName); ID rules report there."""
    for path in CRD_FILES:
        metadata = schema_of(load(path))["properties"]["metadata"]
        assert metadata == {"type": "object", "properties": {"name": {"type": "string"}}}
        root_rules = schema_of(load(path))["x-kubernetes-validations"]
        assert {rule["fieldPath"] for rule in root_rules} == {".metadata.name"}


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_defaults_are_valid_for_their_node(path):
    from jsonschema import Draft4Validator

    for where, node in walk(schema_of(load(path))):
        if "default" in node:
            errors = list(Draft4Validator(node).iter_errors(node["default"]))
            assert errors == [], f"{where}: default {node['default']!r} violates its schema"


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_names_subresources_and_columns(path):
    crd = load(path)
    spec = crd["spec"]
    version = spec["versions"][0]
    assert crd["metadata"]["name"] == f"{spec['names']['plural']}.hearth.dev"
    assert spec["group"] == "hearth.dev" and version["name"] == "v1alpha1"
    assert version["served"] and version["storage"]
    assert spec["names"]["categories"] == ["hearth"]
    assert spec["names"]["shortNames"]
    assert version["subresources"]["status"] == {}
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert "State" in columns and columns["Age"]["type"] == "date"
    properties = schema_of(crd)["properties"]
    for column in columns.values():
        if column["jsonPath"].startswith(".metadata"):
            continue
        node = {"properties": properties}
        for part in column["jsonPath"].strip(".").split("."):
            assert part in node.get("properties", {}), f"{column['jsonPath']} not in schema"
            node = node["properties"][part]
        expected = {"integer": "integer", "number": "number", "boolean": "boolean"}
        assert node["type"] == expected.get(column["type"], "string"), column["name"]


def test_scope_and_scale_subresource():
    by_kind = {load(p)["spec"]["names"]["kind"]: load(p) for p in CRD_FILES}
    assert by_kind["Account"]["spec"]["scope"] == "Cluster"
    assert {k for k, c in by_kind.items() if c["spec"]["scope"] == "Namespaced"} == {
        "User",
        "ApiKey",
        "Model",
        "Deployment",
        "DeployedModel",
        "Dataset",
        "FineTuningJob",
    }
    scale = by_kind["Deployment"]["spec"]["versions"][0]["subresources"]["scale"]
    assert scale == {
        "specReplicasPath": ".spec.replicaCount",
        "statusReplicasPath": ".status.replicaCount",
        "labelSelectorPath": ".status.selector",
    }
    others = [k for k, c in by_kind.items() if "scale" in c["spec"]["versions"][0]["subresources"]]
    assert others == ["Deployment"]


def test_short_names_are_unique_and_avoid_builtin_kinds():
    builtin = {"deploy", "po", "svc", "cm", "ns", "pvc", "pv", "sa", "ds", "job", "sts", "rs"}
    seen = []
    for path in CRD_FILES:
        seen += load(path)["spec"]["names"]["shortNames"]
    assert len(seen) == len(set(seen))
    assert not set(seen) & builtin


def test_status_conditions_are_a_map_list_keyed_by_type():
    for path in CRD_FILES:
        conditions = schema_of(load(path))["properties"]["status"]["properties"]["conditions"]
        assert conditions["x-kubernetes-list-type"] == "map"
        assert conditions["x-kubernetes-list-map-keys"] == ["type"]
        item = conditions["items"]
        assert set(item["required"]) >= {"type", "status", "reason", "lastTransitionTime"}
        assert "observedGeneration" in item["properties"]


def test_generation_is_deterministic(tmp_path):
    crdgen.write(tmp_path)
    first = {p.name: p.read_text() for p in tmp_path.iterdir()}
    (tmp_path / "hearth.dev_gadgets.yaml").write_text("stale")
    crdgen.write(tmp_path)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == first


def test_check_mode_reports_drift(tmp_path, capsys):
    crdgen.write(tmp_path)
    assert crdgen.main(["--check", str(tmp_path)]) == 0
    target = tmp_path / "hearth.dev_models.yaml"
    target.write_text(target.read_text().replace("LoRA", "LORA"))
    assert crdgen.main(["--check", str(tmp_path)]) == 1
    assert "hearth.dev_models.yaml: differs" in capsys.readouterr().err
