"""The app's Sage App Registry credentials, from Secrets Manager through Powertools' cached provider."""

from __future__ import annotations

from x3link.errors import ConfigurationError
from x3link.oauth import ClientCredentials

PLACEHOLDER_PREFIX = "REPLACE_WITH"
CACHE_SECONDS = 300


def load_client_credentials(secret_id: str) -> ClientCredentials:
    from aws_lambda_powertools.utilities import parameters

    try:
        value = parameters.get_secret(secret_id, transform="json", max_age=CACHE_SECONDS)
    except parameters.exceptions.GetParameterError:
        raise ConfigurationError("The client credentials secret could not be read.") from None
    except parameters.exceptions.TransformParameterError:
        raise ConfigurationError("The client credentials secret is not JSON.") from None
    client_id = value.get("client_id") if isinstance(value, dict) else None
    client_secret = value.get("client_secret") if isinstance(value, dict) else None
    if (
        not isinstance(client_id, str)
        or not isinstance(client_secret, str)
        or not client_id
        or not client_secret
    ):
        raise ConfigurationError('The client credentials secret must hold {"client_id", "client_secret"}.')
    if client_id.startswith(PLACEHOLDER_PREFIX):
        raise ConfigurationError(
            "The client credentials secret still holds the placeholder: put the Sage "
            "App Registry's client id and secret into it."
        )
    return ClientCredentials(client_id=client_id, client_secret=client_secret)
