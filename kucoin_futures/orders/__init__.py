"""Orders: pure rules (clientOid, outcome resolution steps) and the manager that sends them."""
