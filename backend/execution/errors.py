"""The gateway's error types, grouped by what the caller should do about them.

Adapters translate vendor exceptions (google.api_core, psycopg, alpaca-py, requests) into these
at the edge, with context, so the engine never needs to know which library failed.
"""

from __future__ import annotations


class ExecutionGatewayError(Exception):
    """Base class for every error the gateway raises on purpose."""


class ConfigurationError(ExecutionGatewayError):
    """The settings are unusable; the process must not start. Fix the named variable."""


class TransientError(ExecutionGatewayError):
    """A dependency is unreachable or slow; the same request may succeed later."""


class RiskDataUnavailable(TransientError):
    """A risk check's data (ledger count, position) could not be read."""


class LedgerUnavailable(TransientError):
    """The intent store or trade ledger could not be read or written."""


class BrokerUnavailable(TransientError):
    """The broker did not give a definitive answer.

    ``outcome_unknown`` is True when the order may have been accepted anyway (timeout, dropped
    connection, 5xx after the request was sent): the next attempt must look the order up by its
    client_order_id before it may send anything.
    """

    def __init__(self, message: str, *, outcome_unknown: bool) -> None:
        super().__init__(message)
        self.outcome_unknown = outcome_unknown


class BrokerAuthFailed(BrokerUnavailable):
    """The broker refused our credentials (HTTP 401, or a 403 that is not an order refusal).

    Nothing was placed, and the same request may succeed once the keys or the host are fixed:
    a rotated key must not turn every intent in flight into a final refusal.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, outcome_unknown=False)


class PermanentRefusal(ExecutionGatewayError):
    """A definitive no; retrying the same request cannot change it."""


class BrokerRejected(PermanentRefusal):
    """The broker refused the order (4xx other than 429)."""

    def __init__(self, message: str, *, status_code: int | None, code: int | None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code


class DuplicateClientOrderId(BrokerRejected):
    """The broker already has an order with this client_order_id: resolve it by lookup."""
