"""Training jobs: the queue, the backends (local, Ray), the worker and the child run."""
