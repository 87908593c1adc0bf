"""GET /pair/{id}: the pairing link a customer's X3 administrator opens; on to Sage X3's consent page.

The first opening starts the pairing's 10-minute state, binds it to this browser with a cookie, and
redirects to Sage X3. Any later opening, like an unknown or expired link, gets a page saying so.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.shared.cookies import Cookie, SameSite
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link import wiring
from x3link.counted_metrics import log_counted_metrics
from x3link.errors import PairingLinkInvalid, X3LinkError
from x3link.pairing.states import COMPLETED_KEPT_SECONDS
from x3link.web.page_routes import html_resolver, page

logger = Logger()
metrics = Metrics()

# What it uses, built in Lambda's init phase (kept by a SnapStart snapshot): see wiring.prime.
wiring.prime(wiring.pairing_service)


def _refused(_: X3LinkError) -> None:
    metrics.add_metric(name="PairingLinksRefused", unit=MetricUnit.Count, value=1)


# Only /pair/{id} comes here: a path the resolver cannot match (an encoded slash, say) is a bad link.
app = html_resolver(
    refused=_refused, not_found=lambda: PairingLinkInvalid("The pairing link's path is malformed.")
)


@app.get("/pair/<link_id>")
def open_link(link_id: str) -> Response[Any]:
    opened = wiring.pairing_service().open_link(link_id)
    logger.append_keys(tenant=opened.tenant)
    metrics.add_metric(name="PairingLinksOpened", unit=MetricUnit.Count, value=1)
    cookies = []
    if opened.binding:
        # SameSite=None: Sage X3 sends the browser back with a cross-site POST. `__Host-`: Secure, this host.
        cookies.append(
            Cookie(
                name=opened.binding.cookie_name,
                value=opened.binding.cookie_value,
                path="/",
                secure=True,
                http_only=True,
                same_site=SameSite.NONE_MODE,
                max_age=opened.max_age + COMPLETED_KEPT_SECONDS,
            )
        )
    answer = page(303, "", Location=opened.authorise_url)
    answer.cookies.extend(cookies)
    return answer


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False, clear_state=True
)
@log_counted_metrics(metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
