"""Publishing data: DOIs minted through DataCite for investigations, user-defined selections
(DataCollections) and instruments (PIDINST); their metadata built from the catalogue, checked
for completeness before minting, kept up to date, versioned and withdrawn; and the data behind
their landing pages.

A room of its own on the three seams: the core API (it reads the catalogue and writes
DataPublication rows through units of work), change events (a change to what a DOI describes
sends its metadata again) and jobs (every call to DataCite is a durable job).
"""
