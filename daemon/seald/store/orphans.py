"""Start-up sweep of files a crash left behind (issue 8, crash safety).

At start no upload is in progress, so everything under ``incoming/`` is a cut-off
upload, and a ``documents/<id>/`` directory without its request row is a submission
whose transaction never committed (documents are moved in place before the row).
Neither was ever acknowledged to a client; both are removed.
"""

from __future__ import annotations

import shutil

from seald.store.requests import Store


def sweep_orphans(store: Store) -> tuple[int, int]:
    """Remove cut-off uploads and uncommitted document directories; runs on the store thread.

    Returns (uploads removed, document directories removed).
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
    documents = 0
    if store.documents_dir.is_dir():
        for entry in store.documents_dir.iterdir():
            if entry.name in known:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            documents += 1
    return uploads, documents
