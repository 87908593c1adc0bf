"""The keeper of pairings' tokens: one refresh per pairing at a time under a lease, Sage's refusals judged on
evidence across pairings (`refusal_policy`, pure), tokens committed or parked and never lost. Imports the
floors below it: the root, `aws`, `web`, `sage`, `tokens`."""
