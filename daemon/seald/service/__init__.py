"""The appliance's application shell around the pure domain, one part per concern.

Like python-tuf's Updater around TrustedMetadataSet: every operation loads, calls a pure
transition in seald.domain, and records the result through the one :class:`Recorder`.

- ``recorder``  store write + audit record + watch event + log, in one place
- ``catalog``   the seals with their registered certificate and lifecycle status
- ``admission`` per-client limits: calls per second, open streams, open requests
- ``requests``  submit, approve, withdraw, reject, cancel, get, documents
- ``expiry``    requests past their time
- ``signer``    the signer loop, the sealing pipeline, recovery, seal images
  (``seal_workers`` beside it: the worker processes)
- ``tokens``    readiness, unlock, lock, token events (custody itself: seald.tokens)
- ``previews``  PreviewRequest rendering

seald.runtime.wiring builds them; each part receives exactly its collaborators.
"""
