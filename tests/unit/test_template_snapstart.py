"""SnapStart in the template: off by default, a parameter turns it on for the API's functions, and every
event source invokes the alias whose versions carry it (docs/deploy.md, "Cold starts")."""

from __future__ import annotations

from local import template as tpl


def test_snapstart_is_a_parameter_off_by_default() -> None:
    parameter = tpl.load()["Parameters"]["SnapStart"]
    assert parameter["Default"] == "None"
    assert set(parameter["AllowedValues"]) == {"None", "PublishedVersions"}


def test_every_function_publishes_versions_behind_one_alias() -> None:
    """SAM points a function's events at the alias only when AutoPublishAlias is set (it takes no Fn::If)."""
    assert tpl.load()["Globals"]["Function"]["AutoPublishAlias"] == "live"
    for logical_id, resource in tpl.resources(type_="AWS::Serverless::Function").items():
        assert resource["Properties"].get("AutoPublishAlias", "live") == "live", logical_id


def test_the_parameter_decides_for_the_apis_functions_and_the_background_ones_never_snapshot() -> None:
    api = {route.function for route in tpl.routes()}
    assert "SnapStart" in repr(tpl.load()["Globals"]["Function"]["SnapStart"]["ApplyOn"])  # the parameter
    for logical_id, resource in tpl.resources(type_="AWS::Serverless::Function").items():
        if logical_id in api:
            assert "SnapStart" not in resource["Properties"], logical_id  # the Globals', so the parameter's
        else:
            assert resource["Properties"]["SnapStart"]["ApplyOn"] == "None", logical_id
    assert api, "the API has functions"
