"""Placeholder until the handler lands."""


def lambda_handler(event: dict, context: object) -> dict:
    return {"statusCode": 501, "body": "{}"}
