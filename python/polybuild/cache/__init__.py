"""The cache stage: what a task's key is made of, the local store, the remote cache, records and the fast path."""
