"""The gateway's error messages, word for word where Sage documents them.

Why: clients may match on these texts; one place keeps them identical across routes.
"""

MISSING_PARAMETERS = "Missing required request parameters"
INVALID_GRANT_TYPE = "Invalid grant type"
APP_DISABLED = "The application registered on Sage Business Cloud is disabled"
REQUEST_EXPIRED = "The request has expired."
PAIRING_NOT_FOUND = "Pairing request not found"
NO_ASSOCIATION = (
    "Could not associate the requested url with an customer application registered on Sage Business Cloud"
)
UNAUTHORISED = "Unauthorised"
FILE_EXISTS = "File already exists"
# Not documented by Sage [gap]: plain texts chosen by the emulator.
FOLDER_FORBIDDEN = "Forbidden"
FILE_NOT_FOUND = "File not found"
NOT_FOUND = "Not Found"
METHOD_NOT_ALLOWED = "Method Not Allowed"
TOO_LARGE = "Request Entity Too Large"
INVALID_PAGE = "Invalid page parameter"
QUOTA_EXCEEDED = "Daily request quota exceeded"
CUSTOMER_NOT_FOUND = "customer configuration not found"
ACCESS_DENIED = "access_denied"
