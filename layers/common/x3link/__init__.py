"""Sage X3 link: the OAuth pairing, token keeping and Sage X3 calls that every function shares.

Each package owns one concern and imports only from the floors below it (tests/unit/test_layer_shape.py
holds the order); a package's `__init__` imports nothing, so a handler pays only for the modules it uses.

    wiring.py      builds every service once per execution environment: the one module that sees them all
    exports/ outbox/ events/    what runs on queues and streams: files to the app's bucket, files from its
                                outbox, the events other systems subscribe to
    keep_alive/ pairing/ data/  the keep-alive's fan-out, pairing a customer, data moved with a live token
    refresh/       the keeper: one refresh per pairing at a time, refusals judged on evidence, nothing lost
    tokens/        the pairing's model and its table: records, sealed tokens
    sage/          Sage X3's protocol: OAuth, the HTTP client, callbacks, notifications, the app's credentials
    web/           how requests come in and answers leave: JSON bodies, cursors, error shapes, HTML pages
    aws/           small readings of AWS: error codes, DynamoDB's typed attributes, SQS delays
    config.py endpoints.py errors.py logs.py budget.py snapshot.py counted_metrics.py
                   settings and the gateways they allow, failures, logs, deadlines, SnapStart, metrics
"""
