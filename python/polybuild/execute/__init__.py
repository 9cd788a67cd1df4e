"""The execute stage: the scheduler, publication into dist/, progress and the build report."""
