"""The download manager: carts, downloads and queues, as TopCat's back end
(datagateway-download-api) serves them under ``/topcat``, on the catalogue database and the
job system, with what TopCat lacks: downloads that survive restarts, prepared ids that are
re-made when they expire, and delivery confirmed byte by byte (DELIVERED).

It stands on the data service (``cairn.ids``): a download is a prepared selection.
"""
