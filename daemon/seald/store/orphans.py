"""Start-up sweep of files a crash left behind (issue 8, crash safety).

At start no upload is in progress, so everything under ``incoming/`` is a cut-off
upload, and a ``documents/<id>/`` directory without its request row is a submission
whose transaction never committed (documents are moved in place before the row).
Neither was ever acknowledged to a client; both are removed. So are the sealing
pipeline's temp files (``documents/<id>/.<name>.<random>.part``, signing/pipeline.py):
only the daemon that wrote one could finish it, and a document is prepared before its
request's intent record commits, so they can sit beside an APPROVED request too.
"""

from __future__ import annotations

import shutil

from seald.store.database import Store


def sweep_orphans(store: Store) -> tuple[int, int, int]:
    """Remove cut-off uploads, uncommitted document directories and sealing temp files;
    runs on the store thread.

    Returns (uploads, document directories, sealing temp files) removed.
    """
    uploads = 0
    if store.incoming_dir.is_dir():
        for entry in store.incoming_dir.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            uploads += 1
    known = {row[0] for row in store._connection().execute("SELECT request_id FROM requests")}
    documents = partials = 0
    if store.documents_dir.is_dir():
        for entry in store.documents_dir.iterdir():
            if entry.name in known:
                if entry.is_dir():
                    for partial in entry.glob(".*.part"):
                        partial.unlink(missing_ok=True)
                        partials += 1
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            documents += 1
    return uploads, documents, partials
