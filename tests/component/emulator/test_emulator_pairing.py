"""Root links, the authorise request, the consent page, the decision form and approve()/reject()."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import TypedDict
from urllib.parse import urlencode

import pytest

from local.sagex3_emulator import ApiError, Customer, DecisionError, Emulator
from tests.component.emulator.conftest import FakeClock, Sage


class Form(TypedDict):
    """One parsed form: its attributes, and its inputs and buttons as attribute maps (plus "tag")."""

    method: str | None
    action: str | None
    inputs: list[dict[str, str | None]]


class FormParser(HTMLParser):
    """Collects forms, their inputs and buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.labels: list[str] = []
        self._in_label = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.forms.append({"method": values.get("method"), "action": values.get("action"), "inputs": []})
        elif tag in ("input", "button") and self.forms:
            self.forms[-1]["inputs"].append({"tag": tag, **values})
        elif tag == "label":
            self._in_label = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._in_label = False

    def handle_data(self, data: str) -> None:
        if self._in_label and data.strip():
            self.labels.append(data.strip())


def parse(html: str) -> FormParser:
    parser = FormParser()
    parser.feed(html)
    return parser


def hidden(form: Form) -> dict[str, str]:
    """The hidden inputs' names and values; every hidden input the emulator writes has both."""
    fields: dict[str, str] = {}
    for i in form["inputs"]:
        if i.get("type") == "hidden":
            name, value = i["name"], i["value"]
            assert name is not None and value is not None, i
            fields[name] = value
    return fields


