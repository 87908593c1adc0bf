"""The keep-alive fanned out over SQS: due pairings queued by a scheduled run, refreshed by workers, and each
run's report. Imports `refresh` and the floors below it."""
