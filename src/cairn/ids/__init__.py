"""The data service (ids.server's job) below the HTTP endpoints.

- ``checksum``: streaming CRC32 + size, rendered as ids.server does.
- ``locations``: location names for new uploads, validation, the optional location hash.
- ``storage``: the small storage interface; ``storage_local`` and ``storage_s3`` implement it.
- ``mapper``: dataset/datafile descriptors and the default zip entry layout.
- ``zipstream``: deterministic STORED zips (known length, random-access ranges) and
  streamed DEFLATE zips.
- ``ranges``: HTTP ``Range``/``If-Range`` handling and strong ETags, as pure functions.
- ``archive``: copies between main and archive storage (two-level storage).
"""
