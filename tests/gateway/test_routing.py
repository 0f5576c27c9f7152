"""Routing of every model-name form across accounts, access rules, and balancing (pure)."""

from __future__ import annotations

import random

import pytest

from hearth_gateway.cluster.state import ClusterState
from hearth_gateway.routing import (
    NOT_FOUND_MESSAGE,
    Replica,
    RoutingError,
    choose_replica,
    reachable_models,
    resolve,
)
from hearth_operator.constants import adapter_annotation
from tests.gateway import factories as f

PLATFORM = "hearth"


def world() -> ClusterState:
    acme_dep = f.deployment("acme", "smol-dep", "smol", enableAddons=True, minReplicaCount=1)
    second = f.deployment("acme", "smol-second", "smol")
    shared = f.deployment(PLATFORM, "shared", "base", serverless=True)
    beta_dep = f.deployment("beta", "bdep", "accounts/hearth/models/base")
    loaded = {adapter_annotation("pirate-dm"): "abc123.0"}
    stale = {adapter_annotation("pirate-dm"): "abc123.0"}
    return ClusterState.of(
        [
            f.account(PLATFORM),
            f.account("acme"),
            f.account("beta"),
            f.model(PLATFORM, "base"),
            f.model("acme", "smol"),
            f.model("acme", "pirate", addon_of="smol"),
            acme_dep,
            second,
            shared,
            beta_dep,
            f.api_token_secret(acme_dep, "acme-token"),
            f.deployed_model("acme", "smol-main", "smol", "smol-dep", default=True),
            f.deployed_model("acme", "smol-2nd", "smol", "smol-second"),
            f.deployed_model("acme", "pirate-dm", "pirate", "smol-dep", default=True),
            f.deployed_model("acme", "broken", "pirate", "smol-second", state="FAILED"),
            f.deployed_model(
                PLATFORM, "base-shared", "base", "shared", default=True, serverless=True
            ),
            f.deployed_model("beta", "b-private", "accounts/hearth/models/base", "bdep"),
            f.deployed_model("acme", "smol-public", "smol", "smol-second", public=True),
            f.pod("acme", "smol-dep", "p0", "127.0.1.1", annotations=loaded),
            f.pod("acme", "smol-dep", "p1", "127.0.1.2"),
            f.pod("acme", "smol-dep", "p2", "127.0.1.3", ready=False),
            # Restarted since the adapter was loaded: the server forgot it.
            f.pod("acme", "smol-dep", "p3", "127.0.1.4", restarts=1, annotations=stale),
            f.pod("acme", "smol-second", "s0", "127.0.2.1"),
            f.pod(PLATFORM, "shared", "h0", "127.0.3.1"),
        ]
    )


@pytest.mark.parametrize(
    ("model", "deployment", "deployed_model"),
    [
        ("accounts/acme/models/smol", "smol-dep", "smol-main"),
        ("accounts/acme/models/smol#accounts/acme/deployments/smol-second", "smol-second", None),
        ("acme/smol#acme/smol-second", "smol-second", None),
        ("acme/smol#acme/smol-dep", "smol-dep", "smol-main"),
        ("accounts/acme/deployedModels/smol-2nd", "smol-second", "smol-2nd"),
    ],
)
def test_every_model_form_reaches_its_deployment(
    model: str, deployment: str, deployed_model: str | None
) -> None:
    route = resolve(model, "acme", world(), platform_account=PLATFORM)
    assert route.deployment == f"accounts/acme/deployments/{deployment}"
    assert route.served_name == "accounts/acme/models/smol"
    assert not route.serverless and not route.addon
    if deployed_model:
        assert route.deployed_model == f"accounts/acme/deployedModels/{deployed_model}"


def test_ready_replicas_token_and_counts() -> None:
    route = resolve("accounts/acme/models/smol", "acme", world(), platform_account=PLATFORM)
    # p2 is not ready; base models are "loaded" everywhere.
    assert [r.address for r in route.replicas] == [
        "127.0.1.1:8000",
        "127.0.1.2:8000",
        "127.0.1.4:8000",
    ]
    assert route.api_token == "acme-token"
    assert (route.desired_replicas, route.min_replicas) == (1, 1)


