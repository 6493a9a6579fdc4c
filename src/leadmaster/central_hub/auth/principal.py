"""The authenticated caller and the one authorization rule of CONTRACT §3.3."""

from dataclasses import dataclass
from typing import Literal

from leadmaster.central_hub import errors

Role = Literal["admin", "user"]


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Literal["user", "api_key"]
    id: int
    name: str  # username, or "api-key:<prefix>" — what the interaction log records as `user`
    role: Role
    cliente_id: int | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def require_admin(self) -> None:
        if not self.is_admin:
            raise errors.ForbiddenError("This route needs the admin role.")

    def require_cliente(self, cliente_id: int) -> None:
        """An admin may act on any cliente, a user only on its own."""
        if not self.is_admin and self.cliente_id != cliente_id:
            raise errors.ForbiddenError(f"You may not act on cliente {cliente_id}; yours is {self.cliente_id}.")
