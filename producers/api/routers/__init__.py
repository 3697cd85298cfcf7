"""One router per resource: parse → one service call → response model."""
