"""Authorization: who may do what, where. The single place every read and write is filtered."""

from cityweave.authz.policy import Action, Principal, Resource, Unauthorized

__all__ = ["Action", "Principal", "Resource", "Unauthorized"]
