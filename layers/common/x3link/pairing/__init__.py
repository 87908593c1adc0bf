"""Pairing a customer: pairing links and states, the browser that opened a link, the consent's callback, the
tenants' listing. Imports `refresh` and the floors below it."""
