"""`x3link`, the operator's command-line tool: every route of the bundle's IAM-signed API, signed with the
operator's own AWS credentials. Not part of the Lambda layer: it is installed into `.venv` only."""