def test_an_addon_is_routed_by_its_adapter_name_to_replicas_holding_it() -> None:
    route = resolve("accounts/acme/models/pirate", "acme", world(), platform_account=PLATFORM)
    assert route.addon
    assert route.served_name == "accounts/acme/models/pirate"
    assert [r.pod for r in route.usable] == ["p0"], "p1 never loaded it, p3 restarted since"
    assert route.replicas[0].pod == "p0", "loaded replicas come first"


def test_other_accounts_get_the_same_404_for_private_and_missing_models() -> None:
    state = world()
    messages = set()
    for model in [
        "accounts/acme/models/smol",  # exists, private
        "accounts/acme/deployedModels/smol-main",  # exists, private
        "acme/smol#acme/smol-dep",
        "accounts/acme/models/pirate",
        "accounts/acme/deployedModels/broken",  # failed, but not theirs: still 404
        "accounts/acme/models/nothing",  # does not exist
        "accounts/nobody/deployedModels/x",
        "gpt-4o",  # not a Fireworks name at all
    ]:
        with pytest.raises(RoutingError) as caught:
            resolve(model, "beta", state, platform_account=PLATFORM)
        assert caught.value.status == 404
        messages.add(caught.value.message)
    assert messages == {NOT_FOUND_MESSAGE}


def test_serverless_models_of_the_platform_account_serve_every_account() -> None:
    state = world()
    for caller in ("acme", "beta"):
        route = resolve("accounts/hearth/models/base", caller, state, platform_account=PLATFORM)
        assert route.deployment == "accounts/hearth/deployments/shared"
        assert route.serverless
        assert [r.address for r in route.replicas] == ["127.0.3.1:8000"]
    # With another platform account configured, nothing is serverless for others.
    with pytest.raises(RoutingError):
        resolve("accounts/hearth/models/base", "acme", state, platform_account="platform")


def test_a_public_deployed_model_is_callable_by_name_from_other_accounts() -> None:
    route = resolve(
        "accounts/acme/deployedModels/smol-public", "beta", world(), platform_account=PLATFORM
    )
    assert route.deployment == "accounts/acme/deployments/smol-second"


def test_a_failed_deployed_model_is_412_for_its_own_account() -> None:
    with pytest.raises(RoutingError) as caught:
        resolve("accounts/acme/deployedModels/broken", "acme", world(), platform_account=PLATFORM)
    assert caught.value.status == 412
    assert "accounts/acme/deployedModels/broken" in caught.value.message


def test_models_listing_shows_only_what_the_caller_can_reach() -> None:
    ids = {m.id for m in reachable_models("beta", world(), platform_account=PLATFORM)}
    assert ids == {
        "accounts/hearth/models/base",
        "accounts/hearth/deployedModels/base-shared",
        "accounts/beta/deployedModels/b-private",
        "accounts/acme/deployedModels/smol-public",
    }
    acme = {m.id for m in reachable_models("acme", world(), platform_account=PLATFORM)}
    assert {"accounts/acme/models/smol", "accounts/acme/models/pirate"} <= acme
    assert "accounts/beta/deployedModels/b-private" not in acme


def test_balancing_least_outstanding_loaded_first_exclusions_and_ties() -> None:
    a, b = Replica("a", "10.0.0.1:8000"), Replica("b", "10.0.0.2:8000")
    cold = Replica("c", "10.0.0.3:8000", adapter_loaded=False)
    assert choose_replica([a, b], {"10.0.0.1:8000": 3, "10.0.0.2:8000": 1}) == b
    assert choose_replica([a, b], {"10.0.0.1:8000": 0, "10.0.0.2:8000": 1}) == a
    # A replica with the adapter wins even when busier.
    assert choose_replica([cold, a], {"10.0.0.1:8000": 9}) == a
    assert choose_replica([cold, a], {}, exclude={"a"}) == cold
    assert choose_replica([a], {}, exclude={"a"}) is None
    # Ties are spread, not always the first.
    rng = random.Random(1)
    picks = {choose_replica([a, b], {}, rng=rng) for _ in range(40)}
    assert picks == {a, b}
