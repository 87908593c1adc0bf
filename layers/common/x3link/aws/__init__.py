"""Small readings of AWS shared by every adapter: an error's code (never its message), DynamoDB's typed
attributes, SQS's whole-second delays. Imports only the root modules."""
