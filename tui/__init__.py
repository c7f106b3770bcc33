"""The Textual review studio over the engine and the trainer."""
