"""What other systems hear: lifecycle events read off the tables' streams (pure), the bus they go on, and each
pairing's activity. Imports `tokens` and the floors below it."""
