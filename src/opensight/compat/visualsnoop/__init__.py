"""VisualSnoop ``/api/v1`` (client ``visualsnoop==0.2``): VSHMAC signatures, raw-bytes
image bodies, and its reply and error shapes, translated onto native collections."""
