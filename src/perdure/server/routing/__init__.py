"""Routing between the processes that share the partitions: one mechanism for the workers of
one machine (``perdure server --workers N``) and the nodes of a cluster.

* ``router``: ``Router`` (who owns a partition) and ``Peer``; ``StaticRouter`` for workers;
* ``forwarding``: ingress and admin requests proxied to the owner, one hop at most;
* ``transport``: messages between partitions over HTTP (``POST /internal/partitions/{p}/
  messages``), the engine's ``Transport``;
* ``admin``: the admin API answering for every process (owner routing, merged listings,
  ``/query`` over every store, the ``/internal`` endpoints);
* ``registry_sync``: deployments and services the same on every worker;
* ``layout``, ``supervisor``, ``worker``: ``--workers N`` on one machine.
"""

from perdure.server.routing.router import Peer, Router, StaticRouter

__all__ = ["Peer", "Router", "StaticRouter"]
