"""The cluster: several ``perdure server`` nodes on one PostgreSQL store, each owning a share of
the partitions under a lease (see docs/scaling.md).

* ``schema``: the ``nodes`` and ``leases`` tables;
* ``leases``: the lease operations on PostgreSQL (heartbeat, renew, claim, release, the view);
* ``balance``: which partitions a node should hold (even spread, orphans taken over);
* ``keeper``: the thread that renews, claims and releases every tick;
* ``fencing``: the check of every store commit (the epochs of the touched partitions);
* ``router``: the lease-based ``Router`` (which node owns a partition);
* ``node``: the node wired to its engine and store (acquire, lose, give back);
* ``status``: what ``GET /cluster`` and ``perdure cluster status`` show.
"""