def request_id(html: str) -> str:
    found = re.search(r'name="request_id" value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_root_lists_links_built_from_each_region_base(sage: Sage) -> None:
    for region in ("eu-prod", "us-prod"):
        base = sage.emu.base_url(region)
        reply = sage.call("GET", base)
        assert reply.status == 200
        assert reply.json() == {
            "customerAccess": {"authorise": f"{base}/token/authorise", "token": f"{base}/token"},
            "customerUsage": {
                "folder": f"{base}/folders",
                "graphQL": f"{base}/service/{{endPoint}}/api",
                "dataIngestion": f"{base}/dataingestion/{{folderName}}",
                "dataDelivery": f"{base}/datadelivery/{{folderName}}",
            },
            "apiDoc": f"{base}/swagger",
            "businessDomains": ["ALL"],
        }
    assert sage.emu.base_url() == sage.emu.base_url("eu-prod")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", sage.emu.base_url())


@pytest.mark.parametrize("missing", ["client_id", "scope", "customer", "redirect_uri", "state"])
def test_authorise_missing_parameter_is_400(sage: Sage, missing: str) -> None:
    reply = sage.call("GET", sage.authorise_url(**{missing: None}))
    assert reply.status == 400
    assert reply.json() == {"message": "Missing required request parameters"}


def test_authorise_unknown_client_and_unregistered_redirect_are_404(sage: Sage) -> None:
    for override in ({"client_id": "nobody"}, {"redirect_uri": "https://evil.example/cb"}):
        reply = sage.call("GET", sage.authorise_url(**override))
        assert reply.status == 404
        assert set(reply.json()) == {"message"}


def test_authorise_accepts_customer_inside_scope(sage: Sage) -> None:
    url = sage.authorise_url(customer=None, scope=f"api.dataDelivery customer={sage.ACME}")
    reply = sage.call("GET", url)
    assert reply.status == 200
    assert sage.ACME in reply.text
    params = sage.emu.approve(url)
    token = sage.exchange(params["authorizationCode"]).json()
    assert token["scope"] == "api.dataDelivery folder.SEED folder.X3 folder.DEMO"


def test_consent_page_shows_app_scope_customer_checkboxes_and_buttons(sage: Sage) -> None:
    reply = sage.call("GET", sage.authorise_url(scope="api.dataDelivery api.dataIngestion"))
    assert reply.status == 200
    assert (reply.header("Content-Type") or "").startswith("text/html")
    assert "pending application approval" in reply.text.lower()
    assert "demo-app" in reply.text and "api.dataDelivery api.dataIngestion" in reply.text
    page = parse(reply.text)
    (form,) = page.forms
    assert form["method"] == "post" and form["action"] == "/v1/token/authorise/decision"
    boxes = [i for i in form["inputs"] if i.get("type") == "checkbox"]
    assert [(b["name"], b["value"]) for b in boxes] == [
        ("folder", "SEED"),
        ("folder", "X3"),
        ("folder", "DEMO"),
    ]
    assert page.labels == ["SEED", "X3", "DEMO"]
    buttons = [(i["name"], i["value"]) for i in form["inputs"] if i["tag"] == "button"]
    assert buttons == [("decision", "accept"), ("decision", "reject")]
    assert "request_id" in hidden(form)
    assert ">Accept<" in reply.text and ">Reject<" in reply.text


def test_consent_page_escapes_values(sage: Sage) -> None:
    reply = sage.call("GET", sage.authorise_url(scope='api.dataDelivery <script>alert("x")</script>'))
    assert "<script>alert" not in reply.text
    assert "&lt;script&gt;" in reply.text


def test_unknown_customer_with_fixed_customers_gets_error_callback(sage: Sage) -> None:
    reply = sage.call("GET", sage.authorise_url(customer="https://x3.unknown.example", state="s-1"))
    assert reply.status == 200
    (form,) = parse(reply.text).forms
    assert form["method"] == "post" and form["action"] == sage.REDIRECT
    fields = hidden(form)
    assert fields["error"] == "customer configuration not found"
    assert fields["state"] == "s-1"
    assert "document.forms[0].submit()" in reply.text
    assert sage.emu.approve(sage.authorise_url(customer="https://x3.unknown.example"))["error"] == (
        "customer configuration not found"
    )


def test_accept_through_the_form_yields_autosubmitted_callback(sage: Sage) -> None:
    page = sage.call("GET", sage.authorise_url(state="abc"))
    reply = sage.call(
        "POST",
        sage.url("/token/authorise/decision"),
        form={"request_id": request_id(page.text), "decision": "accept", "folder": ["SEED", "DEMO"]},
    )
    assert reply.status == 200
    (form,) = parse(reply.text).forms
    assert form["method"] == "post" and form["action"] == sage.REDIRECT
    fields = hidden(form)
    assert set(fields) == {"authorizationCode", "state"}
    assert fields["state"] == "abc"
    assert "document.forms[0].submit()" in reply.text and ">Continue<" in reply.text
    token = sage.exchange(fields["authorizationCode"]).json()
    assert token["scope"] == "api.dataDelivery folder.SEED folder.DEMO"


def test_accept_without_folder_shows_the_page_again_with_an_error(sage: Sage) -> None:
    page = sage.call("GET", sage.authorise_url())
    rid = request_id(page.text)
    reply = sage.call(
        "POST", sage.url("/token/authorise/decision"), form={"request_id": rid, "decision": "accept"}
    )
    assert reply.status == 400
    assert "Select at least one folder" in reply.text
    assert request_id(reply.text) == rid
    again = sage.call(
        "POST",
        sage.url("/token/authorise/decision"),
        form={"request_id": rid, "decision": "accept", "folder": "X3"},
    )
    assert "authorizationCode" in again.text


def test_foreign_region_callback_carries_the_home_endpoint(sage: Sage) -> None:
    page = sage.call("GET", sage.authorise_url(region="eu-prod", customer=sage.GLOBEX))
    reply = sage.call(
        "POST",
        sage.url("/token/authorise/decision", "eu-prod"),
        form={"request_id": request_id(page.text), "decision": "accept", "folder": "SEED"},
    )
    fields = hidden(parse(reply.text).forms[0])
    assert fields["endpoint"] == sage.emu.base_url("us-prod")
    assert sage.exchange(fields["authorizationCode"], region="us-prod").status == 200


def test_reject_through_the_form(sage: Sage) -> None:
    page = sage.call("GET", sage.authorise_url(state="r-1"))
    reply = sage.call(
        "POST",
        sage.url("/token/authorise/decision"),
        form={"request_id": request_id(page.text), "decision": "reject"},
    )
    fields = hidden(parse(reply.text).forms[0])
    assert fields["error"] == "access_denied"
    assert fields["statusCode"] == "403"
    assert fields["state"] == "r-1"
    assert fields["error_description"]


def test_pending_request_expires_and_is_single_use(sage: Sage, clock: FakeClock) -> None:
    page = sage.call("GET", sage.authorise_url())
    sage.emu.configure(pairing_request_lifetime=60)
    clock.advance(61)
    form = {"request_id": request_id(page.text), "decision": "accept", "folder": "SEED"}
    reply = sage.call("POST", sage.url("/token/authorise/decision"), form=form)
    assert reply.status == 403 and "The request has expired." in reply.text
    page = sage.call("GET", sage.authorise_url())
    form["request_id"] = request_id(page.text)
    assert sage.call("POST", sage.url("/token/authorise/decision"), form=form).status == 200
    assert sage.call("POST", sage.url("/token/authorise/decision"), form=form).status == 404


def test_approve_and_reject_helpers(sage: Sage) -> None:
    params = sage.emu.approve(sage.authorise_url(state="x"), ["X3"])
    assert set(params) == {"authorizationCode", "state"} and params["state"] == "x"
    foreign = sage.emu.approve(sage.authorise_url(region="eu-prod", customer=sage.GLOBEX))
    assert foreign["endpoint"] == sage.emu.base_url("us-prod")
    rejected = sage.emu.reject(sage.authorise_url(state="y"))
    assert rejected == {
        "error": "access_denied",
        "error_description": rejected["error_description"],
        "statusCode": "403",
        "state": "y",
    }
    assert sage.emu.callback_method == "POST"
    with pytest.raises(ApiError) as refused:
        sage.emu.approve(sage.authorise_url(client_id="nobody"))
    assert refused.value.status == 404
    with pytest.raises(DecisionError):
        sage.emu.approve(sage.authorise_url(), ["NOPE"])
    with pytest.raises(ValueError, match="authorise URL"):
        sage.emu.approve("http://127.0.0.1:1/v1/token/authorise?" + urlencode({"client_id": "demo-app"}))


def test_auto_customers_are_created_on_first_sight() -> None:
    with Emulator(regions=("eu-prod",)) as emu:
        url = f"{emu.base_url()}/token/authorise?" + urlencode(
            {
                "client_id": "demo-app",
                "scope": "api.dataDelivery",
                "customer": "https://x3.new.example/",
                "redirect_uri": "https://anything.example/cb",
                "state": "s",
            }
        )
        params = emu.approve(url)
        assert "endpoint" not in params
        customer = emu.get_customer("https://x3.new.example")
        assert customer is not None
        assert customer.folders == ["SEED", "X3", "DEMO"] and customer.region == "eu-prod"
        emu.add_customer(Customer("https://x3.other.example", ["ONLY"], region="eu-prod"))
        other = emu.get_customer("https://x3.other.example")
        assert other is not None
        assert other.folders == ["ONLY"]
