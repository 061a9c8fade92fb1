"""The Textual app: the operator's console on the fleet."""
