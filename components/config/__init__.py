"""The stack file: its sections, owned by their components, put together (``stack``), read and checked
(``loader``), and mapped to the components' args (``to_args``); ``source`` reads the engine's raw settings and
``fields`` holds the value types the sections share."""
