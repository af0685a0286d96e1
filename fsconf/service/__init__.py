"""The service layer: the shell that runs the pure engines against the world."""
