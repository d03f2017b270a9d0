"""ingest: turn news feeds into a permanent, browsable Hugo archive.

The data flows through one module per stage (see `ingest.models`):
fetch → parse → clean → render → archive, wired by `ingest.pipeline`,
remembered by `ingest.state`, driven by `ingest.cli`.
"""

__version__ = "0.1.0"
