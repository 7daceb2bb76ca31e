"""The ground floor every layer may stand on: where a world lives on disk and how a file is
replaced without ever being half written. It imports nothing of the project."""
