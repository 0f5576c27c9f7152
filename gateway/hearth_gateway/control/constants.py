"""Keys the control plane writes on the objects it creates."""

from __future__ import annotations

from hearth_operator.constants import DOMAIN

#: On every object created through the REST API: the ID of the User whose key created it.
#: Contributors may change only objects that carry their own ID here (Kubernetes RBAC
#: cannot express ownership, so the gateway enforces it).
ANNOTATION_CREATED_BY = f"{DOMAIN}/created-by"
