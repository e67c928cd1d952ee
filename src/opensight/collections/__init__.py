"""Visual-similarity collections: exact, near-duplicate and similar images.

* :mod:`.matching` -- the decision and its calibrated score scale;
* :mod:`.engine` -- candidates from the index, verified with the signals;
* :mod:`.index` -- the vector index backends (embedded usearch, Qdrant);
* :mod:`.service` -- tenant-scoped collections over the database and an index;
* :mod:`.dedupe` -- duplicate groups of a folder, in memory (``opensight dedupe``).
"""
