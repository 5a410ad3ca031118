"""The cluster: several ``perdure server`` nodes on one PostgreSQL store, each owning a share of
the partitions under a lease (see docs/scaling.md).

* ``storage.postgres.cluster_schema`` and ``storage.postgres.leases`` (SQL stays in storage/):
  the ``nodes``, ``leases`` and ``cluster_settings`` tables, the fence function, and the lease
  operations on PostgreSQL (heartbeat, renew, claim, release, the view);
* ``balance``: which partitions a node should hold (even spread, orphans taken over);
* ``keeper``: the thread that renews, claims and gives back every tick;
* ``fencing``: the check in every store commit (the epochs of the touched partitions);
* ``gate``: what goes to deployments waits while the leases are not sure;
* ``node``: the node's moves of partitions in and out of its engine and working copy;
* ``router``: the lease-based ``Router`` (which node owns a partition) and its forwarder;
* ``status``: what ``GET /cluster`` and ``perdure cluster status`` show;
* ``wiring``: a node wired into ``perdure server`` (``--node-name``, ``--advertise``).
"""
