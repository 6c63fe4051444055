"""The domain's deliberate errors; like the engine's, each says what is wrong and where."""

from __future__ import annotations

from engine.errors import CrmflowError


class InvalidData(CrmflowError):
    """Input that does not fit; ``errors`` maps each field to what is wrong with it."""

    def __init__(self, what: str, errors: dict[str, str]):
        listed = "; ".join(f"{field}: {message}" for field, message in errors.items())
        super().__init__(f"The {what} has invalid values: {listed}")
        self.what = what
        self.errors = errors


class DuplicateCustomer(CrmflowError):
    """Registering would create a likely duplicate; register again with ``allow_duplicates``
    to do it deliberately."""

    def __init__(self, candidates):
        listed = "; ".join(f"#{c.customer_id} {c.name} ({', '.join(c.reasons)})" for c in candidates)
        super().__init__(f"Likely duplicates already registered: {listed}. "
                         "Check them, or register deliberately as a new customer.")
        self.candidates = candidates
