"""Where a request's status changes, and nowhere else: started (``start``), finished exactly once (``finish``), work
brought back by the sweeper (``sweep``), each through the guarded UPDATEs of ``transitions``. Every function takes
its collaborators (settings, the enqueuers) from its caller: the worker's tasks, the API, the sweeper thread."""
