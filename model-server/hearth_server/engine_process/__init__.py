"""The engine in its own process: ``client.EngineClient`` in the server process, ``child``
in the engine process, ``wire`` the messages between them."""
