"""The API's error answers: a status and the `{"message": ...}` text J-Quants sends (API-NOTES §3.4).

Texts marked "fake" are not documented anywhere; they keep the API's style so clients can show them.
"""

from __future__ import annotations

# 403 (V2)
API_KEY_INVALID = "The incoming api key is invalid or expired."
API_KEY_REQUIRED = "The api key is required"  # OBSERVED for a missing header (status UNCONFIRMED: 403 here)
ENDPOINT_UNKNOWN = "The requested endpoint does not exist."
NOT_IN_PLAN = "This API is not available on your subscription."
# 403 (V1: an unknown path reaches API Gateway's default answer, OBSERVED)
V1_ENDPOINT_UNKNOWN = "Missing Authentication Token. The method or resources may not be supported."
# 401 (V1 data calls)
TOKEN_INVALID = "The incoming token is invalid or expired."
# 400 (V1 token endpoints)
LOGIN_INCORRECT = "'mailaddress' or 'password' is incorrect."
REFRESH_REQUIRED = "'refreshtoken' is required."
# 400 (parameters)
CODE_FORMAT = "'code' must be 4 or 5 digits."
FROM_AFTER_TO = "'from' must be older than 'to'"
WINDOW = ("Your subscription covers the following dates: {start} ~ {end}. "
          "If you want more data, please check other plans:https://jpx-jquants.com/#dataset")
REQUIRES = "This API requires at least 1 parameter as follows; {names}."
COMBINATION = "This API does not accept this combination of parameters; {names}."  # fake
UNKNOWN_PARAM = "'{name}' is not a valid parameter."  # fake
BAD_DATE = "'{name}' must be a date (YYYYMMDD or YYYY-MM-DD)."  # fake
BAD_VALUE = "'{name}' must be one of {values}."  # fake
BAD_PAGINATION_KEY = "'pagination_key' is invalid for this query."  # fake
# 413 (V1 pages; kept for V2 behind FakeOptions.max_rows)
TOO_LARGE = "Response data is too large. Specify parameters to reduce the acquired data range."
# 429 (body undocumented)
TOO_MANY = "Too Many Requests"
# 5xx
SERVER_ERRORS = {
    500: "Unexpected error. Please try again later.",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class ApiError(Exception):
    """An answer other than 200: raised anywhere in a handler, turned into JSON by the app."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
