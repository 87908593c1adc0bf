"""The customer's data moved with a live token: folders, data delivery and ingestion, X3's GraphQL, uploads
and notifications received. Imports `refresh` and the floors below it."""
