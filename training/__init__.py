"""Training: synthetic-data pipeline and the three training stages. Imports m2penc, never nodes.

Implemented: stage 1 (M2PEnc pre-training, :mod:`.stage1`) on the shard format of :mod:`.datasets`,
with the generic loop in :mod:`.trainer`, settings in :mod:`.config`, toy data in :mod:`.toy_data`
and the ``m2pdance-train`` command line in :mod:`.cli`. Submodules are imported on demand so
``import m2pdance.training`` stays cheap.
"""
